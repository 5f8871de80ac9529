"""Run judges over pairs in both presentation orders, resumably, and tabulate what they said.

:func:`judge_pairs` (sync) / :func:`ajudge_pairs` (async):

1. builds both orders (``ab``, ``ba``) of every pair for every judge -- the cache keys;
2. reads the cache once per judge; keys that already hold an **ok** judgment are not judged again (a rerun of a
   finished run makes zero judge calls); failed ones are tried again;
3. for non-local judges applies the PII guard to prompt and both responses (``redact`` sends placeholders,
   ``skip`` records a failed judgment with parse status ``skipped_pii`` and sends nothing, ``allow`` sends as
   is); local judges record ``pii_action="local"``. The action is recorded on every judgment;
4. calls the judge in batches of ``batch_size`` and writes each finished batch to the cache before the next one
   starts, so a crash loses at most one batch;
5. re-tries keys that failed (other than ``skipped_pii``) for up to ``max_retries`` further rounds; a
   judgment's ``attempts`` adds up the judge calls made for its key, earlier runs included;
6. reports ``progress(done, total)`` -- keys settled (cached, ok, or failed for good) out of all keys.

Every judgment it writes or returns -- from any judge, and its own skipped / crashed records -- has its free text
scrubbed of registered secrets, auth-header echoes and key-shaped strings (:mod:`prefgate.judges.secrets`).

:func:`judgments_frame` tabulates judgments; :func:`position_consistency` compares the two orders per judge and
pair; :func:`consistency_summary` gives each judge's consistency rate and first-position win rate.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace

import polars as pl

from prefgate.judges.base import ORDERS, Judge, Judgment, Order, PairView, PiiAction
from prefgate.judges.cache import CacheKey, JudgmentCache
from prefgate.judges.pii import PII_POLICIES, PiiPolicy, guard
from prefgate.judges.secrets import known_secrets, scrub_judgment

Progress = Callable[[int, int], None]
REQUIRED_COLUMNS = ("pair_id", "prompt", "response_a", "response_b", "category")

JUDGMENT_SCHEMA: dict[str, pl.DataType] = {
    "judge_id": pl.String(),
    "pair_id": pl.String(),
    "order": pl.String(),
    "status": pl.String(),
    "parse_status": pl.String(),
    "verdict": pl.String(),
    "choice": pl.String(),
    "probability_a": pl.Float64(),
    "shown_first": pl.String(),
    "raw_output": pl.String(),
    "rationale": pl.String(),
    "error": pl.String(),
    "prompt_tokens": pl.Int64(),
    "completion_tokens": pl.Int64(),
    "tokens": pl.Int64(),
    "latency_s": pl.Float64(),
    "cost_usd": pl.Float64(),
    "attempts": pl.Int64(),
    "pii_action": pl.String(),
    "constitution_hash": pl.String(),
    "template_hash": pl.String(),
}


class _Pairs:
    """The pairs frame as column lists; a :class:`PairView` is made only for a key that must be judged."""

    def __init__(self, pairs: pl.DataFrame) -> None:
        missing = [c for c in REQUIRED_COLUMNS if c not in pairs.columns]
        if missing:
            raise ValueError(f"pairs frame lacks column(s): {', '.join(missing)}")
        ids = pairs.get_column("pair_id").cast(pl.String)
        if ids.null_count():
            raise ValueError("pairs frame has a null pair_id")
        dupes = ids.filter(ids.is_duplicated())
        if dupes.len():
            raise ValueError(f"pairs frame has pair_id {dupes[0]!r} twice")
        self.ids: list[str] = ids.to_list()
        self._index = {pid: i for i, pid in enumerate(self.ids)}

        def strings(name: str) -> list[str | None]:
            if name not in pairs.columns:
                return [None] * len(self.ids)
            return pairs.get_column(name).cast(pl.String).to_list()

        self._cols = {name: strings(name) for name in ("prompt", "response_a", "response_b", "category", "safety")}

    def __len__(self) -> int:
        return len(self.ids)

    def view(self, pair_id: str, order: Order) -> PairView:
        i = self._index[pair_id]
        c = self._cols
        return PairView.of(
            pair_id, c["prompt"][i] or "", c["response_a"][i] or "", c["response_b"][i] or "", order,
            category=c["category"][i], safety=c["safety"][i],
        )  # fmt: skip


_ACTION_RANK: tuple[PiiAction, ...] = ("skipped", "redacted", "allowed")


def _guarded(view: PairView, policy: PiiPolicy) -> tuple[PairView, PiiAction, list[str]]:
    """The view as it may be sent, the action taken, and the PII kinds found."""
    texts = {"prompt": view.prompt, "first": view.first, "second": view.second}
    kinds: list[str] = []
    actions: set[PiiAction] = set()
    out: dict[str, str] = {}
    for name, text in texts.items():
        new, taken, findings = guard(text, policy)
        out[name] = new
        actions.add(taken)
        kinds.extend(f.kind for f in findings)
    action: PiiAction = "none"
    for candidate in _ACTION_RANK:
        if candidate in actions:
            action = candidate
            break
    return replace(view, prompt=out["prompt"], first=out["first"], second=out["second"]), action, sorted(set(kinds))


def _skipped(judge: Judge, view: PairView, kinds: list[str]) -> Judgment:
    return Judgment(
        judge_id=judge.judge_id,
        pair_id=view.pair_id,
        order=view.order,
        status="failed",
        parse_status="skipped_pii",
        error=f"not sent: PII found ({', '.join(kinds)}) and the PII policy is 'skip'",
        attempts=0,
        pii_action="skipped",
        constitution_hash=str(getattr(judge, "constitution_hash", "")),
        template_hash=str(getattr(judge, "template_hash", "")),
        extra={"pii_kinds": kinds},
    )


def _crashed(judge: Judge, view: PairView, exc: BaseException) -> Judgment:
    return Judgment(
        judge_id=judge.judge_id,
        pair_id=view.pair_id,
        order=view.order,
        status="failed",
        parse_status="error",
        error=f"judge raised {type(exc).__name__}: {exc}",
        constitution_hash=str(getattr(judge, "constitution_hash", "")),
        template_hash=str(getattr(judge, "template_hash", "")),
    )


def _retryable(j: Judgment) -> bool:
    return j.status == "failed" and j.parse_status != "skipped_pii"


async def _call(judge: Judge, views: Sequence[PairView]) -> list[Judgment]:
    """The judge's answers, checked to be one per view with matching keys; a crash becomes failed judgments."""
    try:
        answers = await judge.judge(views)
    except Exception as exc:
        return [_crashed(judge, v, exc) for v in views]
    if len(answers) != len(views):
        raise RuntimeError(f"judge {judge.judge_id} returned {len(answers)} judgments for {len(views)} views")
    for v, j in zip(views, answers, strict=True):
        if (j.judge_id, j.pair_id, j.order) != (judge.judge_id, v.pair_id, v.order):
            raise RuntimeError(
                f"judge {judge.judge_id} answered {(j.judge_id, j.pair_id, j.order)} for {(v.pair_id, v.order)}"
            )
    return answers


async def ajudge_pairs(
    pairs: pl.DataFrame,
    judges: Sequence[Judge],
    cache: JudgmentCache,
    *,
    pii_policy: PiiPolicy = "redact",
    max_retries: int = 2,
    batch_size: int = 64,
    progress: Progress | None = None,
) -> list[Judgment]:
    """Async :func:`judge_pairs` (use it inside a running event loop)."""
    if pii_policy not in PII_POLICIES:
        raise ValueError(f"unknown PII policy {pii_policy!r}; expected one of {', '.join(PII_POLICIES)}")
    if max_retries < 0 or batch_size < 1:
        raise ValueError("max_retries must be >= 0 and batch_size >= 1")
    ids = [j.judge_id for j in judges]
    if len(set(ids)) != len(ids):
        raise ValueError("two judges share a judge_id")
    table = _Pairs(pairs)
    total = len(table) * len(ORDERS) * len(judges)
    done = 0
    results: dict[CacheKey, Judgment] = {}

    def tick(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None and n:
            progress(done, total)

    if progress is not None:
        progress(0, total)
    for judge in judges:
        keys: list[CacheKey] = [(judge.judge_id, pid, order) for pid in table.ids for order in ORDERS]
        cached = cache.get_many(keys)
        results.update(cached)
        # every key without an ok judgment is (re)judged, skipped_pii ones too: the PII policy may have changed
        todo = [k for k in keys if k not in cached or cached[k].status != "ok"]
        tick(len(keys) - len(todo))
        for round_no in range(max_retries + 1):
            if not todo:
                break
            last_round = round_no == max_retries
            failed: list[CacheKey] = []
            for start in range(0, len(todo), batch_size):
                batch = todo[start : start + batch_size]
                ready: dict[CacheKey, Judgment] = {}
                send: list[PairView] = []
                actions: dict[CacheKey, tuple[PiiAction, list[str]]] = {}
                for key in batch:
                    view = table.view(key[1], key[2])
                    if judge.local:
                        actions[key] = ("local", [])
                        send.append(view)
                        continue
                    safe_view, action, kinds = _guarded(view, pii_policy)
                    if action == "skipped":
                        ready[key] = _skipped(judge, view, kinds)
                    else:
                        actions[key] = (action, kinds)
                        send.append(safe_view)
                for j in await _call(judge, send) if send else []:
                    key = (j.judge_id, j.pair_id, j.order)
                    j.pii_action, kinds = actions[key]
                    if kinds:
                        j.extra["pii_kinds"] = kinds
                    ready[key] = j
                secrets = known_secrets()
                for key, j in list(ready.items()):
                    j = scrub_judgment(j, secrets)  # any judge, any path: no secret is cached or returned
                    previous = results.get(key)
                    if previous is not None and previous.status == "failed":
                        j.attempts += previous.attempts
                    ready[key] = results[key] = j
                cache.put_many(ready.values())
                settled = 0
                for key in batch:
                    if _retryable(results[key]) and not last_round:
                        failed.append(key)
                    else:
                        settled += 1
                tick(settled)
            todo = failed
    return [results[(judge.judge_id, pid, order)] for judge in judges for pid in table.ids for order in ORDERS]


def judge_pairs(
    pairs: pl.DataFrame,
    judges: Sequence[Judge],
    cache: JudgmentCache,
    *,
    pii_policy: PiiPolicy = "redact",
    max_retries: int = 2,
    batch_size: int = 64,
    progress: Progress | None = None,
) -> list[Judgment]:
    """Judge every pair in both orders with every judge, resuming from the cache (see the module docstring).

    Args:
        pairs: ``pair_id``, ``prompt``, ``response_a``, ``response_b``, ``category`` (and optionally ``safety``).
        judges: objects implementing :class:`prefgate.judges.base.Judge` (distinct judge ids).
        cache: the durable store; every finished batch is committed before the next starts.
        pii_policy: ``redact`` | ``skip`` | ``allow``, for non-local judges.
        max_retries: further rounds for keys that failed (``policy.judges.max_attempts - 1``).
        batch_size: views per judge call and per cache commit.
        progress: called with ``(done, total)`` keys.

    Returns:
        The final judgment of every key, judge by judge, pair by pair (frame order), ``ab`` before ``ba``.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError("judge_pairs() was called inside a running event loop; await ajudge_pairs() instead")
    return asyncio.run(
        ajudge_pairs(
            pairs,
            judges,
            cache,
            pii_policy=pii_policy,
            max_retries=max_retries,
            batch_size=batch_size,
            progress=progress,
        )
    )


def judgments_frame(judgments: Iterable[Judgment]) -> pl.DataFrame:
    """One row per judgment (canonical ``choice`` a/b/tie or null, ``probability_a``, ``shown_first`` a/b, ...)."""
    rows = []
    for j in judgments:
        tokens = (
            None
            if j.prompt_tokens is None and j.completion_tokens is None
            else ((j.prompt_tokens or 0) + (j.completion_tokens or 0))
        )
        rows.append(
            {
                "judge_id": j.judge_id,
                "pair_id": j.pair_id,
                "order": j.order,
                "status": j.status,
                "parse_status": j.parse_status,
                "verdict": j.verdict,
                "choice": j.canonical_choice(),
                "probability_a": j.probability_a(),
                "shown_first": "a" if j.order == "ab" else "b",
                "raw_output": j.raw_output,
                "rationale": j.rationale,
                "error": j.error,
                "prompt_tokens": j.prompt_tokens,
                "completion_tokens": j.completion_tokens,
                "tokens": tokens,
                "latency_s": float(j.latency_s),
                "cost_usd": j.cost_usd,
                "attempts": j.attempts,
                "pii_action": j.pii_action,
                "constitution_hash": j.constitution_hash,
                "template_hash": j.template_hash,
            }
        )
    return pl.DataFrame(rows, schema=JUDGMENT_SCHEMA, orient="row") if rows else pl.DataFrame(schema=JUDGMENT_SCHEMA)


CONSISTENCY_SCHEMA: dict[str, pl.DataType] = {
    "judge_id": pl.String(),
    "pair_id": pl.String(),
    "choice_ab": pl.String(),
    "choice_ba": pl.String(),
    "probability_a_ab": pl.Float64(),
    "probability_a_ba": pl.Float64(),
    "both_ok": pl.Boolean(),
    "consistent": pl.Boolean(),
    "consistency": pl.String(),
    "choice": pl.String(),
}


def position_consistency(frame: pl.DataFrame) -> pl.DataFrame:
    """Per (judge_id, pair_id): do the two orders agree on the canonical choice?

    ``consistency`` is ``"consistent"`` (both orders ok, same choice), ``"inconsistent"`` (both ok, different
    choices: a position effect -- the row is kept and marked, not dropped) or ``"incomplete"`` (an order is
    missing or failed). ``consistent`` is the boolean of the first case; ``choice`` is the agreed choice when
    consistent, else null. Failed judgments count as missing.
    """
    if frame.is_empty():
        return pl.DataFrame(schema=CONSISTENCY_SCHEMA)
    ok = frame.filter(pl.col("status") == "ok")
    side = {
        o: ok.filter(pl.col("order") == o).select(
            "judge_id",
            "pair_id",
            pl.col("choice").alias(f"choice_{o}"),
            pl.col("probability_a").alias(f"probability_a_{o}"),
        )
        for o in ORDERS
    }
    keys = frame.select("judge_id", "pair_id").unique(maintain_order=True)
    out = keys.join(side["ab"], on=["judge_id", "pair_id"], how="left").join(
        side["ba"], on=["judge_id", "pair_id"], how="left"
    )
    both = pl.col("choice_ab").is_not_null() & pl.col("choice_ba").is_not_null()
    same = both & (pl.col("choice_ab") == pl.col("choice_ba"))
    return (
        out.with_columns(
            both.alias("both_ok"),
            same.alias("consistent"),
            pl.when(same)
            .then(pl.lit("consistent"))
            .when(both)
            .then(pl.lit("inconsistent"))
            .otherwise(pl.lit("incomplete"))
            .alias("consistency"),
            pl.when(same).then(pl.col("choice_ab")).otherwise(pl.lit(None, pl.String)).alias("choice"),
        )
        .select(list(CONSISTENCY_SCHEMA))
        .cast(pl.Schema(CONSISTENCY_SCHEMA))
    )


def consistency_summary(frame: pl.DataFrame) -> pl.DataFrame:
    """Per judge: pairs, complete pairs, consistent pairs, consistency rate, and the first-position win rate.

    ``first_win_rate`` is the share of ok, non-tie judgments that prefer the response shown first (0.5 for an
    unbiased judge over both orders).
    """
    pc = position_consistency(frame)
    rates = (
        pc.group_by("judge_id", maintain_order=True)
        .agg(
            pl.len().alias("n_pairs"),
            pl.col("both_ok").sum().alias("n_complete"),
            pl.col("consistent").sum().alias("n_consistent"),
        )
        .with_columns(
            pl.when(pl.col("n_complete") > 0)
            .then(pl.col("n_consistent") / pl.col("n_complete"))
            .alias("consistency_rate")
        )
    )
    decisive = frame.filter((pl.col("status") == "ok") & pl.col("verdict").is_in(["first", "second"]))
    bias = decisive.group_by("judge_id").agg((pl.col("verdict") == "first").mean().alias("first_win_rate"))
    return rates.join(bias, on="judge_id", how="left")
