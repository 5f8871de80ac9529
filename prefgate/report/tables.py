"""Warehouse reads and the frames behind ``prefgate report``: pure polars, no printing.

The warehouse is opened read-only (a running ``prefgate run`` keeps writing); a missing warehouse or table is a
:class:`MissingTableError` that names the table, since every table is created by ``prefgate run``.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Any

import duckdb
import polars as pl

from prefgate.agreement import AgreementReport, agreement_report
from prefgate.governance import GATING_FLAGS, empty_agreement, item_frame
from prefgate.governance import alpha_by_source as _per_source
from prefgate.home import Home
from prefgate.lineage.store import has_lineage, preference_set_version_id
from prefgate.policy import Policy
from prefgate.rater_quality import FLAGS

SCHEMA = "prefgate"
OVERALL = "all"
RATER_COLUMNS = (
    "rater_id", "n_labels", "assessed", "agreement", "n_gold", "gold_accuracy", "first_share", "position_p",
    "tie_rate", "median_seconds", "too_fast_share", "modal_share", "change_day",
)  # fmt: skip
JUDGE_COLUMNS = (
    "judge_id", "slice", "slice_value", "n_pairs", "agree_strict", "agree_strict_lo", "agree_strict_hi", "kappa",
    "kappa_lo", "kappa_hi", "position_consistency", "p_first", "human_p_first", "p_longer", "human_p_longer",
    "length_slope", "self_preference", "ece", "brier",
)  # fmt: skip


class ReportError(Exception):
    """The report cannot be made; ``code`` is the exit status."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class MissingTableError(ReportError):
    """A table the report needs is not in the warehouse (or there is no warehouse yet): exit status 2."""

    def __init__(self, table: str, warehouse: Path, no_warehouse: bool) -> None:
        where = f"no warehouse at {warehouse}" if no_warehouse else f"not in {warehouse}"
        super().__init__(f"table {SCHEMA}.{table} is missing ({where}); `prefgate run` creates it", 2)
        self.table = table


class Warehouse:
    """A lazily opened read-only connection to the home's warehouse."""

    def __init__(self, home: Home) -> None:
        self.path = home.warehouse
        self._con: duckdb.DuckDBPyConnection | None = None

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._con is not None:
            self._con.close()

    def con(self, table: str) -> duckdb.DuckDBPyConnection:
        """The connection; ``table`` names what was wanted when there is no warehouse at all."""
        if self._con is None:
            if not self.path.exists():
                raise MissingTableError(table, self.path, no_warehouse=True)
            try:
                self._con = duckdb.connect(str(self.path), read_only=True)
            except duckdb.Error as exc:
                raise ReportError(f"cannot open {self.path} read-only (a writer may hold it): {exc}", 1) from exc
        return self._con

    def has(self, table: str) -> bool:
        """Whether ``prefgate.<table>`` exists."""
        sql = "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?"
        row = self.con(table).execute(sql, [SCHEMA, table]).fetchone()
        return bool(row and row[0])

    def table(self, table: str) -> pl.DataFrame:
        """The whole table ``prefgate.<table>``."""
        if not self.has(table):
            raise MissingTableError(table, self.path, no_warehouse=False)
        return self.con(table).execute(f'SELECT * FROM {SCHEMA}."{table}"').pl()

    def query(self, sql: str, params: list[Any] | None = None) -> pl.DataFrame:
        """Any read-only query (the tables it names must exist)."""
        return self.con("lineage").execute(sql, params or []).pl()


# ---------------------------------------------------------------------------------------------------- raters


def rater_agreement(labels: pl.DataFrame, policy: Policy) -> AgreementReport:
    """Pooled agreement of the human labels, computed exactly as the rater audit (``audit_raters``) does."""
    cfg = policy.agreement
    if labels.is_empty():  # agreement_report refuses an empty frame; the report says why instead
        return empty_agreement("there are no human labels")
    return agreement_report(item_frame(labels), n_boot=cfg.bootstrap_samples, seed=cfg.seed, item_col="item")


def alpha_by_source(labels: pl.DataFrame, policy: Policy) -> pl.DataFrame:
    """Alpha per label source with its interval, as the ``rater_quality`` page shows it."""
    cfg = policy.agreement
    return _per_source(item_frame(labels), min(cfg.bootstrap_samples, 200), cfg.seed)


def gating(quality: pl.DataFrame) -> pl.Expr:
    """True for a rater carrying a gating flag (the ones the flagged-share gate counts)."""
    present = [f for f in GATING_FLAGS if f in quality.columns]
    return pl.any_horizontal(*present) if present else pl.lit(False)


def flagged_share(quality: pl.DataFrame) -> tuple[int, int, float]:
    """Assessed raters with a gating flag, assessed raters, and the share, as ``RaterAudit.flagged_share``."""
    assessed = quality.filter(pl.col("assessed"))
    if assessed.height == 0:
        return 0, 0, 0.0
    n = int(assessed.select(gating(quality).sum()).item())
    return n, assessed.height, float(assessed.select(gating(quality).mean()).item())


def rater_rows(quality: pl.DataFrame) -> pl.DataFrame:
    """One row per rater: gating flags first, then informational flags; assessed before unassessed; by agreement."""
    flags = [f for f in FLAGS if f in quality.columns]
    listed = pl.concat_list([pl.when(pl.col(f)).then(pl.lit(f)) for f in flags]).list.drop_nulls() if flags else None
    cols = [c for c in RATER_COLUMNS if c in quality.columns]
    return (
        quality.with_columns(
            (listed if listed is not None else pl.lit([], dtype=pl.List(pl.String))).alias("flags"),
            gating(quality).alias("gating"),
            pl.col("flag_reasons").fill_null(""),
        )
        .sort(
            [~pl.col("gating"), pl.col("flags").list.len() == 0, ~pl.col("assessed"), "agreement", "rater_id"],
            nulls_last=True,
        )
        .select(*cols, "flags", "gating", "flag_reasons", *(["notes"] if "notes" in quality.columns else []))
    )


# ---------------------------------------------------------------------------------------------------- judges


def judge_rows(calibration: pl.DataFrame) -> pl.DataFrame:
    """One row per judge x slice value with the gate verdict and its reasons; each judge's overall row first."""
    cols = [c for c in JUDGE_COLUMNS if c in calibration.columns]
    overall = (pl.col("slice") == OVERALL) & (pl.col("slice_value") == OVERALL)
    return calibration.sort([pl.col("judge_id"), ~overall, pl.col("slice"), pl.col("slice_value")]).select(
        *cols, "passed", pl.col("reasons").fill_null([])
    )


# ------------------------------------------------------------------------------------------------------- set


def counts_by(frame: pl.DataFrame, key: pl.Expr, splits: list[str]) -> list[dict[str, Any]]:
    """Rows per value of ``key`` (most first, then by value), with the count in each split."""
    per: dict[str | None, dict[str, int]] = {}
    grouped = frame.group_by(key.cast(pl.String).alias("key"), "split").len("n")
    for value, split, n in grouped.iter_rows():
        per.setdefault(value, {})[str(split)] = int(n)
    order = sorted(per, key=lambda k: (-sum(per[k].values()), k is None, k or ""))
    return [{"key": k, "rows": sum(per[k].values()), "splits": {s: per[k].get(s, 0) for s in splits}} for k in order]


def split_names(frame: pl.DataFrame) -> list[str]:
    """The set's split values, ``train`` first."""
    return sorted((str(s) for s in frame["split"].drop_nulls().unique()), key=lambda s: (s != "train", s))


def lineage_of(wh: Warehouse, preference_set: pl.DataFrame) -> dict[str, Any] | None:
    """The newest recorded preference-set version, and whether the table is that version (None: no lineage)."""
    if not has_lineage(wh.con("preference_set")):
        return None
    latest = wh.query(
        "SELECT version_id, created_at, n_examples FROM lineage.versions WHERE kind = 'preference_set' "
        "ORDER BY seq DESC LIMIT 1"
    )
    if latest.height == 0:
        return None
    row = latest.row(0, named=True)
    hashes = preference_set["policy_hash"].drop_nulls().unique().sort().to_list()
    table_version = preference_set_version_id(preference_set, ",".join(hashes)) if preference_set.height else None
    return {
        "version_id": row["version_id"],
        "created_at": row["created_at"].isoformat(),
        "n_examples": row["n_examples"],
        "table_version_id": table_version,
        "current": table_version == row["version_id"],
    }
