"""Column contracts of every table, as ``pandera.polars`` models.

Assets validate their outputs with these (data checks included, not schema only), and the blocking checks on
``preference_set`` reuse the same model, so the contract lives in one place.
"""

from __future__ import annotations

import pandera.polars as pa
import polars as pl
from pandera.api.polars.types import PolarsData
from pandera.typing.polars import Series

HEX16 = r"^[0-9a-f]{16}$"


class _Base(pa.DataFrameModel):
    class Config:
        strict = True  # no undeclared columns
        coerce = False


class Provenance(_Base):
    """Where a row came from: the landing file, its line, and the file's content hash."""

    source: Series[str]
    source_file: Series[str]
    source_line: Series[pl.Int64] = pa.Field(ge=1)
    file_sha256: Series[str] = pa.Field(str_matches=r"^[0-9a-f]{64}$")


class RawPrompts(Provenance):
    prompt_id: Series[str] = pa.Field(unique=True, str_matches=HEX16)
    prompt: Series[str] = pa.Field(str_length={"min_value": 1})
    source_key: Series[str] = pa.Field(nullable=True)
    category: Series[str] = pa.Field(nullable=True)
    language: Series[str] = pa.Field(nullable=True)


class EvalPrompts(RawPrompts):
    safety: Series[str] = pa.Field(nullable=True, isin=["safe", "unsafe"])


class ResponsePairs(Provenance):
    pair_id: Series[str] = pa.Field(unique=True, str_matches=HEX16)
    prompt_id: Series[str] = pa.Field(str_matches=HEX16)
    prompt: Series[str] = pa.Field(str_length={"min_value": 1})
    response_a_id: Series[str] = pa.Field(str_matches=HEX16)
    response_a: Series[str]
    model_a: Series[str] = pa.Field(nullable=True)
    response_b_id: Series[str] = pa.Field(str_matches=HEX16)
    response_b: Series[str]
    model_b: Series[str] = pa.Field(nullable=True)
    source_key: Series[str]
    category: Series[str] = pa.Field(nullable=True)
    language: Series[str] = pa.Field(nullable=True)
    reference_choice: Series[str] = pa.Field(nullable=True, isin=["a", "b"])

    @pa.dataframe_check
    def canonical_order(cls, data: PolarsData) -> pl.LazyFrame:  # noqa: N805
        """Response a is the one with the smaller id: the pair's canonical orientation."""
        return data.lazyframe.select(pl.col("response_a_id") < pl.col("response_b_id"))


class PairKeys(_Base):
    """Every (source, key) under which a pair arrived, and which canonical side the source listed first."""

    source: Series[str]
    source_key: Series[str]
    pair_id: Series[str] = pa.Field(str_matches=HEX16)
    first_side: Series[str] = pa.Field(isin=["a", "b"])


class _Label(Provenance):
    label_id: Series[str] = pa.Field(unique=True, str_matches=HEX16)
    pair_id: Series[str] = pa.Field(str_matches=HEX16)
    pair_key: Series[str] = pa.Field(description="The pair's key in the source the label refers to.")
    batch_date: Series[pl.Date]
    choice: Series[str] = pa.Field(isin=["a", "b", "tie"])
    raw_choice: Series[str]
    shown_first: Series[str] = pa.Field(isin=["a", "b"])


class HumanLabels(_Label):
    rater_id: Series[str] = pa.Field(str_length={"min_value": 1})
    seconds: Series[pl.Float64] = pa.Field(nullable=True, ge=0)
    labeled_at: Series[pl.Datetime] = pa.Field(nullable=True)


class JudgeLabels(_Base):
    """Recorded judge verdicts (from landing files, with file/line provenance) and live judgments (from a judge
    run, with the judge's own record). Failed live judgments stay, with ``status = failed`` and no choice."""

    label_id: Series[str] = pa.Field(unique=True, str_matches=HEX16)
    pair_id: Series[str] = pa.Field(str_matches=HEX16)
    pair_key: Series[str]
    batch_date: Series[pl.Date]
    choice: Series[str] = pa.Field(nullable=True, isin=["a", "b", "tie"])
    raw_choice: Series[str] = pa.Field(nullable=True)
    shown_first: Series[str] = pa.Field(isin=["a", "b"])
    source: Series[str]
    source_file: Series[str] = pa.Field(nullable=True)
    source_line: Series[pl.Int64] = pa.Field(nullable=True, ge=1)
    file_sha256: Series[str] = pa.Field(nullable=True, str_matches=r"^[0-9a-f]{64}$")
    judge_id: Series[str] = pa.Field(str_length={"min_value": 1})
    rationale: Series[str] = pa.Field(nullable=True)
    probability_a: Series[pl.Float64] = pa.Field(nullable=True, ge=0, le=1)
    origin: Series[str] = pa.Field(isin=["recorded", "live"])
    status: Series[str] = pa.Field(isin=["ok", "failed"])
    parse_status: Series[str] = pa.Field(nullable=True)
    order: Series[str] = pa.Field(nullable=True, isin=["ab", "ba"])
    raw_output: Series[str] = pa.Field(nullable=True)
    error: Series[str] = pa.Field(nullable=True)
    prompt_tokens: Series[pl.Int64] = pa.Field(nullable=True, ge=0)
    completion_tokens: Series[pl.Int64] = pa.Field(nullable=True, ge=0)
    latency_s: Series[pl.Float64] = pa.Field(nullable=True, ge=0)
    cost_usd: Series[pl.Float64] = pa.Field(nullable=True, ge=0)
    attempts: Series[pl.Int64] = pa.Field(nullable=True, ge=1)
    pii_action: Series[str] = pa.Field(nullable=True)
    constitution_hash: Series[str] = pa.Field(nullable=True)
    template_hash: Series[str] = pa.Field(nullable=True)
    position_consistent: Series[pl.Boolean] = pa.Field(nullable=True)

    @pa.dataframe_check
    def choice_iff_ok(cls, data: PolarsData) -> pl.LazyFrame:  # noqa: N805
        """A verdict exists exactly when the judgment succeeded: failures are never coerced into one."""
        return data.lazyframe.select((pl.col("status") == "ok") == pl.col("choice").is_not_null())

    @pa.dataframe_check
    def provenance_by_origin(cls, data: PolarsData) -> pl.LazyFrame:  # noqa: N805
        """Recorded rows name their landing file and line; live rows name their presentation order."""
        recorded = pl.col("origin") == "recorded"
        return data.lazyframe.select(
            pl.when(recorded)
            .then(pl.col("source_file").is_not_null() & pl.col("source_line").is_not_null())
            .otherwise(pl.col("order").is_not_null())
        )


class Quarantine(_Base):
    quarantine_id: Series[str] = pa.Field(unique=True, str_matches=HEX16)
    table: Series[str]
    batch_date: Series[pl.Date] = pa.Field(nullable=True)
    source: Series[str]
    source_file: Series[str]
    line: Series[pl.Int64] = pa.Field(ge=1)
    field: Series[str]
    reason: Series[str]
    raw: Series[str]


class HumanConsensus(_Base):
    """One verdict per labelled pair, by the policy's method, with what was excluded and why it was."""

    pair_id: Series[str] = pa.Field(unique=True, str_matches=HEX16)
    n_labels: Series[pl.Int64] = pa.Field(ge=0)
    n_a: Series[pl.Int64] = pa.Field(ge=0)
    n_b: Series[pl.Int64] = pa.Field(ge=0)
    n_tie: Series[pl.Int64] = pa.Field(ge=0)
    verdict: Series[str] = pa.Field(isin=["a", "b", "tie", "no_majority", "excluded"])
    agreement: Series[pl.Float64] = pa.Field(ge=0, le=1)
    label_ids: Series[pl.List(pl.String)]
    rater_ids: Series[pl.List(pl.String)]
    sources: Series[pl.List(pl.String)]
    p_a: Series[pl.Float64] = pa.Field(nullable=True, ge=0, le=1)
    p_b: Series[pl.Float64] = pa.Field(nullable=True, ge=0, le=1)
    p_tie: Series[pl.Float64] = pa.Field(nullable=True, ge=0, le=1)
    confidence: Series[pl.Float64] = pa.Field(nullable=True, ge=0, le=1)
    method: Series[str] = pa.Field(isin=["majority", "dawid_skene", "gold"])
    excluded_label_ids: Series[pl.List(pl.String)]
    excluded_rater_ids: Series[pl.List(pl.String)]

    @pa.dataframe_check
    def counts_add_up(cls, data: PolarsData) -> pl.LazyFrame:  # noqa: N805
        return data.lazyframe.select(pl.col("n_a") + pl.col("n_b") + pl.col("n_tie") == pl.col("n_labels"))

    @pa.dataframe_check
    def excluded_iff_no_labels(cls, data: PolarsData) -> pl.LazyFrame:  # noqa: N805
        return data.lazyframe.select((pl.col("verdict") == "excluded") == (pl.col("n_labels") == 0))


class PreferenceSet(_Base):
    """TRL's preference columns plus per-row provenance."""

    example_id: Series[str] = pa.Field(unique=True, str_matches=HEX16)
    prompt: Series[str] = pa.Field(str_length={"min_value": 1})
    chosen: Series[str] = pa.Field(str_length={"min_value": 1})
    rejected: Series[str] = pa.Field(str_length={"min_value": 1})
    pair_id: Series[str] = pa.Field(unique=True, str_matches=HEX16)
    prompt_id: Series[str] = pa.Field(str_matches=HEX16)
    chosen_side: Series[str] = pa.Field(isin=["a", "b"])
    split: Series[str] = pa.Field(isin=["train", "eval"])
    category: Series[str] = pa.Field(nullable=True)
    language: Series[str] = pa.Field(nullable=True)
    pair_source: Series[str]
    label_origin: Series[str] = pa.Field(isin=["human", "judge"])
    label_source: Series[str]
    n_labels: Series[pl.Int64] = pa.Field(ge=0, description="Human labels behind the row (0 on judge rows).")
    agreement: Series[pl.Float64] = pa.Field(ge=0, le=1)
    confidence: Series[pl.Float64] = pa.Field(ge=0, le=1)
    weight: Series[pl.Float64] = pa.Field(ge=0, le=1)
    consensus_method: Series[str]
    label_ids: Series[pl.List(pl.String)]
    rater_ids: Series[pl.List(pl.String)]
    excluded_rater_ids: Series[pl.List(pl.String)]
    judge_ids: Series[pl.List(pl.String)]
    judge_label_ids: Series[pl.List(pl.String)]
    constitution_hashes: Series[pl.List(pl.String)]
    policy_hash: Series[str]

    @pa.dataframe_check
    def provenance_by_origin(cls, data: PolarsData) -> pl.LazyFrame:  # noqa: N805
        """Human rows rest on human labels; judge rows name the judge and its labels."""
        human = pl.col("label_origin") == "human"
        return data.lazyframe.select(
            pl.when(human)
            .then((pl.col("n_labels") >= 1) & (pl.col("label_ids").list.len() >= 1))
            .otherwise((pl.col("judge_ids").list.len() >= 1) & (pl.col("judge_label_ids").list.len() >= 1))
        )

    @pa.dataframe_check
    def chosen_differs(cls, data: PolarsData) -> pl.LazyFrame:  # noqa: N805
        return data.lazyframe.select(pl.col("chosen") != pl.col("rejected"))


def validate(model: type[pa.DataFrameModel], df: pl.DataFrame) -> pl.DataFrame:
    """Validate an eager frame with data checks (``lazy=True`` collects every failure into one error)."""
    return model.validate(df, lazy=True)  # type: ignore[return-value]
