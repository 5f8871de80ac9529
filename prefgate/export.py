"""Write the gated preference set out: a Parquet file, a HuggingFace ``datasets`` folder, and a manifest."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import polars as pl

TRL_COLUMNS = ["prompt", "chosen", "rejected"]


def frame_hash(df: pl.DataFrame) -> str:
    """Content hash of a table's rows and column names (NDJSON bytes), for manifests; callers sort first."""
    return hashlib.sha256(df.write_ndjson().encode("utf-8")).hexdigest()[:16]


def sorted_hash(df: pl.DataFrame) -> str:
    """:func:`frame_hash` of the set in ``example_id`` order: the same version hashes the same however it was read."""
    return frame_hash(df.sort("example_id") if "example_id" in df.columns else df)


def export_preference_set(df: pl.DataFrame, out_dir: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Replace ``out_dir`` with the export; returns the manifest written next to the data.

    The HF folder holds a DatasetDict with ``train`` and ``test`` splits in TRL's columns (plus ``weight`` and
    ``example_id`` so a trainer can weight and trace each row).
    """
    from datasets import Dataset, DatasetDict
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()

    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    df.write_parquet(tmp / "preference_set.parquet")
    keep = [*TRL_COLUMNS, "weight", "example_id"]
    splits = {
        name: Dataset.from_polars(df.filter(pl.col("split") == split).select(keep))
        for name, split in (("train", "train"), ("test", "eval"))
    }
    DatasetDict(splits).save_to_disk(str(tmp / "hf_dataset"))
    full = {
        **manifest,
        "rows": df.height,
        "content_hash": sorted_hash(df),
        "splits": {k: v.num_rows for k, v in splits.items()},
    }
    (tmp / "manifest.json").write_text(json.dumps(full, indent=2, sort_keys=True, default=str))
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return full
