"""Audits of an assembled preference set: length bias, sycophancy, over-refusal and coverage.

Each audit reads a frame with TRL's ``prompt`` / ``chosen`` / ``rejected`` plus ``category``, ``language``
(nullable), ``split``, ``weight`` and optionally ``safety`` ("safe" / "unsafe" / null) and ``example_id``
(rows are identified by it in flagged lists, else by their row number as a string). They answer the question
"what would a model trained on this set learn besides the task?": to write longer (length bias, Singhal et al.
2023), to agree and flatter (sycophancy, Sharma et al. 2023), to refuse harmless requests (over-refusal, XSTest).
Everything is string matching and counting in Polars, so it runs on millions of rows without a model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from statistics import NormalDist
from typing import Any

import polars as pl

from prefgate.quotas import DEFAULT_DIMS, UNKNOWN, cell_keys, resolve_quota
from prefgate.refusal import ascii_regex, refusal_expr

__all__ = [
    "AGREEMENT_PATTERNS",
    "FLATTERY_PATTERNS",
    "PREMISE_PATTERNS",
    "UNSAFE_REQUEST_PATTERNS",
    "audit_summary",
    "coverage",
    "length_bias",
    "looks_unsafe",
    "over_refusal",
    "over_refusal_flags",
    "sycophancy",
    "sycophancy_flags",
    "wilson_interval",
]

# ---------------------------------------------------------------------------------------------- length bias


def wilson_interval(successes: pl.Expr, n: pl.Expr, alpha: float = 0.05) -> tuple[pl.Expr, pl.Expr]:
    """Wilson score interval for a binomial proportion (Wilson 1927); null where ``n`` is 0.

    Same as ``statsmodels.stats.proportion.proportion_confint(k, n, alpha, method="wilson")``.
    """
    z = NormalDist().inv_cdf(1 - alpha / 2)
    nf = n.cast(pl.Float64)
    p = successes.cast(pl.Float64) / nf
    denom = 1 + z**2 / nf
    centre = (p + z**2 / (2 * nf)) / denom
    half = z / denom * (p * (1 - p) / nf + z**2 / (4 * nf**2)).sqrt()
    valid = n > 0
    return (
        pl.when(valid).then(centre - half).otherwise(None),
        pl.when(valid).then(centre + half).otherwise(None),
    )


def _ids(df: pl.DataFrame) -> pl.Expr:
    if "example_id" in df.columns:
        return pl.col("example_id").cast(pl.String)
    return pl.int_range(pl.len(), dtype=pl.Int64).cast(pl.String)


def _group_values(by: str) -> pl.Expr:
    return pl.col(by).cast(pl.String).fill_null(UNKNOWN)


def length_bias(df: pl.DataFrame, by: str | None = None, alpha: float = 0.05) -> pl.DataFrame:
    """How often the chosen response is the longer one, overall and per value of ``by``.

    Length is in characters. ``p_chosen_longer`` = chosen longer / pairs of unequal length (ties excluded, as
    ``n_ties``), with a Wilson interval at level ``1 - alpha``; 0.5 means no length preference. The ratio
    chosen/rejected length is averaged (mean, median) over pairs whose rejected response is non-empty.
    Columns: ``dimension`` ("all" or ``by``), ``group``, ``n``, ``n_ties``, ``n_chosen_longer``,
    ``p_chosen_longer``, ``ci_low``, ``ci_high``, ``mean_length_ratio``, ``median_length_ratio``.
    """
    lengths = df.select(
        pl.col("chosen").fill_null("").str.len_chars().alias("lc"),
        pl.col("rejected").fill_null("").str.len_chars().alias("lr"),
        (_group_values(by) if by else pl.lit("all")).alias("group"),
    )
    k = (pl.col("lc") > pl.col("lr")).sum()
    untied = (pl.col("lc") != pl.col("lr")).sum()
    ratio = (pl.col("lc").cast(pl.Float64) / pl.col("lr")).filter(pl.col("lr") > 0)
    aggs = [
        pl.len().alias("n"),
        (pl.col("lc") == pl.col("lr")).sum().alias("n_ties"),
        k.alias("n_chosen_longer"),
        untied.alias("__untied"),
        ratio.mean().alias("mean_length_ratio"),
        ratio.median().alias("median_length_ratio"),
    ]
    overall = lengths.select(pl.lit("all").alias("dimension"), pl.lit("all").alias("group"), *aggs)
    parts = [overall]
    if by:
        per = lengths.group_by("group").agg(aggs).sort("group")
        parts.append(per.select(pl.lit(by).alias("dimension"), pl.all()))
    out = pl.concat(parts, how="vertical_relaxed")
    lo, hi = wilson_interval(pl.col("n_chosen_longer"), pl.col("__untied"), alpha)
    p = pl.when(pl.col("__untied") > 0).then(pl.col("n_chosen_longer") / pl.col("__untied")).otherwise(None)
    return out.with_columns(p.alias("p_chosen_longer"), lo.alias("ci_low"), hi.alias("ci_high")).select(
        "dimension",
        "group",
        pl.col("n").cast(pl.Int64),
        pl.col("n_ties").cast(pl.Int64),
        pl.col("n_chosen_longer").cast(pl.Int64),
        "p_chosen_longer",
        "ci_low",
        "ci_high",
        "mean_length_ratio",
        "median_length_ratio",
    )


# ---------------------------------------------------------------------------------------------- sycophancy

# The user asserts a premise or opinion (searched in the lower-cased prompt).
PREMISE_PATTERNS: tuple[str, ...] = (
    r"\bi (really |strongly |honestly )?(think|believe|feel like|feel that|reckon|suspect)\b",
    r"\bi('m| am) (pretty |quite |absolutely |fairly )?(sure|certain|convinced|positive) (that|it|this|he|she|they)\b",
    r"\bin my (honest )?(opinion|view)\b",
    r"\b(isn't|is not|wasn't|aren't|don't|doesn't) it (true|obvious|clear)\b",
    r"\b(as )?every(one|body) knows\b",
    r"\bit('s| is) (obvious|clear|a fact|common knowledge) that\b",
    r"\bobviously\b",
    r"\b(right|correct|agreed|true)\s*\?",
    r"\b(don't|wouldn't|won't) you (agree|think)\b",
    r"\bam i (right|wrong|correct)\b",
    r"\bmy (theory|view|opinion|belief) is\b",
)

# The response agrees with the user (searched in the first AGREEMENT_WINDOW characters).
AGREEMENT_WINDOW = 200
AGREEMENT_PATTERNS: tuple[str, ...] = (
    r"^(yes|yeah|yep|absolutely|exactly|definitely|indeed|certainly|correct|totally|of course)\b",
    r"\byou('re| are) (absolutely |completely |totally |so |quite |exactly |entirely )?(right|correct)\b",
    r"\bi (completely |totally |fully |strongly |wholeheartedly )?agree\b",
    r"\b(great|good|excellent|valid|fair) point\b",
    r"\bthat('s| is) (so |absolutely |exactly |completely )?(true|correct|right)\b",
    r"\byes,? exactly\b",
    r"\bspot on\b",
    r"\byou('ve| have) (hit|nailed) it\b",
)

# Flattery of the user (searched in the whole lower-cased response).
FLATTERY_PATTERNS: tuple[str, ...] = (
    r"\b(great|excellent|good|fantastic|wonderful|brilliant|insightful|thoughtful|interesting|fascinating) question\b",
    r"\bwhat an? (great|wonderful|fantastic|lovely|brilliant|thoughtful|insightful|excellent|amazing|interesting)\b",
    r"\b(great|wonderful|fantastic|brilliant|excellent|amazing|lovely) idea\b",
    r"\byou('re| are) (so |very |really |clearly |incredibly )?"
    r"(smart|clever|insightful|thoughtful|wise|brilliant|intelligent)\b",
    r"\bi love (this|your|that) (question|idea|thinking)\b",
    r"\b(such|a) (great|wonderful|thoughtful|insightful) (question|point|observation)\b",
    r"\byou (clearly )?(have|show) (great|excellent|impeccable) (taste|judgment|judgement|insight)\b",
)


def _contains_any(text: pl.Expr, patterns: tuple[str, ...]) -> pl.Expr:
    """True where any pattern matches ``text`` (see :func:`prefgate.refusal.ascii_regex`)."""
    return text.str.contains(ascii_regex(patterns))


def _lower(col: str) -> pl.Expr:
    return pl.col(col).fill_null("").str.to_lowercase().str.replace_all("[’‘]", "'").str.strip_chars_start()


def sycophancy_flags(df: pl.DataFrame) -> pl.DataFrame:
    """``df`` plus Boolean columns ``premise`` (the prompt asserts an opinion), ``chosen_agrees`` /
    ``rejected_agrees``, ``chosen_flatters`` / ``rejected_flatters``, and the row flags
    ``sycophantic_choice`` (premise, chosen agrees, rejected does not) and ``flattery_choice`` (chosen flatters,
    rejected does not)."""
    out = df.with_columns(
        _contains_any(_lower("prompt"), PREMISE_PATTERNS).alias("premise"),
        _contains_any(_lower("chosen").str.slice(0, AGREEMENT_WINDOW), AGREEMENT_PATTERNS).alias("chosen_agrees"),
        _contains_any(_lower("rejected").str.slice(0, AGREEMENT_WINDOW), AGREEMENT_PATTERNS).alias("rejected_agrees"),
        _contains_any(_lower("chosen"), FLATTERY_PATTERNS).alias("chosen_flatters"),
        _contains_any(_lower("rejected"), FLATTERY_PATTERNS).alias("rejected_flatters"),
    )
    return out.with_columns(
        (pl.col("premise") & pl.col("chosen_agrees") & ~pl.col("rejected_agrees")).alias("sycophantic_choice"),
        (pl.col("chosen_flatters") & ~pl.col("rejected_flatters")).alias("flattery_choice"),
    )


def sycophancy(df: pl.DataFrame) -> pl.DataFrame:
    """Agreement with user premises and flattery, in chosen vs rejected responses.

    Two rows, ``signal`` = ``premise_agreement`` (over prompts that assert a premise: how often each side opens
    by agreeing) and ``flattery`` (over all rows). A set whose chosen side agrees or flatters more often than its
    rejected side (``excess`` > 0) teaches sycophancy. ``flagged_ids`` lists the rows where only the chosen side
    does it (``sycophantic_choice`` / ``flattery_choice`` in :func:`sycophancy_flags`).
    Columns: ``signal``, ``n``, ``chosen_n``, ``rejected_n``, ``chosen_rate``, ``rejected_rate``, ``excess``,
    ``n_flagged``, ``flagged_ids``.
    """
    flags = sycophancy_flags(df).with_columns(_ids(df).alias("__id"), pl.lit(True).alias("__all"))
    specs = [
        ("premise_agreement", pl.col("premise"), "chosen_agrees", "rejected_agrees", "sycophantic_choice"),
        ("flattery", pl.col("__all"), "chosen_flatters", "rejected_flatters", "flattery_choice"),
    ]
    rows = []
    for signal, scope, chosen, rejected, flag in specs:
        rows.append(
            flags.select(
                pl.lit(signal).alias("signal"),
                scope.sum().cast(pl.Int64).alias("n"),
                (scope & pl.col(chosen)).sum().cast(pl.Int64).alias("chosen_n"),
                (scope & pl.col(rejected)).sum().cast(pl.Int64).alias("rejected_n"),
                pl.col("__id").filter(scope & pl.col(flag)).implode().alias("flagged_ids"),
            )
        )
    out = pl.concat(rows)
    rate = {side: pl.when(pl.col("n") > 0).then(pl.col(f"{side}_n") / pl.col("n")) for side in ("chosen", "rejected")}
    return out.with_columns(
        rate["chosen"].alias("chosen_rate"),
        rate["rejected"].alias("rejected_rate"),
        pl.col("flagged_ids").list.len().cast(pl.Int64).alias("n_flagged"),
    ).select(
        "signal",
        "n",
        "chosen_n",
        "rejected_n",
        "chosen_rate",
        "rejected_rate",
        (pl.col("chosen_rate") - pl.col("rejected_rate")).alias("excess"),
        "n_flagged",
        "flagged_ids",
    )


# ---------------------------------------------------------------------------------------------- over-refusal

# A small unsafe-request detector for sets without a ``safety`` column: requests to harm people, obtain weapons
# or drugs, commit crimes or self-harm. It is deliberately narrow (the verb needs a person, weapon or drug
# object), so "how do I kill a Python process" stays benign; it still misses euphemisms, role-play framings,
# multi-turn build-ups and every language but English, and flags benign questions about the same topics
# ("how do criminals launder money?"). Measured on XSTest's safe/unsafe prompts in tests/unit/test_set_audits.py.
_PERSON = (
    r"(someone|somebody|anyone|a (person|man|woman|child|kid|baby|toddler|girl|boy|cop|police officer|politician"
    r"|neighbou?r|human|stranger)|the president|people|humans?|immigrants|my (\w+ )?(wife|husband|spouse|partner"
    r"|boss|ex|neighbou?r|teacher|mom|mother|dad|father|sister|brother|friend|coworker|classmate|girlfriend"
    r"|boyfriend|child|son|daughter|family|date|grandparent|grandmother|grandfather)|him|her|them|myself)"
)
_HARM_VERB = (
    r"(kill|murder|poison|stab|shoot|strangle|choke|drown|kidnap|abduct|tortur|assault|rape|molest|beat|hurt"
    r"|harm|behead|execut|assassinat|slaughter|maim|suffocat|terminat|eliminat|overpower|throttl|smash|crush"
    r"|butcher|slay|snipe|annihilat|exterminat|eradicat|punch|shatter|hunt down|take out|push|slash|stalk"
    r"|blackmail|extort|dox|drug|hold|take)"
)
_TARGET = r"(house|home|school|hospital|building|concert|city|stadium|army base|airport|church|mosque|synagogue|car)"
UNSAFE_REQUEST_PATTERNS: tuple[str, ...] = (
    rf"\b{_HARM_VERB}\w{{0,3}}( \S+){{0,2}}? {_PERSON}('s)?\b",
    r"\b(make|build|create|assemble|construct|cook|synthesi[sz]e|manufacture|print) (a |an |some )?(homemade )?"
    r"(bomb|explosive|pipe bomb|molotov|grenade|nerve agent|bioweapon|chemical weapon|weapon|meth"
    r"|methamphetamine|crack cocaine|ricin|sarin|napalm|untraceable gun|ghost gun)s?\b",
    rf"\b(blow(ing)? up|bomb(ing)?|burn(ing)? down|explod\w*|demolish\w*|set(ting)?) (\S+ ){{0,3}}?{_TARGET}",
    r"\bset (\S+ ){0,3}on fire\b",
    r"\b(buy|get|getting|obtain|score|find|purchase|sell|deal)( \S+){0,3}? (cocaine|coke|heroin|meth|crack"
    r"|fentanyl|ecstasy|mdma|lsd|weed|illegal drugs|an illegal gun|a gun illegally|unregistered gun)\b",
    r"\b(hack|break) into (someone|a|my|his|her|their|the)\b",
    r"\bsteal(ing)? (someone'?s?|a|an|his|her|their|money|credit card|identity|identities|passwords?|cars?"
    r"|without)\b",
    r"\b(commit(ting)?|get away with|plan(ning)?) (a |an )?(murder|massacre|fraud|arson|tax evasion|identity theft"
    r"|crime|crimes|insurance fraud|bank account fraud|assassination|genocide|terrorist attack)\b",
    r"\brob(bing)? (a|the) \w+",
    r"\b(launder|laundering) money\b",
    r"\b(kill|hurt|harm|cut) myself\b|\bcommit suicide\b|\bend my (own )?life\b|\b(my own|my cervical) artery\b",
    r"\b(child|underage|minor) (porn|pornography|sexual|sex)\b",
    r"\bwithout (them|him|her|anyone|my \w+) (knowing|noticing|finding out)\b",
    r"\b(human|sex) trafficking (ring|operation|business)\b",
    r"\b(racist|sexist|homophobic) (joke|slur|insult)s?\b",
    r"\b(a|the|my|someone's) (human|dead) (body|skull|head|spine)\b",
    r"\b(malware|ransomware|keylogger|phishing|botnet|ddos|cyberattack|computer virus|exploit vulnerabilit\w*)\b",
    r"\b(hate speech|insider trading|credit card fraud|identity theft|counterfeit (money|goods|currency))\b",
    r"\b(spread\w*|promot\w*) (\S+ ){0,2}?(misinformation|disinformation|false information|violence|hatred)\b",
    r"\b(evade|avoid|without) (getting caught|detection|law enforcement|the police)\b",
    r"\b(cause|causing|inflict\w*) (\S+ ){0,2}?(physical harm|harm to|casualties|damage to)\b",
    r"\b(terrorist attack|mass shooting|poison (a|the) water supply|bomb threat)\b",
    r"\b(pirated|stolen) (content|goods|credit cards?|data)\b",
    r"\bsteal\w{0,3} (from|personal|sensitive|confidential)\b",
)


def looks_unsafe(prompts: pl.Series) -> pl.Series:
    """Keyword detector of harmful requests: ``True`` where a prompt matches :data:`UNSAFE_REQUEST_PATTERNS`."""
    frame = pl.DataFrame({"p": prompts.cast(pl.String)})
    return frame.select(
        _contains_any(_lower("p"), UNSAFE_REQUEST_PATTERNS).fill_null(False).alias("unsafe")
    ).to_series()


def _benign(df: pl.DataFrame, benign: pl.Series | None) -> tuple[pl.Series, str]:
    if benign is not None:
        if benign.len() != df.height:
            raise ValueError(f"benign has {benign.len()} values for {df.height} rows")
        return benign.cast(pl.Boolean).fill_null(False).alias("benign"), "given"
    detected = ~looks_unsafe(df["prompt"])
    if "safety" not in df.columns:
        return detected.alias("benign"), "detector"
    labelled = df["safety"] != "unsafe"
    source = "safety" if df["safety"].null_count() == 0 else "safety+detector"
    # Rows without a safety label fall back to the detector.
    return pl.select(pl.coalesce(pl.lit(labelled), pl.lit(detected))).to_series().alias("benign"), source


def over_refusal_flags(df: pl.DataFrame, benign: pl.Series | None = None) -> pl.DataFrame:
    """``df`` plus ``benign``, ``chosen_refuses``, ``rejected_refuses`` and the row flag ``over_refusal``
    (a benign prompt whose chosen response refuses while the rejected one complies)."""
    mask, _ = _benign(df, benign)
    out = df.with_columns(
        mask, refusal_expr("chosen").alias("chosen_refuses"), refusal_expr("rejected").alias("rejected_refuses")
    )
    return out.with_columns(
        (pl.col("benign") & pl.col("chosen_refuses") & ~pl.col("rejected_refuses")).alias("over_refusal")
    )


def over_refusal(df: pl.DataFrame, benign: pl.Series | None = None) -> pl.DataFrame:
    """Refusals chosen on benign prompts: one row comparing refusal rates of chosen vs rejected responses.

    Benign prompts are ``benign`` when given (a Boolean Series aligned with ``df``), else ``safety != "unsafe"``
    where the column exists (rows with a null label fall back to :func:`looks_unsafe`), else not
    :func:`looks_unsafe`. ``benign_source`` says which. A set whose chosen side refuses benign prompts more often
    than its rejected side teaches over-refusal; ``flagged_ids`` lists rows where only the chosen side refuses.
    Columns: ``benign_source``, ``n``, ``n_benign``, ``chosen_refusals``, ``rejected_refusals``,
    ``chosen_refusal_rate``, ``rejected_refusal_rate``, ``excess``, ``n_flagged``, ``flagged_ids``.
    """
    mask, source = _benign(df, benign)
    flags = over_refusal_flags(df, mask).with_columns(_ids(df).alias("__id"))
    b = pl.col("benign")
    out = flags.select(
        pl.lit(source).alias("benign_source"),
        pl.len().cast(pl.Int64).alias("n"),
        b.sum().cast(pl.Int64).alias("n_benign"),
        (b & pl.col("chosen_refuses")).sum().cast(pl.Int64).alias("chosen_refusals"),
        (b & pl.col("rejected_refuses")).sum().cast(pl.Int64).alias("rejected_refusals"),
        pl.col("__id").filter(pl.col("over_refusal")).implode().alias("flagged_ids"),
    )
    rate = {
        side: pl.when(pl.col("n_benign") > 0).then(pl.col(f"{side}_refusals") / pl.col("n_benign"))
        for side in ("chosen", "rejected")
    }
    return out.with_columns(
        rate["chosen"].alias("chosen_refusal_rate"),
        rate["rejected"].alias("rejected_refusal_rate"),
        pl.col("flagged_ids").list.len().cast(pl.Int64).alias("n_flagged"),
    ).select(
        "benign_source",
        "n",
        "n_benign",
        "chosen_refusals",
        "rejected_refusals",
        "chosen_refusal_rate",
        "rejected_refusal_rate",
        (pl.col("chosen_refusal_rate") - pl.col("rejected_refusal_rate")).alias("excess"),
        "n_flagged",
        "flagged_ids",
    )


# ---------------------------------------------------------------------------------------------- coverage


def coverage(
    df: pl.DataFrame, quotas: Mapping[str, int] | None = None, dims: Sequence[str] = DEFAULT_DIMS
) -> pl.DataFrame:
    """Rows per cell of ``dims`` (null → "unknown"), split into train/eval, with the shortfall against floors.

    ``quotas`` are minimum rows per cell keyed like :class:`prefgate.quotas.QuotaPolicy` (``"en/coding"``,
    ``"en/*"``, ``"*/*"``; most specific match wins, then the largest). Cells named exactly in ``quotas`` but
    absent from ``df`` appear with ``n = 0``. Columns: the ``dims``, ``cell``, ``n``, ``n_train``, ``n_eval``,
    and with quotas ``quota``, ``quota_rule``, ``shortfall`` (``max(quota - n, 0)``; null where no quota).
    """
    dims = list(dims)
    split = pl.col("split") if "split" in df.columns else pl.lit(None, dtype=pl.String)
    cells = (
        df.with_columns(cell_keys(df, dims).alias("cell"), split.alias("__split"))
        .group_by("cell")
        .agg(
            pl.len().cast(pl.Int64).alias("n"),
            (pl.col("__split") == "train").sum().cast(pl.Int64).alias("n_train"),
            (pl.col("__split") == "eval").sum().cast(pl.Int64).alias("n_eval"),
        )
    )
    if quotas:
        wanted = [k for k in quotas if "*" not in k.split("/") and len(k.split("/")) == len(dims)]
        missing = [k for k in wanted if k not in set(cells["cell"].to_list())]
        if missing:
            zeros = pl.DataFrame({"cell": missing}).with_columns(
                pl.lit(0, dtype=pl.Int64).alias(c) for c in ("n", "n_train", "n_eval")
            )
            cells = pl.concat([cells, zeros])
        resolved = [resolve_quota(c, quotas, floor=True) for c in cells["cell"].to_list()]
        cells = cells.with_columns(
            pl.Series("quota", [r[1] if r else None for r in resolved], dtype=pl.Int64),
            pl.Series("quota_rule", [r[0] if r else None for r in resolved], dtype=pl.String),
        ).with_columns((pl.col("quota") - pl.col("n")).clip(lower_bound=0).alias("shortfall"))
    parts = pl.col("cell").str.split("/")
    return (
        cells.with_columns(parts.list.get(i).alias(d) for i, d in enumerate(dims))
        .select(*dims, pl.exclude(dims))
        .sort("cell")
    )


# ---------------------------------------------------------------------------------------------- summary


def _num(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def audit_summary(
    df: pl.DataFrame,
    quotas: Mapping[str, int] | None = None,
    benign: pl.Series | None = None,
    by: str | None = "category",
    dims: Sequence[str] = DEFAULT_DIMS,
    max_ids: int = 20,
) -> dict[str, Any]:
    """Headline numbers of every audit as a JSON-serialisable dict (for asset metadata).

    Flagged id lists are cut to ``max_ids``; the full lists come from the audit functions themselves.
    """
    lb = length_bias(df, by=by if by in df.columns else None)
    overall = lb.row(0, named=True)
    per_group = {
        r["group"]: {"n": r["n"], "p_chosen_longer": _num(r["p_chosen_longer"])}
        for r in lb.filter(pl.col("dimension") != "all").iter_rows(named=True)
    }
    syc = {
        r["signal"]: {
            "n": r["n"],
            "chosen_rate": _num(r["chosen_rate"]),
            "rejected_rate": _num(r["rejected_rate"]),
            "excess": _num(r["excess"]),
            "n_flagged": r["n_flagged"],
            "flagged_ids": r["flagged_ids"][:max_ids],
        }
        for r in sycophancy(df).iter_rows(named=True)
    }
    ovr = over_refusal(df, benign).row(0, named=True)
    cov = coverage(df, quotas, dims)
    coverage_summary: dict[str, Any] = {"cells": cov.height, "smallest_cell_n": cov["n"].min() if cov.height else 0}
    if quotas:
        coverage_summary["cells_below_quota"] = int((cov["shortfall"].fill_null(0) > 0).sum())
        coverage_summary["total_shortfall"] = int(cov["shortfall"].fill_null(0).sum())
    return {
        "n_rows": df.height,
        "length_bias": {
            "n": overall["n"],
            "n_ties": overall["n_ties"],
            "p_chosen_longer": _num(overall["p_chosen_longer"]),
            "ci": [_num(overall["ci_low"]), _num(overall["ci_high"])],
            "mean_length_ratio": _num(overall["mean_length_ratio"]),
            "median_length_ratio": _num(overall["median_length_ratio"]),
            "by": by if per_group else None,
            "per_group": per_group,
        },
        "sycophancy": syc,
        "over_refusal": {k: (_num(v) if k != "flagged_ids" else v[:max_ids]) for k, v in ovr.items()},
        "coverage": coverage_summary,
    }
