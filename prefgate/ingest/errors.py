"""Errors raised by ingestion."""


class IngestFileError(RuntimeError):
    """A landing file cannot be read at all (or is not declared by any source); the message names the file."""
