"""prefgate.agreement on tiny hand-computed examples and on every defined edge case."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import polars as pl
import pytest

from prefgate import agreement as ag
from prefgate.agreement import (
    AgreementWarning,
    UndefinedAgreementError,
    agreement_report,
    bootstrap_ci,
    coincidence_matrix,
    fleiss_kappa,
    krippendorff_alpha,
    pairwise_cohen,
    percent_agreement,
)

# --------------------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------------------


def long_from_matrix(rows: dict[str, list[object]]) -> pl.DataFrame:
    """Rater -> labels per unit (None = missing) to the long format (one row per label)."""
    records = [
        {"pair_id": f"u{u + 1:02d}", "rater_id": rater, "choice": value}
        for rater, values in rows.items()
        for u, value in enumerate(values)
        if value is not None
    ]
    return pl.DataFrame(records)


def labels(*triples: tuple[object, object, object]) -> pl.DataFrame:
    return pl.DataFrame(
        {"pair_id": [t[0] for t in triples], "rater_id": [t[1] for t in triples], "choice": [t[2] for t in triples]},
        strict=False,
    )


# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C: 4 observers, 12 units, values 1-5,
# missing values. Published: nominal alpha = 0.743, ordinal alpha = 0.815.
K2011 = {
    "A": [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    "B": [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    "C": [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    "D": [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
}
# Its coincidence matrix as printed in the paper (values 1..5); n_c = 9, 13, 10, 5, 3; n = 40.
F = Fraction
K2011_COINCIDENCES = [
    [F(7), F(4, 3), F(1, 3), F(1, 3), F(0)],
    [F(4, 3), F(10), F(4, 3), F(1, 3), F(0)],
    [F(1, 3), F(4, 3), F(8), F(1, 3), F(0)],
    [F(1, 3), F(1, 3), F(1, 3), F(4), F(0)],
    [F(0), F(0), F(0), F(0), F(3)],
]


def alpha_by_hand(o: list[list[Fraction]], ordinal: bool) -> Fraction:
    """alpha = 1 - (n - 1) sum o_ck d_ck / sum n_c n_k d_ck, in exact arithmetic (Krippendorff 2011, eq. C)."""
    v = len(o)
    n_c = [sum(row) for row in o]
    n = sum(n_c)

    def d(c: int, k: int) -> Fraction:
        if not ordinal:
            return F(int(c != k))
        lo, hi = min(c, k), max(c, k)
        return (sum(n_c[lo : hi + 1]) - (n_c[c] + n_c[k]) / 2) ** 2

    observed = sum(o[c][k] * d(c, k) for c in range(v) for k in range(v))
    expected = sum(n_c[c] * n_c[k] * d(c, k) for c in range(v) for k in range(v))
    return 1 - (n - 1) * observed / expected


# --------------------------------------------------------------------------------------------------------------
# Krippendorff's alpha
# --------------------------------------------------------------------------------------------------------------


def test_krippendorff_2011_coincidence_matrix_is_the_published_one() -> None:
    cats, o = coincidence_matrix(long_from_matrix(K2011))
    assert cats == (1, 2, 3, 4, 5)
    np.testing.assert_allclose(o, np.array(K2011_COINCIDENCES, dtype=float), rtol=0, atol=1e-12)


def test_krippendorff_2011_alpha_nominal_and_ordinal() -> None:
    df = long_from_matrix(K2011)
    nominal = alpha_by_hand(K2011_COINCIDENCES, ordinal=False)
    assert nominal == F(113, 152)  # 1 - 39 * 8 / (40^2 - 384)
    assert krippendorff_alpha(df) == pytest.approx(float(nominal), abs=1e-12)
    assert round(krippendorff_alpha(df), 3) == 0.743
    ordinal = alpha_by_hand(K2011_COINCIDENCES, ordinal=True)
    got = krippendorff_alpha(df, "ordinal", categories=[1, 2, 3, 4, 5])
    assert got == pytest.approx(float(ordinal), abs=1e-12)
    assert round(got, 3) == 0.815


def test_alpha_does_not_depend_on_label_type_or_column_names() -> None:
    df = long_from_matrix(K2011)
    as_str = df.with_columns(pl.col("choice").cast(pl.String))
    renamed = as_str.rename({"pair_id": "unit", "rater_id": "coder", "choice": "value"})
    expected = float(F(113, 152))
    assert krippendorff_alpha(as_str) == pytest.approx(expected, abs=1e-12)
    assert krippendorff_alpha(renamed, item_col="unit", rater_col="coder", label_col="value") == pytest.approx(
        expected, abs=1e-12
    )
    as_cat = as_str.with_columns(pl.col("choice").cast(pl.Categorical), pl.col("rater_id").cast(pl.Categorical))
    assert krippendorff_alpha(as_cat) == pytest.approx(expected, abs=1e-12)
    # Ordinal over string labels needs the order; the same order gives the same value as the integers.
    got = krippendorff_alpha(as_str, "ordinal", categories=["1", "2", "3", "4", "5"])
    assert got == pytest.approx(float(alpha_by_hand(K2011_COINCIDENCES, ordinal=True)), abs=1e-12)
    # Without rater ids (exchangeable raters) alpha is the same: it never uses rater identity.
    assert krippendorff_alpha(df.drop("rater_id"), rater_col=None) == pytest.approx(expected, abs=1e-12)


def test_alpha_crowdkit_docstring_example() -> None:
    df = labels(
        ("X", "A", "Yes"), ("X", "B", "Yes"), ("Y", "A", "No"), ("Y", "B", "No"), ("Z", "A", "Yes"), ("Z", "B", "No")
    )
    # n = 6, n_Yes = n_No = 3, one disagreeing unit (o_YN = o_NY = 1): 1 - 5 * 2 / (36 - 18) = 4/9
    assert krippendorff_alpha(df) == pytest.approx(4 / 9, abs=1e-15)


def test_alpha_ordinal_order_matters_and_unused_categories_are_harmless() -> None:
    df = labels(
        *[
            (i, r, c)
            for i, pair in enumerate([("a", "tie"), ("b", "tie"), ("a", "a"), ("b", "b")])
            for r, c in zip("xy", pair, strict=True)
        ]
    )
    near = krippendorff_alpha(df, "ordinal", categories=["a", "tie", "b"])
    far = krippendorff_alpha(df, "ordinal", categories=["a", "b", "tie"])
    assert near > far  # a-tie and b-tie disagreements are small when tie sits between a and b
    assert krippendorff_alpha(df, categories=["a", "b", "tie", "never"]) == pytest.approx(krippendorff_alpha(df))


def test_single_label_items_are_ignored_by_alpha() -> None:
    df = long_from_matrix(K2011)
    extra = pl.concat([df, labels(("solo1", "A", 5), ("solo2", "B", 1))])
    assert krippendorff_alpha(extra) == pytest.approx(krippendorff_alpha(df), abs=1e-15)


# --------------------------------------------------------------------------------------------------------------
# Fleiss' kappa
# --------------------------------------------------------------------------------------------------------------

# Wikipedia "Fleiss' kappa" worked example: 10 subjects, 14 raters, 5 categories; kappa = 0.210.
FLEISS_WIKI = [
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
]


def long_from_table(table: list[list[int]]) -> pl.DataFrame:
    """Subjects x categories counts to long labels (raters numbered by position within the subject)."""
    records = []
    for s, row in enumerate(table):
        values = [c for c, k in enumerate(row) for _ in range(k)]
        records += [{"pair_id": s, "rater_id": r, "choice": c} for r, c in enumerate(values)]
    return pl.DataFrame(records)


def fleiss_by_hand(table: list[list[int]]) -> Fraction:
    """Fleiss (1971): P_i per subject, their mean, p_j per category, P_e = sum p_j^2."""
    n = sum(table[0])
    big_n = len(table)
    p_i = [F(sum(x * x for x in row) - n, n * (n - 1)) for row in table]
    p_bar = sum(p_i) / big_n
    p_j = [F(sum(row[j] for row in table), big_n * n) for j in range(len(table[0]))]
    p_e = sum(p * p for p in p_j)
    return (p_bar - p_e) / (1 - p_e)


def test_fleiss_wikipedia_example() -> None:
    expected = fleiss_by_hand(FLEISS_WIKI)
    got = fleiss_kappa(long_from_table(FLEISS_WIKI))
    assert got == pytest.approx(float(expected), abs=1e-12)
    assert round(got, 3) == 0.210


def test_fleiss_unequal_panel_raises_unless_n_raters_given() -> None:
    df = pl.concat([long_from_table(FLEISS_WIKI), labels((99, 0, 1), (99, 1, 1))])
    with pytest.raises(ValueError, match=r"same number of labels.*between 2 and 14.*n_raters"):
        fleiss_kappa(df)
    assert fleiss_kappa(df, n_raters=14) == pytest.approx(float(fleiss_by_hand(FLEISS_WIKI)), abs=1e-12)
    with pytest.raises(UndefinedAgreementError, match="no item has exactly 3 labels"):
        fleiss_kappa(df, n_raters=3)
    with pytest.raises(ValueError, match="at least 2"):
        fleiss_kappa(df, n_raters=1)


# --------------------------------------------------------------------------------------------------------------
# Pairwise Cohen's kappa
# --------------------------------------------------------------------------------------------------------------


def cohen_wikipedia() -> pl.DataFrame:
    """Wikipedia "Cohen's kappa": 50 items; (Yes, Yes) 20, (Yes, No) 5, (No, Yes) 10, (No, No) 15 -> kappa 0.4."""
    pairs = [("Yes", "Yes")] * 20 + [("Yes", "No")] * 5 + [("No", "Yes")] * 10 + [("No", "No")] * 15
    return labels(*[t for i, (a, b) in enumerate(pairs) for t in ((i, "A", a), (i, "B", b))])


def test_cohen_wikipedia_example() -> None:
    out = pairwise_cohen(cohen_wikipedia())
    assert out.columns == ["rater_a", "rater_b", "n_overlap", "agreement", "expected_agreement", "kappa"]
    row = out.row(0, named=True)
    assert (row["rater_a"], row["rater_b"], row["n_overlap"]) == ("A", "B", 50)
    assert row["agreement"] == pytest.approx(0.7)
    assert row["expected_agreement"] == pytest.approx(0.5)  # 0.5 * 0.6 + 0.5 * 0.4
    assert row["kappa"] == pytest.approx(0.4, abs=1e-15)


def test_cohen_every_pair_with_min_overlap_and_sorted_output() -> None:
    # Raters z, y, x (ids sort as x < y < z); x and z share 3 items, the others share 1.
    df = labels(
        (1, "z", "a"), (1, "x", "a"), (2, "z", "b"), (2, "x", "a"), (3, "z", "b"), (3, "x", "b"), (3, "y", "tie")
    )
    out = pairwise_cohen(df)
    assert out.select("rater_a", "rater_b", "n_overlap").rows() == [("x", "y", 1), ("x", "z", 3), ("y", "z", 1)]
    # x-z: agreement 2/3; x marginals a2 b1, z marginals a1 b2 -> p_e = (2 + 2) / 9; kappa = (2/3 - 4/9) / (5/9)
    xz = out.filter(pl.col("rater_b") == "z", pl.col("rater_a") == "x").row(0, named=True)
    assert xz["kappa"] == pytest.approx(0.4, abs=1e-15)
    # one shared item, disagreeing: p_o = 0, p_e = 0 -> kappa 0 (sklearn gives the same)
    assert out.filter(pl.col("rater_a") == "x", pl.col("rater_b") == "y")["kappa"].item() == 0.0
    assert pairwise_cohen(df, min_overlap=2).select("rater_a", "rater_b").rows() == [("x", "z")]
    assert pairwise_cohen(df, min_overlap=4).height == 0
    with pytest.raises(ValueError, match="min_overlap"):
        pairwise_cohen(df, min_overlap=0)


def test_cohen_degenerate_pair_is_null_not_nan() -> None:
    df = labels((1, "A", "a"), (1, "B", "a"), (2, "A", "a"), (2, "B", "a"), (3, "A", "b"), (3, "C", "a"))
    out = pairwise_cohen(df)
    ab = out.filter(pl.col("rater_a") == "A", pl.col("rater_b") == "B").row(0, named=True)
    assert ab["kappa"] is None
    assert (ab["agreement"], ab["expected_agreement"]) == (1.0, 1.0)
    assert out["kappa"].null_count() == 1
    assert not out["kappa"].is_nan().any()


def test_cohen_int_ids_keep_their_dtype() -> None:
    df = cohen_wikipedia().with_columns(pl.col("rater_id").replace_strict({"A": 10, "B": 2}, return_dtype=pl.Int64))
    out = pairwise_cohen(df)
    assert out.schema["rater_a"] == pl.Int64
    assert out.select("rater_a", "rater_b").row(0) == (2, 10)
    assert out["kappa"].item() == pytest.approx(0.4, abs=1e-15)


# --------------------------------------------------------------------------------------------------------------
# Percent agreement
# --------------------------------------------------------------------------------------------------------------


def test_percent_agreement_pools_pairs_over_items() -> None:
    # item 1: a a b -> 3 pairs, 1 agrees; item 2: a a -> 1 pair, agrees; item 3 single label: no pair.
    df = labels((1, "x", "a"), (1, "y", "a"), (1, "z", "b"), (2, "x", "a"), (2, "y", "a"), (3, "x", "b"))
    assert percent_agreement(df) == pytest.approx(2 / 4)


# --------------------------------------------------------------------------------------------------------------
# Edge cases
# --------------------------------------------------------------------------------------------------------------

SCALARS = [
    krippendorff_alpha,
    fleiss_kappa,
    percent_agreement,
    pairwise_cohen,
    agreement_report,
    bootstrap_ci,
    coincidence_matrix,
]


@pytest.mark.parametrize("fn", SCALARS, ids=lambda f: f.__name__)
def test_empty_input_raises(fn: object) -> None:
    empty = pl.DataFrame(schema={"pair_id": pl.String, "rater_id": pl.String, "choice": pl.String})
    with pytest.raises(ValueError, match="empty"):
        fn(empty)  # type: ignore[operator]


@pytest.mark.parametrize("fn", SCALARS, ids=lambda f: f.__name__)
def test_malformed_input_raises(fn: object) -> None:
    good = cohen_wikipedia()
    with pytest.raises(ValueError, match="lacks column"):
        fn(good.drop("choice"))  # type: ignore[operator]
    with pytest.raises(ValueError, match="null"):
        fn(good.with_columns(pl.when(pl.col("pair_id") == 3).then(None).otherwise(pl.col("choice")).alias("choice")))  # type: ignore[operator]
    with pytest.raises(ValueError, match=r"1 duplicate \(item, rater\).*pair_id=0.*rater_id='A'"):
        fn(pl.concat([good, good.head(1)]))  # type: ignore[operator]
    with pytest.raises(TypeError):
        fn(good.to_pandas())  # type: ignore[operator]


def test_argument_errors() -> None:
    df = cohen_wikipedia()
    with pytest.raises(ValueError, match="explicit category order"):
        krippendorff_alpha(df, "ordinal")
    with pytest.raises(ValueError, match="level"):
        krippendorff_alpha(df, "interval")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"labels outside categories \['Yes'\]: \['No'\]"):
        krippendorff_alpha(df, categories=["Yes"])
    with pytest.raises(ValueError, match="distinct"):
        krippendorff_alpha(df, categories=["Yes", "No", "Yes"])
    with pytest.raises(ValueError, match="do not fit"):
        krippendorff_alpha(df, categories=[1, 2])
    with pytest.raises(ValueError, match="must differ"):
        krippendorff_alpha(df, rater_col="pair_id")


def test_one_rater() -> None:
    df = labels((1, "solo", "a"), (2, "solo", "b"), (3, "solo", "a"))
    with pytest.raises(UndefinedAgreementError, match="no item has two or more labels"):
        krippendorff_alpha(df)
    with pytest.raises(UndefinedAgreementError, match="no item has two or more labels"):
        percent_agreement(df)
    with pytest.raises(UndefinedAgreementError, match="single label"):
        fleiss_kappa(df)
    out = pairwise_cohen(df)
    assert out.height == 0 and out.columns[2:] == ["n_overlap", "agreement", "expected_agreement", "kappa"]
    report = agreement_report(df)
    assert (report.n_raters, report.n_items, report.n_pairable_items) == (1, 3, 0)
    assert report.alpha is None and report.alpha_low is None
    assert report.alpha_reason is not None and "no item has two" in report.alpha_reason
    assert report.fleiss_kappa is None and report.fleiss_reason is not None
    assert report.percent_agreement is None and report.percent_agreement_reason is not None


def test_no_overlap_between_raters() -> None:
    df = labels((1, "A", "a"), (2, "A", "b"), (3, "B", "a"), (4, "B", "tie"))
    with pytest.raises(UndefinedAgreementError, match="no item has two or more labels"):
        krippendorff_alpha(df)
    assert pairwise_cohen(df).height == 0
    report = agreement_report(df)
    assert report.n_raters == 2 and report.alpha is None and report.percent_agreement is None


def test_all_labels_identical() -> None:
    df = labels((1, "A", "a"), (1, "B", "a"), (2, "A", "a"), (2, "B", "a"), (2, "C", "a"))
    with pytest.raises(UndefinedAgreementError, match=r"every pairable label is 'a'.*0/0"):
        krippendorff_alpha(df)
    with pytest.raises(UndefinedAgreementError, match="every pairable label is 'a'"):
        krippendorff_alpha(df, "ordinal", categories=["a", "tie", "b"])
    with pytest.raises(UndefinedAgreementError, match="every label is 'a'"):
        fleiss_kappa(df, n_raters=2)
    with pytest.raises(UndefinedAgreementError):
        bootstrap_ci(df)
    assert percent_agreement(df) == 1.0
    cohen = pairwise_cohen(df)
    assert cohen["kappa"].null_count() == cohen.height == 3
    report = agreement_report(df)
    assert report.alpha is None and report.alpha_reason is not None and "0/0" in report.alpha_reason
    assert report.percent_agreement == 1.0


def test_rater_with_one_label() -> None:
    df = pl.concat([long_from_matrix(K2011), labels(("u01", "E", 2))])  # E labels one unit only
    # Hand: unit 1 becomes {1, 1, 1, 2}: it adds o_12 = o_21 = 3/3 = 1 and 1 more pairable value.
    o = [row[:] for row in K2011_COINCIDENCES]
    # unit 1 was {1, 1, 1}: o_11 += 3*2/2 = 3; now {1,1,1,2}: o_11 += 3*2/3 = 2, o_12 = o_21 += 3/3 = 1
    o[0][0] += -3 + 2
    o[0][1] += 1
    o[1][0] += 1
    assert krippendorff_alpha(df) == pytest.approx(float(alpha_by_hand(o, ordinal=False)), abs=1e-12)
    cohen = pairwise_cohen(df)
    e_rows = cohen.filter(pl.col("rater_b") == "E")
    assert e_rows["n_overlap"].to_list() == [1, 1, 1] and e_rows["kappa"].to_list() == [0.0, 0.0, 0.0]


# --------------------------------------------------------------------------------------------------------------
# Bootstrap
# --------------------------------------------------------------------------------------------------------------


def random_labels(n_items: int, seed: int, n_raters: int = 12, panel: tuple[int, int] = (2, 5)) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(panel[0], panel[1] + 1, size=n_items)
    item = np.repeat(np.arange(n_items), sizes)
    rater = np.concatenate([rng.choice(n_raters, size=k, replace=False) for k in sizes])
    truth = np.repeat(rng.integers(0, 3, size=n_items), sizes)
    label = np.where(rng.random(item.size) < 0.7, truth, rng.integers(0, 3, size=item.size))
    names = np.array(["a", "b", "tie"])
    return pl.DataFrame({"pair_id": item, "rater_id": [f"r{r}" for r in rater], "choice": names[label]})


@pytest.mark.parametrize(
    ("statistic", "kwargs"),
    [
        ("krippendorff_alpha", {}),
        ("krippendorff_alpha", {"level": "ordinal", "categories": ["a", "tie", "b"]}),
        ("fleiss_kappa", {"n_raters": 3}),
        ("percent_agreement", {}),
    ],
)
def test_vectorised_bootstrap_equals_recomputing_on_resampled_frames(statistic: str, kwargs: dict[str, object]) -> None:
    """The closed form over item-type weights gives exactly the coefficient of the explicitly resampled frame."""
    df = random_labels(60, seed=1)
    enc = ag._encode(df, "pair_id", "rater_id", "choice", kwargs.get("categories"))  # type: ignore[arg-type]
    counts = enc.counts()
    m = counts.sum(axis=1)
    population = np.flatnonzero(m == 3) if statistic == "fleiss_kappa" else np.flatnonzero(m >= 2)
    types, _mult = ag._item_types(counts[population])
    type_of = {tuple(t): i for i, t in enumerate(types.tolist())}
    rng = np.random.default_rng(7)
    fn = {
        "krippendorff_alpha": krippendorff_alpha,
        "fleiss_kappa": fleiss_kappa,
        "percent_agreement": percent_agreement,
    }
    for _ in range(5):
        pick = rng.choice(population, size=population.size, replace=True)
        w = np.bincount([type_of[tuple(counts[u])] for u in pick], minlength=len(types)).astype(float)[None, :]
        # build the resampled frame by hand (dense codes are item positions in hash order: map back via counts)
        item_of_code = _item_ids_by_code(df, enc)
        chosen = pl.DataFrame({"_new": np.arange(pick.size), "pair_id": item_of_code[pick]})
        sample = chosen.join(df, on="pair_id").drop("pair_id").rename({"_new": "pair_id"})
        direct = fn[statistic](sample, **kwargs)  # type: ignore[operator]
        typesf = types.astype(float)
        if statistic == "krippendorff_alpha" and kwargs.get("level") == "ordinal":
            closed = ag._alpha_ordinal(ag._coincidences(types, w), w @ typesf)[0]
        elif statistic == "krippendorff_alpha":
            closed = ag._alpha_nominal(w @ typesf, w @ ag._nominal_disagreement(types))[0]
        elif statistic == "fleiss_kappa":
            closed = ag._fleiss_parts(w @ typesf, w @ (typesf**2).sum(axis=1), np.asarray(float(pick.size)), 3)[0]
        else:
            agree, pairs = ag._pair_agreement_parts(types)
            closed = (w @ agree)[0] / (w @ pairs)[0]
        assert closed == pytest.approx(direct, abs=1e-12)


def _item_ids_by_code(df: pl.DataFrame, enc: ag._Encoded) -> np.ndarray:
    """Original item id of every dense item code (codes follow the hash order, so recover them by joining)."""
    hashed = df.select(pl.col("pair_id"), pl.col("pair_id").hash(ag._HASH_SEEDS[0]).alias("_h")).unique()
    order = hashed.sort("_h")["pair_id"].to_numpy()
    assert order.size == enc.n_items
    return order


def test_bootstrap_ci_is_seeded_and_brackets_the_estimate() -> None:
    df = random_labels(300, seed=2)
    first = bootstrap_ci(df, n_boot=400, seed=11)
    assert first == bootstrap_ci(df, krippendorff_alpha, n_boot=400, seed=11)
    assert first.estimate == krippendorff_alpha(df)
    assert first.low < first.estimate < first.high
    assert first != bootstrap_ci(df, n_boot=400, seed=12)
    wider = bootstrap_ci(df, n_boot=400, seed=11, alpha=0.01)
    assert wider.low <= first.low and wider.high >= first.high
    for stat, kw in [(fleiss_kappa, {"n_raters": 4}), (percent_agreement, {})]:
        est, low, high = bootstrap_ci(df, stat, n_boot=300, **kw)  # type: ignore[arg-type]
        assert low < est < high


def test_bootstrap_generic_callable_agrees_with_vectorised_path() -> None:
    df = random_labels(200, seed=3, panel=(2, 4))
    fast = bootstrap_ci(df, n_boot=300, seed=5)

    def alpha_of(frame: pl.DataFrame) -> float:
        return krippendorff_alpha(frame)

    slow = bootstrap_ci(df, alpha_of, n_boot=300, seed=5)
    assert slow.estimate == fast.estimate
    assert abs(slow.low - fast.low) < 0.03 and abs(slow.high - fast.high) < 0.03


def test_bootstrap_drops_undefined_resamples_with_a_warning() -> None:
    # Two of three pairable items are unanimous 'a'; a resample of only those has no expected disagreement.
    df = labels((1, "A", "a"), (1, "B", "a"), (2, "A", "a"), (2, "B", "a"), (3, "A", "a"), (3, "B", "b"))
    with pytest.warns(AgreementWarning, match="resamples are undefined"):
        est, low, high = bootstrap_ci(df, n_boot=200, seed=0)
    assert math.isfinite(low) and math.isfinite(high) and low <= est <= high


def test_bootstrap_argument_errors() -> None:
    df = cohen_wikipedia()
    with pytest.raises(ValueError, match="unknown statistic"):
        bootstrap_ci(df, "cohen")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_ci(df, n_boot=0)
    with pytest.raises(ValueError, match="alpha"):
        bootstrap_ci(df, alpha=1.5)
    with pytest.raises(TypeError):
        bootstrap_ci(df, 3)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------------------
# Report, encoding paths
# --------------------------------------------------------------------------------------------------------------


def test_agreement_report_fields() -> None:
    df = long_from_table(FLEISS_WIKI)
    report = agreement_report(df, n_boot=200)
    assert (report.n_labels, report.n_items, report.n_pairable_items, report.n_raters) == (140, 10, 10, 14)
    assert report.labels_per_item == {14: 10}
    assert report.categories == (0, 1, 2, 3, 4)
    assert report.alpha == pytest.approx(krippendorff_alpha(df))
    assert report.alpha_low is not None and report.alpha_high is not None
    assert report.alpha_low < report.alpha < report.alpha_high
    assert report.fleiss_kappa == pytest.approx(float(fleiss_by_hand(FLEISS_WIKI)), abs=1e-12)
    assert (report.fleiss_n_raters, report.fleiss_n_items, report.fleiss_reason) == (14, 10, None)
    assert report.percent_agreement == pytest.approx(percent_agreement(df))
    assert report.ci_level == pytest.approx(0.95)
    d = report.as_dict()
    assert d["alpha"] == report.alpha and d["labels_per_item"] == {14: 10}

    unequal = pl.concat([df, labels((99, 0, 1), (99, 1, 1))])
    r2 = agreement_report(unequal, n_boot=0)
    assert r2.fleiss_kappa is None and r2.fleiss_reason is not None and "n_raters" in r2.fleiss_reason
    assert r2.alpha_low is None and r2.alpha is not None
    assert agreement_report(unequal, n_raters=14, n_boot=0).fleiss_n_items == 10


def test_agreement_report_can_carry_the_pairwise_table() -> None:
    df = random_labels(100, seed=6)
    report = agreement_report(df, n_boot=0, cohen_min_overlap=3)
    assert report.pairwise is not None and report.pairwise.equals(pairwise_cohen(df, min_overlap=3))
    assert "pairwise" not in report.as_dict()
    assert agreement_report(df, n_boot=0).pairwise is None
    with pytest.raises(ValueError, match="cohen_min_overlap"):
        agreement_report(df, cohen_min_overlap=0)
    with pytest.raises(ValueError, match="rater column"):
        agreement_report(df.drop("rater_id"), rater_col=None, cohen_min_overlap=1)


def test_exact_encoding_path_matches_hashed_path(monkeypatch: pytest.MonkeyPatch) -> None:
    df = random_labels(150, seed=4)
    hashed = (krippendorff_alpha(df), pairwise_cohen(df), fleiss_kappa(df, n_raters=3))
    monkeypatch.setattr(ag, "_item_codes_hashed", lambda *args: None)  # as if two item ids collided
    exact = (krippendorff_alpha(df), pairwise_cohen(df), fleiss_kappa(df, n_raters=3))
    assert hashed[0] == pytest.approx(exact[0], abs=1e-15)
    assert hashed[1].equals(exact[1])
    assert hashed[2] == pytest.approx(exact[2], abs=1e-15)
    with pytest.raises(ValueError, match=r"duplicate.*pair_id=0"):
        krippendorff_alpha(pl.concat([df, df.head(1)]))


def test_matches_reference_packages_on_random_frames() -> None:
    krippendorff = pytest.importorskip("krippendorff")
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    for seed in range(5):
        df = random_labels(80, seed=seed, n_raters=6)
        enc = ag._encode(df, "pair_id", "rater_id", "choice")
        matrix = np.full((6, enc.n_items), np.nan)
        matrix[enc.rater, enc.item] = enc.label
        ref = krippendorff.alpha(reliability_data=matrix, level_of_measurement="nominal")
        assert krippendorff_alpha(df) == pytest.approx(ref, abs=1e-12)
        ref_ord = krippendorff.alpha(reliability_data=matrix, level_of_measurement="ordinal")
        assert krippendorff_alpha(df, "ordinal", categories=["a", "b", "tie"]) == pytest.approx(ref_ord, abs=1e-12)
        assert enc.rater_ids is not None
        ids = enc.rater_ids.to_list()
        for row in pairwise_cohen(df, min_overlap=5).iter_rows(named=True):
            a, b = ids.index(row["rater_a"]), ids.index(row["rater_b"])
            both = ~np.isnan(matrix[a]) & ~np.isnan(matrix[b])
            assert both.sum() == row["n_overlap"]
            assert row["kappa"] == pytest.approx(
                sklearn_metrics.cohen_kappa_score(matrix[a][both], matrix[b][both]), abs=1e-12
            )
