"""Read the gated preference set (as written by :func:`prefgate.export.export_preference_set`) into TRL datasets.

Accepted ``data_path``: the export folder (``preference_set.parquet``, ``hf_dataset/``, ``manifest.json``), the
``hf_dataset`` folder alone (a ``DatasetDict`` with ``train``/``test``), or a Parquet file (its ``split`` column,
``train`` / ``eval``, picks the rows; without one every row is a train row). Columns used: ``prompt``, ``chosen``,
``rejected``, ``weight`` (1.0 when absent) and ``example_id``.

For a model with a chat template the rows become conversational (``prompt`` = ``[{"role": "user", ...}]``,
``chosen``/``rejected`` = ``[{"role": "assistant", ...}]``), so TRL applies the template exactly as at inference
(and as :class:`prefgate.judges.local.RewardModelJudge` scores); otherwise they stay plain text.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import polars as pl

COLUMNS = ["prompt", "chosen", "rejected", "weight", "example_id"]
SPLIT_NAMES = {"train": "train", "test": "eval"}  # DatasetDict split -> parquet `split` value
MARGIN_CLIP = 0.95  # logit(0.95) ≈ 2.94: a unanimous label asks for a finite reward gap


def _hf_folder(path: Path) -> Path | None:
    if (path / "dataset_dict.json").is_file():
        return path
    if (path / "hf_dataset" / "dataset_dict.json").is_file():
        return path / "hf_dataset"
    return None


def _normalise(df: pl.DataFrame) -> pl.DataFrame:
    missing = [c for c in ("prompt", "chosen", "rejected") if c not in df.columns]
    if missing:
        raise ValueError(f"preference data lacks column(s) {missing}")
    if "weight" not in df.columns:
        df = df.with_columns(pl.lit(1.0).alias("weight"))
    if "example_id" not in df.columns:
        df = df.with_row_index("example_id").with_columns(pl.col("example_id").cast(pl.String))
    return df.select(
        pl.col("prompt", "chosen", "rejected", "example_id").cast(pl.String), pl.col("weight").cast(pl.Float64)
    )


def read_split(data_path: str | Path, split: str = "train") -> pl.DataFrame:
    """One split (``train`` or ``test``) of the preference set as a frame with :data:`COLUMNS`."""
    if split not in SPLIT_NAMES:
        raise ValueError(f"split must be one of {sorted(SPLIT_NAMES)}")
    path = Path(data_path)
    hf = _hf_folder(path) if path.is_dir() else None
    if hf is not None:
        from datasets import load_from_disk

        dd: Any = load_from_disk(str(hf))
        if split not in dd:
            return _normalise(pl.DataFrame(schema=dict.fromkeys(COLUMNS, pl.String)))
        frame = dd[split].to_polars()
        return _normalise(frame if isinstance(frame, pl.DataFrame) else pl.concat(list(frame)))
    parquet = path / "preference_set.parquet" if path.is_dir() else path
    if not parquet.is_file():
        raise FileNotFoundError(f"{data_path}: no preference_set.parquet, hf_dataset/ or Parquet file there")
    df = pl.read_parquet(parquet)
    if "split" in df.columns:
        df = df.filter(pl.col("split") == SPLIT_NAMES[split])
    elif split != "train":
        df = df.clear()
    return _normalise(df)


def read_manifest(data_path: str | Path) -> dict[str, Any]:
    """The export's ``manifest.json`` (content hash, policy hash, ...) found at or above ``data_path``; {} if none."""
    path = Path(data_path).resolve()
    for folder in (path if path.is_dir() else path.parent, path.parent, path.parent.parent):
        candidate = folder / "manifest.json"
        if candidate.is_file():
            loaded = json.loads(candidate.read_text(encoding="utf-8"))
            return loaded if isinstance(loaded, dict) else {}
    return {}


def margin_expr(scale: float) -> pl.Expr:
    """``scale * logit(clip(weight, 0.5, MARGIN_CLIP))``: the Bradley-Terry reward gap the label's confidence implies.

    A pair the consensus is 80 % sure of implies P(chosen > rejected) = 0.8, i.e. a reward gap of logit(0.8) ≈ 1.39;
    TRL's RewardTrainer then minimises ``-log sigmoid(r_c - r_r - margin)`` (the Llama-2 margin loss). Weights below
    0.5 (not expected after consensus) get margin 0; the upper clip keeps unanimous rows finite.
    """
    p = pl.col("weight").clip(0.5, MARGIN_CLIP)
    return (scale * (p / (1 - p)).log()).alias("margin")


def to_trl_rows(df: pl.DataFrame, *, conversational: bool, margin_scale: float | None = None) -> list[dict[str, Any]]:
    """Rows in TRL's preference format (plus ``weight``, ``example_id`` and, with ``margin_scale``, ``margin``)."""
    if margin_scale is not None:
        df = df.with_columns(margin_expr(margin_scale))
    rows = df.to_dicts()
    if conversational:
        for row in rows:
            row["prompt"] = [{"role": "user", "content": row["prompt"]}]
            row["chosen"] = [{"role": "assistant", "content": row["chosen"]}]
            row["rejected"] = [{"role": "assistant", "content": row["rejected"]}]
    return rows


def take_rows(df: pl.DataFrame, max_rows: int | None, seed: int) -> pl.DataFrame:
    """At most ``max_rows`` rows: all of them, or a seeded random sample (the same rows on every resume)."""
    if max_rows is None or df.height <= max_rows:
        return df
    return df.sample(n=max_rows, shuffle=True, seed=seed)


def to_trl_dataset(df: pl.DataFrame, *, conversational: bool, margin_scale: float | None = None) -> Any:
    """A ``datasets.Dataset`` for TRL from a split frame (see :func:`to_trl_rows`)."""
    from datasets import Dataset

    if df.is_empty():
        raise ValueError("no training rows")
    return Dataset.from_list(to_trl_rows(df, conversational=conversational, margin_scale=margin_scale))


def sampling_weights(weights: list[float]) -> list[float]:
    """Non-negative, finite sampling weights (a row with no weight counts 1); raises when all are zero."""
    out = [w if w is not None and math.isfinite(w) and w >= 0 else 1.0 for w in weights]
    if not any(w > 0 for w in out):
        raise ValueError("every row weight is zero: nothing to sample")
    return out
