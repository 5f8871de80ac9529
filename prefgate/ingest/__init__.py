"""Ingestion: declared source mappings, file readers, and the normalisation of landing files into tables."""

from prefgate.ingest.errors import IngestFileError
from prefgate.ingest.sources import SourceSpec, load_sources

__all__ = ["IngestFileError", "SourceSpec", "load_sources"]
