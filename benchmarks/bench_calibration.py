"""Benchmark prefgate.calibration against the pandas + scikit-learn route a user would otherwise write.

    python -m benchmarks.bench_calibration 1000000 10000000      # sizes in labels; JSON lines to stdout

Input: ``make_overlap(n, seed=0)``, a seeded synthetic overlap frame (the calibration contract): 24 judges (12 live
with probabilities and an order check, 12 recorded without), pairs with a human verdict (a 40%, b 40%, tie 20%),
lengths, three slice columns (category x8, language x5, source x4) and a self side on 20% of labels. Each judge
has an accuracy, a position bias (share of verdicts that simply take the side shown first) and a length bias.

Timed, in one process, for each size:

* ``prefgate``: ``calibration_table(overlap, ["category", "language", "source"])`` (every judge x every slice:
  agreement with/without ties, kappa with its SE, Wilson intervals, position / length / self bias, length slope,
  ECE, Brier) plus ``fit_calibration(overlap, "isotonic", folds=5)`` (5-fold out-of-fold ECE/Brier and the map).
* ``pandas_lean``: only agreement with / without ties, position consistency, p_first and p_longer per judge and
  per judge x slice value, as pandas groupby means from ``overlap.to_pandas()`` (conversion inside the clock).
* ``pandas_core`` (sizes up to ``--core-max``): the table's counts in pandas: groupby means for agreement,
  strict agreement, position consistency, p_first, p_longer, self preference; distinct pairs;
  ``sklearn.metrics.cohen_kappa_score`` per group; statsmodels Wilson intervals.
* ``pandas_full`` (sizes up to ``--full-max``): ``pandas_core`` plus what the prefgate pass also does: Brier
  (``brier_score_loss``) and ECE (``calibration_curve``) per group, the length slope (``LogisticRegression(
  penalty=None)`` per group) and ``IsotonicRegression`` per judge with 5-fold out-of-fold predictions.

``ratio`` = pandas seconds / prefgate seconds. Values are compared (max abs difference of agreement and kappa).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from typing import Any

import numpy as np
import polars as pl

from prefgate.calibration import calibration_table, fit_calibration

SLICES = ["category", "language", "source"]
N_JUDGES = 24


def make_overlap(n: int, seed: int = 0) -> pl.DataFrame:
    """Seeded synthetic overlap frame with ``n`` labels (see the module docstring)."""
    rng = np.random.default_rng(seed)
    n_pairs = max(n // 8, 1)
    truth = rng.choice(3, size=n_pairs, p=[0.4, 0.4, 0.2])
    len_a = np.exp(rng.normal(6.0, 0.8, n_pairs)).astype(np.int64)
    len_b = np.exp(rng.normal(6.0, 0.8, n_pairs)).astype(np.int64)
    cat = rng.integers(0, 8, n_pairs)
    lang = rng.choice(5, size=n_pairs, p=[0.6, 0.1, 0.1, 0.1, 0.1])
    src = rng.integers(0, 4, n_pairs)
    acc = rng.uniform(0.55, 0.9, N_JUDGES)
    pos_bias = rng.uniform(0.0, 0.3, N_JUDGES)
    len_bias = rng.uniform(0.0, 0.3, N_JUDGES)
    pair = rng.integers(0, n_pairs, n)
    judge = rng.integers(0, N_JUDGES, n)
    live = judge < N_JUDGES // 2
    shown_first = rng.integers(0, 2, n)
    human = truth[pair]
    u = rng.random(n)
    longer = np.where(len_a[pair] >= len_b[pair], 0, 1)
    choice = np.where(rng.random(n) < acc[judge], human, rng.integers(0, 3, n))
    choice = np.where(u < pos_bias[judge], shown_first, choice)
    choice = np.where((u >= pos_bias[judge]) & (u < pos_bias[judge] + len_bias[judge]), longer, choice)
    strength = rng.uniform(0.5, 1.0, n)
    prob = np.where(choice == 0, strength, np.where(choice == 1, 1.0 - strength, rng.uniform(0.4, 0.6, n)))
    self_side = rng.choice(3, size=n, p=[0.1, 0.1, 0.8])
    letters = np.array(["a", "b", "tie"], dtype=object)
    return pl.DataFrame(
        {
            "judge_id": pl.Series([f"judge-{j:02d}" for j in range(N_JUDGES)])[judge],
            "pair_id": pl.Series(pair).cast(pl.String),
            "choice": letters[choice],
            "human": letters[human],
            "shown_first": letters[shown_first],
            "probability_a": pl.Series(prob).set(pl.Series(~live), None),
            "position_consistent": pl.Series(rng.random(n) < 0.8).set(pl.Series(~live), None),
            "len_a": len_a[pair],
            "len_b": len_b[pair],
            "self_side": pl.Series(letters[self_side], dtype=pl.String).set(pl.Series(self_side == 2), None),
            "category": pl.Series([f"cat{i}" for i in range(8)])[cat[pair]],
            "language": pl.Series(["en", "de", "fr", "zh", "ar"])[lang[pair]],
            "source": pl.Series([f"src{i}" for i in range(4)])[src[pair]],
        }
    )


def run_prefgate(overlap: pl.DataFrame) -> tuple[float, pl.DataFrame]:
    """The whole prefgate pass: the calibration table over every judge and slice, and the isotonic map."""
    t0 = time.perf_counter()
    table = calibration_table(overlap, SLICES)
    fit_calibration(overlap, "isotonic", folds=5, seed=0)
    return time.perf_counter() - t0, table


def _pandas_lean(df: Any, keys: list[str]) -> Any:
    """Agreement (with / without ties), position consistency, p_first and p_longer per group: groupby means."""
    import pandas as pd

    df = df.assign(
        agree=df["choice"] == df["human"],
        strict=df["choice"].isin(["a", "b"]) & df["human"].isin(["a", "b"]),
    )
    out = pd.DataFrame({"agree_ties": df.groupby(keys, observed=True)["agree"].mean()})
    strict = df[df["strict"]]
    out["agree_strict"] = strict.groupby(keys, observed=True)["agree"].mean()
    checked = df[df["position_consistent"].notna()]
    out["position_consistency"] = checked.groupby(keys, observed=True)["position_consistent"].mean()
    first = strict[strict["shown_first"].notna()]
    out["p_first"] = (first["choice"] == first["shown_first"]).groupby([first[k] for k in keys]).mean()
    diff = strict[strict["len_a"] != strict["len_b"]]
    longer = np.where(diff["len_a"] > diff["len_b"], "a", "b")
    out["p_longer"] = (diff["choice"] == longer).groupby([diff[k] for k in keys]).mean()
    return out


def _pandas_groups(df: Any, keys: list[str]) -> Any:
    """Per-group counts and means in pandas, one groupby per statistic (what a user writes)."""
    import pandas as pd
    from sklearn.metrics import cohen_kappa_score
    from statsmodels.stats.proportion import proportion_confint

    df = df.assign(
        agree=df["choice"] == df["human"],
        strict=df["choice"].isin(["a", "b"]) & df["human"].isin(["a", "b"]),
    )
    g = df.groupby(keys, observed=True)
    out = pd.DataFrame({"n_labels": g.size(), "agree_ties": g["agree"].mean(), "n_pairs": g["pair_id"].nunique()})
    lo, hi = proportion_confint(out["agree_ties"] * out["n_labels"], out["n_labels"], method="wilson")
    out["agree_ties_lo"], out["agree_ties_hi"] = lo, hi
    strict = df[df["strict"]]
    gs = strict.groupby(keys, observed=True)
    out["agree_strict"] = gs["agree"].mean()
    out["kappa"] = g[["choice", "human"]].apply(lambda x: cohen_kappa_score(x["choice"], x["human"]))
    checked = df[df["position_consistent"].notna()]
    out["position_consistency"] = checked.groupby(keys, observed=True)["position_consistent"].mean()
    first = strict[strict["shown_first"].notna()]
    out["p_first"] = (first["choice"] == first["shown_first"]).groupby([first[k] for k in keys]).mean()
    diff = strict[strict["len_a"] != strict["len_b"]]
    longer = np.where(diff["len_a"] > diff["len_b"], "a", "b")
    out["p_longer"] = (diff["choice"] == longer).groupby([diff[k] for k in keys]).mean()
    out["human_p_longer"] = (diff["human"] == longer).groupby([diff[k] for k in keys]).mean()
    own = strict[strict["self_side"].notna()]
    out["self_preference"] = (own["choice"] == own["self_side"]).groupby([own[k] for k in keys]).mean()
    return out


def _pandas_extras(df: Any, keys: list[str]) -> None:
    """Brier, ECE and the length slope per group, and a 5-fold isotonic map per judge (scikit-learn)."""
    from sklearn.calibration import calibration_curve
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import brier_score_loss

    scored = df[df["probability_a"].notna() & df["human"].isin(["a", "b"])]
    for _, part in scored.groupby(keys, observed=True):
        y = (part["human"] == "a").to_numpy()
        p = part["probability_a"].to_numpy()
        brier_score_loss(y, p)
        if 0 < y.sum() < y.size:
            calibration_curve(y, p, n_bins=10)
    strict = df[df["choice"].isin(["a", "b"]) & df["human"].isin(["a", "b"])]
    for _, part in strict.groupby(keys, observed=True):
        x = np.log(part["len_a"].clip(lower=1) / part["len_b"].clip(lower=1)).to_numpy()[:, None]
        y = (part["choice"] == "a").to_numpy()
        if 0 < y.sum() < y.size:
            LogisticRegression(penalty=None).fit(x, y)


def _pandas_isotonic(df: Any) -> None:
    from sklearn.isotonic import IsotonicRegression

    conf = np.where(df["choice"] == "a", df["probability_a"], 1.0 - df["probability_a"])
    df = df.assign(conf=conf, agree=(df["choice"] == df["human"]).astype(float))
    df = df[df["choice"].isin(["a", "b"]) & df["probability_a"].notna()]
    fold = pd_hash_fold(df["pair_id"])
    for _, part in df.assign(fold=fold).groupby("judge_id"):
        for f in range(5):
            train, test = part[part["fold"] != f], part[part["fold"] == f]
            IsotonicRegression(out_of_bounds="clip").fit(train["conf"], train["agree"]).predict(test["conf"])
        IsotonicRegression(out_of_bounds="clip").fit(part["conf"], part["agree"])


def pd_hash_fold(pair_id: Any) -> Any:
    import pandas as pd

    return pd.util.hash_pandas_object(pair_id, index=False) % 5


def run_pandas(overlap: pl.DataFrame, tier: str) -> tuple[float, Any]:
    """One reference tier (``lean`` / ``core`` / ``full``) over the judge rows and every judge x slice, timed."""
    t0 = time.perf_counter()
    df = overlap.to_pandas()
    groupings = [["judge_id"], *[["judge_id", s] for s in SLICES]]
    step = _pandas_lean if tier == "lean" else _pandas_groups
    tables = [step(df, keys) for keys in groupings]
    if tier == "full":
        for keys in groupings:
            _pandas_extras(df, keys)
        _pandas_isotonic(df)
    return time.perf_counter() - t0, tables[0]


def measure(n: int, limits: dict[str, int]) -> list[dict[str, object]]:
    overlap = make_overlap(n)
    warm = overlap.head(5_000)
    run_prefgate(warm)
    for tier in ("lean", "core", "full"):
        run_pandas(warm, tier)
    t_pg, table = run_prefgate(overlap)
    rows: list[dict[str, object]] = [{"n_labels": n, "impl": "prefgate", "seconds": round(t_pg, 3)}]
    print(json.dumps(rows[0]), file=sys.stderr, flush=True)
    overall = table.filter(pl.col("slice") == "all").sort("judge_id")
    for tier in ("lean", "core", "full"):
        name = f"pandas_{tier}"
        if n > limits[tier]:
            rows.append({"n_labels": n, "impl": name, "seconds": None, "skipped": f"n > {limits[tier]}"})
            continue
        t_pd, ref = run_pandas(overlap, tier)
        ref = ref.sort_index()
        row: dict[str, object] = {
            "n_labels": n,
            "impl": name,
            "seconds": round(t_pd, 3),
            "ratio": round(t_pd / t_pg, 2),
        }
        for col in ("agree_ties", "p_first", "kappa"):
            if col in ref:
                row[f"max_abs_diff_{col}"] = float(np.abs(ref[col].to_numpy() - overall[col].to_numpy()).max())
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sizes", nargs="*", type=int, default=[1_000_000])
    parser.add_argument("--lean-max", type=int, default=10_000_000, help="largest size for pandas_lean")
    parser.add_argument("--core-max", type=int, default=1_000_000, help="largest size for pandas_core")
    parser.add_argument("--full-max", type=int, default=1_000_000, help="largest size for pandas_full")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    limits = {"lean": args.lean_max, "core": args.core_max, "full": args.full_max}
    for n in args.sizes:
        for row in measure(n, limits):
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
