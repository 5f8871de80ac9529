"""MajorityVote, DawidSkene, dawid_skene_consensus and BradleyTerry: hand cases, edge cases, planted truth."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from prefgate import schemas
from prefgate.consensus import (
    VERDICTS,
    BradleyTerry,
    DawidSkene,
    MajorityVote,
    bradley_terry_scores,
    dawid_skene_consensus,
    majority_consensus,
    preference_comparisons,
)
from prefgate.ids import content_hash


def labels(votes: dict[str, list[str]], raters: dict[str, list[str]] | None = None) -> pl.DataFrame:
    """Long-format labels: pair -> choices; rater i is ``r{i}`` unless ``raters`` names them."""
    rows = []
    for pid, choices in votes.items():
        names = (raters or {}).get(pid, [f"r{i}" for i in range(len(choices))])
        for i, (rater, choice) in enumerate(zip(names, choices, strict=True)):
            rows.append(
                {
                    "label_id": content_hash("l", pid, str(i)),
                    "pair_id": pid,
                    "rater_id": rater,
                    "choice": choice,
                    "source": "crowd",
                }
            )
    return pl.DataFrame(
        rows,
        schema={
            "label_id": pl.String,
            "pair_id": pl.String,
            "rater_id": pl.String,
            "choice": pl.String,
            "source": pl.String,
        },
    )


def row(df: pl.DataFrame, pid: str, key: str = "pair_id") -> dict[str, object]:
    return df.filter(pl.col(key) == pid).row(0, named=True)


P = [f"{i:016x}" for i in range(1, 10)]


# ---------------------------------------------------------------------------------------------- MajorityVote


def test_majority_vote_hand_values_and_tie_rule() -> None:
    df = labels({P[0]: ["a", "a", "b"], P[1]: ["b", "a"], P[2]: ["tie", "b", "tie"], P[3]: ["b"]})
    mv = MajorityVote().fit(df)
    assert mv.classes_ == ("a", "b", "tie")
    assert mv.probas_.columns == ["pair_id", "a", "b", "tie"]
    assert mv.probas_.row(0) == (P[0], 2 / 3, 1 / 3, 0.0)
    # the shared top count of P[1] goes to the first class in classes_ order, and is flagged
    assert mv.labels_.rows() == [(P[0], "a", False), (P[1], "a", True), (P[2], "tie", False), (P[3], "b", False)]
    assert mv.fit_predict(df).equals(mv.labels_)
    assert mv.fit_predict_proba(df).equals(mv.probas_)
    # the rule follows the declared class order
    assert row(MajorityVote(classes=("tie", "b", "a")).fit(df).labels_, P[1])["label"] == "b"


def test_majority_vote_absent_class_and_custom_columns() -> None:
    df = pl.DataFrame({"task": ["t1", "t1", "t2"], "worker": ["w1", "w2", "w1"], "label": ["a", "b", "b"]})
    mv = MajorityVote(classes=VERDICTS).fit(df, task="task", worker="worker", label="label")
    assert mv.probas_.columns == ["task", "a", "b", "tie"]
    assert mv.probas_["tie"].to_list() == [0.0, 0.0]
    inferred = MajorityVote().fit(df, task="task", worker="worker", label="label")
    assert inferred.classes_ == ("a", "b")


# ---------------------------------------------------------------------------------------------- input errors


@pytest.mark.parametrize("model", [MajorityVote(), DawidSkene()])
def test_empty_and_malformed_input_raise(model: MajorityVote | DawidSkene) -> None:
    empty = labels({})
    with pytest.raises(ValueError, match="empty"):
        model.fit(empty)
    with pytest.raises(ValueError, match="lacks column"):
        model.fit(empty.drop("choice"))
    with pytest.raises(ValueError, match="null"):
        model.fit(
            pl.DataFrame(
                {"pair_id": ["p"], "rater_id": [None], "choice": ["a"]}, schema_overrides={"rater_id": pl.String}
            )
        )
    with pytest.raises(ValueError, match="not among the classes"):
        type(model)(classes=VERDICTS).fit(labels({P[0]: ["a", "maybe"]}))
    with pytest.raises(ValueError, match="distinct"):
        type(model)(classes=("a", "a")).fit(labels({P[0]: ["a"]}))


def test_dawid_skene_rejects_bad_hyperparameters() -> None:
    with pytest.raises(ValueError, match="n_iter"):
        DawidSkene(n_iter=-1)
    with pytest.raises(ValueError, match="initial"):
        DawidSkene(initial="uniform")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- Dawid-Skene


def test_dawid_skene_zero_iterations_is_majority_shares() -> None:
    df = labels({P[0]: ["a", "a", "b"], P[1]: ["tie", "b", "tie"], P[2]: ["b", "b", "a"]})
    ds = DawidSkene(n_iter=0).fit(df)
    assert ds.n_iter_ == 0 and ds.loss_history_ == []
    assert ds.probas_.equals(MajorityVote().fit(df).probas_)
    np.testing.assert_allclose(ds.priors_, ds.probas_.select("a", "b", "tie").to_numpy().mean(axis=0))


def test_dawid_skene_fitted_attributes_shape_and_normalisation() -> None:
    df = labels({P[0]: ["a", "a", "b"], P[1]: ["tie", "tie", "b"], P[2]: ["b", "b", "a"], P[3]: ["a", "a", "a"]})
    ds = DawidSkene().fit(df)
    assert ds.classes_ == ("a", "b", "tie")
    assert ds.raters_.to_list() == ["r0", "r1", "r2"]
    assert ds.errors_.shape == (3, 3, 3)  # rater x true x observed
    np.testing.assert_allclose(ds.errors_.sum(axis=2), 1.0)
    assert ds.errors_[2, :, 2].max() == 0.0  # r2 never said "tie": probability 0, as crowd-kit
    probs = ds.probas_.select("a", "b", "tie").to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    assert ds.labels_["label"].to_list() == [VERDICTS[i] for i in probs.argmax(axis=1)]
    assert math.isclose(ds.priors_.sum(), 1.0)
    assert ds.n_iter_ == len(ds.loss_history_) >= 1
    conf = ds.confusion_frame()
    assert conf.columns == ["rater_id", "true", "observed", "probability"]
    assert conf.height == 3 * (3 + 3 + 2)  # each rater's used labels x 3 true classes
    assert conf.group_by("rater_id", "true").agg(pl.col("probability").sum())["probability"].to_list() == (
        pytest.approx([1.0] * 9)
    )


def test_dawid_skene_unanimous_raters() -> None:
    df = labels({P[0]: ["a", "a", "a"], P[1]: ["b", "b", "b"], P[2]: ["tie", "tie", "tie"]})
    probas = DawidSkene().fit_predict_proba(df)
    np.testing.assert_allclose(probas.select("a", "b", "tie").to_numpy(), np.eye(3), atol=1e-6)


def test_dawid_skene_one_rater() -> None:
    df = labels({P[0]: ["a"], P[1]: ["b"], P[2]: ["a"], P[3]: ["tie"]}, raters={p: ["solo"] for p in P})
    ds = DawidSkene().fit(df)
    assert ds.raters_.to_list() == ["solo"]
    assert ds.labels_["label"].to_list() == ["a", "b", "a", "tie"]


def test_dawid_skene_all_ties() -> None:
    df = labels({P[0]: ["tie", "tie"], P[1]: ["tie"], P[2]: ["tie", "tie", "tie"]})
    ds = DawidSkene().fit(df)
    assert ds.classes_ == ("tie",) and ds.probas_["tie"].to_list() == [1.0, 1.0, 1.0]
    declared = DawidSkene(classes=VERDICTS).fit(df)  # a and b never occur
    assert declared.labels_["label"].to_list() == ["tie"] * 3
    assert declared.probas_["a"].max() < 1e-6 and declared.probas_["tie"].min() > 1 - 1e-6


def test_dawid_skene_one_label_per_item_and_one_label_raters() -> None:
    # Every pair has one label from its own rater. A rater who used a single label value has a confusion matrix
    # that is 1 in that column for every true class (normalised over the labels they used, as crowd-kit), so
    # their labels carry no evidence: every posterior is the prior, and the verdict its mode.
    df = labels(
        {p: [c] for p, c in zip(P[:6], ["a", "b", "a", "tie", "b", "a"], strict=True)},
        raters={p: [f"x{i}"] for i, p in enumerate(P[:6])},
    )
    ds = DawidSkene().fit(df)
    assert ds.errors_.shape == (6, 3, 3)
    np.testing.assert_allclose(ds.errors_.sum(axis=2), 1.0)
    np.testing.assert_allclose(ds.priors_, [0.5, 2 / 6, 1 / 6])
    np.testing.assert_allclose(ds.probas_.select("a", "b", "tie").to_numpy(), np.tile(ds.priors_, (6, 1)))
    assert ds.labels_["label"].to_list() == ["a"] * 6
    # one-label raters among regular ones: fitted, finite, and they do not sway a pair the others agree on
    mixed = labels(
        {P[0]: ["b", "b", "b", "a"], P[1]: ["a", "a", "b"], P[2]: ["tie", "tie", "a"]},
        raters={P[0]: ["r0", "r1", "r2", "once"], P[1]: ["r0", "r1", "r2"], P[2]: ["r0", "r1", "r2"]},
    )
    fitted = DawidSkene().fit(mixed)
    assert np.isfinite(fitted.errors_).all()
    assert fitted.labels_["label"].to_list() == ["b", "a", "tie"]


def test_dawid_skene_never_seen_class() -> None:
    df = labels({P[0]: ["a", "a", "b"], P[1]: ["b", "b"], P[2]: ["a", "b", "a"]})
    ds = DawidSkene(classes=VERDICTS).fit(df)
    assert ds.probas_.columns == ["pair_id", "a", "b", "tie"]
    assert ds.probas_["tie"].max() < 1e-8 and ds.priors_[2] < 1e-8
    assert ds.errors_[:, :, 2].max() == 0.0  # nobody said tie
    # the unused class changes the others by at most its floor
    plain = DawidSkene().fit(df).probas_
    np.testing.assert_allclose(ds.probas_.select("a", "b").to_numpy(), plain.select("a", "b").to_numpy(), atol=1e-8)


def test_dawid_skene_integer_labels_and_unsorted_input() -> None:
    df = pl.DataFrame(
        {
            "task": [3, 1, 2, 1, 3, 2, 1],
            "worker": ["w2", "w1", "w1", "w3", "w1", "w2", "w2"],
            "label": [2, 1, 0, 1, 2, 0, 2],
        }
    )
    ds = DawidSkene().fit(df, task="task", worker="worker", label="label")
    assert ds.classes_ == ("0", "1", "2")
    assert ds.probas_["task"].to_list() == [1, 2, 3]  # sorted task ids, original dtype
    assert ds.labels_["label"].to_list() == ["1", "0", "2"]
    shuffled = DawidSkene().fit(df.reverse(), task="task", worker="worker", label="label")
    np.testing.assert_allclose(shuffled.probas_.drop("task").to_numpy(), ds.probas_.drop("task").to_numpy())


def test_dawid_skene_stopping_rule() -> None:
    df = labels({P[i]: ["a", "b", "a"] if i % 2 else ["b", "b", "tie"] for i in range(6)})
    long = DawidSkene(n_iter=50, tol=0.0).fit(df)
    capped = DawidSkene(n_iter=2, tol=0.0).fit(df)
    assert capped.n_iter_ == 2 and capped.loss_history_ == long.loss_history_[:2]
    # crowd-kit's rule: continue while the loss grows by at least tol; tol=0 stops at the first decrease
    steps = np.diff(long.loss_history_)
    assert np.all(steps[:-1] >= 0)
    assert long.n_iter_ == 50 or steps[-1] < 0
    default = DawidSkene(n_iter=50).fit(df)  # tol=1e-5
    assert default.n_iter_ < 50 and default.loss_history_[-1] - default.loss_history_[-2] < 1e-5


# ---------------------------------------------------------------------------------------------- planted truth


def planted(seed: int, n_items: int = 6000, n_raters: int = 60) -> tuple[pl.DataFrame, np.ndarray, np.ndarray]:
    """Seeded crowd: accuracy ~ Beta(8, 2), 5% uniform spammers, 3-5 distinct raters per item over a/b/tie."""
    rng = np.random.default_rng(seed)
    truth = rng.choice(3, n_items, p=[0.4, 0.4, 0.2])
    accuracy = rng.beta(8, 2, n_raters)
    spammer = np.zeros(n_raters, dtype=bool)
    spammer[rng.choice(n_raters, round(0.05 * n_raters), replace=False)] = True
    per_item = rng.integers(3, 6, n_items)
    item = np.repeat(np.arange(n_items), per_item)
    rater = np.concatenate([rng.choice(n_raters, k, replace=False) for k in per_item])
    correct = rng.random(item.size) < accuracy[rater]
    wrong = (truth[item] + rng.integers(1, 3, item.size)) % 3
    choice = np.where(correct, truth[item], wrong)
    choice = np.where(spammer[rater], rng.integers(0, 3, item.size), choice)
    df = pl.DataFrame(
        {
            "pair_id": [f"p{i:05d}" for i in item],
            "rater_id": [f"r{r:03d}" for r in rater],
            "choice": np.array(VERDICTS)[choice],
        }
    )
    return df, np.array(VERDICTS)[truth], np.array([f"r{r:03d}" for r in np.flatnonzero(spammer)])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dawid_skene_beats_majority_on_planted_truth(seed: int) -> None:
    df, truth, spammers = planted(seed)
    ds = DawidSkene().fit(df)
    mv = MajorityVote().fit(df)
    acc_ds = float((ds.labels_["label"].to_numpy() == truth).mean())
    acc_mv = float((mv.labels_["label"].to_numpy() == truth).mean())
    assert acc_ds > 0.9
    assert acc_ds >= acc_mv
    # spammers answer independently of the truth: their confusion rows are near-uniform, the others' are not
    is_spam = ds.raters_.is_in(spammers.tolist()).to_numpy()
    assert is_spam.sum() == 3
    spam = ds.errors_[is_spam]
    assert np.abs(spam - 1 / 3).max() < 0.15
    spam_diag = np.diagonal(spam, axis1=1, axis2=2).mean(axis=1)
    assert np.all((spam_diag > 0.25) & (spam_diag < 0.42))
    good_diag = np.diagonal(ds.errors_[~is_spam], axis1=1, axis2=2).mean(axis=1)
    assert good_diag.mean() > 0.7


# ---------------------------------------------------------------------------------------------- consensus frame


def test_dawid_skene_consensus_frame() -> None:
    df = labels(
        {
            P[0]: ["a", "a", "b"],
            P[1]: ["a", "b"],
            P[2]: ["tie", "b", "tie"],
            P[3]: ["b"],
            P[4]: ["b", "b", "a"],
        }
    )
    out = dawid_skene_consensus(df)
    assert out.columns == [
        "pair_id",
        "n_labels",
        "n_a",
        "n_b",
        "n_tie",
        "verdict",
        "agreement",
        "label_ids",
        "rater_ids",
        "sources",
        "p_a",
        "p_b",
        "p_tie",
        "confidence",
    ]
    assert out["pair_id"].to_list() == P[:5]
    probs = out.select("p_a", "p_b", "p_tie").to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    np.testing.assert_allclose(out["confidence"].to_numpy(), probs.max(axis=1))
    verdicts = out["verdict"].to_list()
    assert verdicts[0] == "a" and verdicts[2] == "tie" and verdicts[4] == "b"
    # the same columns as majority_consensus, so the asset keeps its HumanConsensus contract
    majority = majority_consensus(df)
    shared = majority.columns
    assert out.select(shared).drop("verdict", "agreement").equals(majority.drop("verdict", "agreement"))
    contract = [c for c in schemas.HumanConsensus.to_schema().columns if c in out.columns]
    assert set(shared) <= set(contract)
    backing = out.select(
        pl.when(pl.col("verdict") == "a")
        .then("n_a")
        .when(pl.col("verdict") == "b")
        .then("n_b")
        .when(pl.col("verdict") == "tie")
        .then("n_tie")
        .otherwise(pl.max_horizontal("n_a", "n_b", "n_tie"))
        / pl.col("n_labels")
    ).to_series()
    np.testing.assert_allclose(out["agreement"].to_numpy(), backing.to_numpy())


def test_dawid_skene_consensus_symmetric_split_is_no_majority() -> None:
    out = dawid_skene_consensus(labels({P[0]: ["a", "b"]}))
    assert out.row(0, named=True)["verdict"] == "no_majority"
    assert out["p_a"][0] == pytest.approx(0.5) and out["p_tie"][0] < 1e-8


def test_dawid_skene_consensus_minimal_columns_and_errors() -> None:
    df = labels({P[0]: ["a", "a"], P[1]: ["b", "tie"]}).select("pair_id", "rater_id", "choice")
    out = dawid_skene_consensus(df)
    assert "label_ids" not in out.columns and "sources" not in out.columns and "rater_ids" in out.columns
    with pytest.raises(ValueError, match="empty"):
        dawid_skene_consensus(df.head(0))
    with pytest.raises(ValueError, match="not among the classes"):
        dawid_skene_consensus(df.with_columns(choice=pl.lit("both")))


# ---------------------------------------------------------------------------------------------- Bradley-Terry


def test_bradley_terry_two_items_closed_form() -> None:
    # A beats B 3 times, B beats A once: the ML strength ratio is 3
    df = pl.DataFrame({"winner": ["A", "A", "A", "B"], "loser": ["B", "B", "B", "A"]})
    bt = BradleyTerry(prior=0.0, tol=1e-13).fit(df)
    s = dict(bt.scores_.select("item", "score").iter_rows())
    assert s["A"] - s["B"] == pytest.approx(math.log(3), abs=1e-9)
    assert bt.scores_["item"].to_list() == ["A", "B"]
    assert bt.scores_.row(0, named=True) | {"score": 0, "strength": 0} == {
        "item": "A",
        "score": 0,
        "strength": 0,
        "wins": 3.0,
        "losses": 1.0,
        "ties": 0.0,
        "n_comparisons": 4.0,
    }
    # ties as half-wins: 2 wins + 2 ties against 0 wins -> 3 : 1 again
    ties = pl.DataFrame({"item_a": ["A"] * 4, "item_b": ["B"] * 4, "outcome": ["a", "a", "tie", "tie"]})
    s = dict(BradleyTerry(prior=0.0, tol=1e-13).fit(ties).scores_.select("item", "score").iter_rows())
    assert s["A"] - s["B"] == pytest.approx(math.log(3), abs=1e-9)


def test_bradley_terry_davidson_closed_form() -> None:
    # two items: pi_A / pi_B = w_A / w_B and nu = t / sqrt(w_A * w_B)
    df = pl.DataFrame({"item_a": ["A"] * 9, "item_b": ["B"] * 9, "outcome": ["a"] * 4 + ["b"] * 1 + ["tie"] * 4})
    bt = BradleyTerry(ties="davidson", prior=0.0, tol=1e-13).fit(df)
    s = dict(bt.scores_.select("item", "score").iter_rows())
    assert s["A"] - s["B"] == pytest.approx(math.log(4), abs=1e-8)
    assert bt.tie_strength_ == pytest.approx(4 / math.sqrt(4 * 1), abs=1e-8)
    assert BradleyTerry().fit(df).tie_strength_ is None


def loglik(theta: np.ndarray, nu: float, rows: list[tuple[int, int, str]], ties: str, prior: float) -> float:
    """The log-posterior written out row by row: half-win or Davidson ties, plus the virtual-game prior."""
    total = 0.0
    for a, b, o in rows:
        pa, pb = math.exp(theta[a]), math.exp(theta[b])
        if ties == "half":
            la, lb = math.log(pa / (pa + pb)), math.log(pb / (pa + pb))
            total += {"a": la, "b": lb, "tie": (la + lb) / 2}[o]
        else:
            d = pa + pb + nu * math.sqrt(pa * pb)
            total += math.log({"a": pa, "b": pb, "tie": nu * math.sqrt(pa * pb)}[o] / d)
    return total + prior * float(np.sum(-np.log1p(np.exp(-theta)) - np.log1p(np.exp(theta))))


def _prior_offset(vec: np.ndarray) -> float:
    """The offset x maximising the virtual-game prior of vec + x: root of sum tanh((vec + x) / 2), by bisection."""
    lo, hi = -vec.max() - 1, -vec.min() + 1
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if np.tanh((vec + mid) / 2).sum() > 0 else (mid, hi)
    return (lo + hi) / 2


@pytest.mark.parametrize(("ties", "prior"), [("davidson", 0.0), ("davidson", 1.0), ("half", 1.0), ("half", 0.0)])
def test_bradley_terry_solution_is_stationary(ties: str, prior: float) -> None:
    rng = np.random.default_rng(3)
    items = ["m0", "m1", "m2", "m3", "m4"]
    a = rng.integers(0, 5, 400)
    b = (a + rng.integers(1, 5, 400)) % 5
    strength = np.array([0.0, 0.5, 1.0, -0.5, 0.2])
    p_a = 1 / (1 + np.exp(strength[b] - strength[a]))
    u = rng.random(400)
    outcome = np.where(u < 0.25, "tie", np.where(u < 0.25 + 0.75 * p_a, "a", "b"))
    df = pl.DataFrame({"item_a": np.array(items)[a], "item_b": np.array(items)[b], "outcome": outcome})
    bt = BradleyTerry(ties=ties, prior=prior, tol=1e-12).fit(df)  # type: ignore[arg-type]
    assert bt.converged_
    assert np.all(np.diff(bt.loss_history_) <= 1e-12)  # never worse after an iteration
    fitted = dict(bt.scores_.select("item", "score").iter_rows())
    theta = np.array([fitted[k] for k in items])
    if prior > 0:  # centring removed the offset the prior pins down: restore it before differentiating
        theta += _prior_offset(theta)
    rows = list(zip(a.tolist(), b.tolist(), outcome.tolist(), strict=True))
    nu = bt.tie_strength_ or 0.0
    h = 1e-5
    for i in range(len(items)):
        e = np.zeros(len(items))
        e[i] = h
        grad = (loglik(theta + e, nu, rows, ties, prior) - loglik(theta - e, nu, rows, ties, prior)) / (2 * h)
        assert abs(grad) < 1e-5, (i, grad)
    if ties == "davidson":
        assert abs(loglik(theta, nu + h, rows, ties, prior) - loglik(theta, nu - h, rows, ties, prior)) / (2 * h) < 1e-5
        assert bt.loss_history_[-1] == pytest.approx(-loglik(theta, nu, rows, ties, prior) / 400, rel=1e-9)


def test_bradley_terry_recovers_planted_strengths() -> None:
    rng = np.random.default_rng(11)
    n_items, n_cmp = 30, 6000
    theta = rng.normal(0, 1, n_items)
    a = rng.integers(0, n_items, n_cmp)
    b = (a + rng.integers(1, n_items, n_cmp)) % n_items
    a_wins = rng.random(n_cmp) < 1 / (1 + np.exp(theta[b] - theta[a]))
    names = np.array([f"i{k:02d}" for k in range(n_items)])
    df = pl.DataFrame({"winner": np.where(a_wins, names[a], names[b]), "loser": np.where(a_wins, names[b], names[a])})
    scores = BradleyTerry().fit_predict(df)
    fitted = dict(scores.select("item", "score").iter_rows())
    est = np.array([fitted[n] for n in names])
    assert np.corrcoef(est, theta)[0, 1] > 0.97
    assert np.abs((est - est.mean()) - (theta - theta.mean())).mean() < 0.15
    assert scores["strength"].sum() == pytest.approx(1.0)
    assert scores["score"].mean() == pytest.approx(0.0, abs=1e-12)


def test_bradley_terry_prior_handles_undefeated_and_disconnected() -> None:
    df = pl.DataFrame({"winner": ["A", "A", "C"], "loser": ["B", "B", "D"]})  # A never loses; {A,B} and {C,D} apart
    with pytest.raises(ValueError, match="prior > 0"):
        BradleyTerry(prior=0.0).fit(df)
    bt = BradleyTerry(prior=1.0).fit(df)
    s = dict(bt.scores_.select("item", "score").iter_rows())
    assert bt.converged_ and all(math.isfinite(v) for v in s.values())
    assert s["A"] > s["C"] > s["D"] > s["B"]  # two wins shrink less than one
    assert s["A"] == pytest.approx(-s["B"]) and s["C"] == pytest.approx(-s["D"])


def test_bradley_terry_weights_equal_repeated_rows() -> None:
    rows = pl.DataFrame({"item_a": ["x", "y", "x"], "item_b": ["y", "z", "z"], "outcome": ["a", "tie", "b"]})
    weighted = BradleyTerry().fit(rows.with_columns(w=pl.Series([2.0, 1.0, 3.0])), weight="w").scores_
    repeated = BradleyTerry().fit(pl.concat([rows[0], rows[0], rows[1], rows[2], rows[2], rows[2]])).scores_
    np.testing.assert_allclose(weighted["score"].to_numpy(), repeated["score"].to_numpy(), atol=1e-9)


def test_bradley_terry_input_errors() -> None:
    with pytest.raises(ValueError, match="empty"):
        BradleyTerry().fit(pl.DataFrame({"winner": [], "loser": []}, schema={"winner": pl.String, "loser": pl.String}))
    with pytest.raises(ValueError, match="columns"):
        BradleyTerry().fit(pl.DataFrame({"left": ["a"], "right": ["b"]}))
    with pytest.raises(ValueError, match="outcomes"):
        BradleyTerry().fit(pl.DataFrame({"item_a": ["x"], "item_b": ["y"], "outcome": ["left"]}))
    with pytest.raises(ValueError, match="itself"):
        BradleyTerry().fit(pl.DataFrame({"winner": ["x"], "loser": ["x"]}))
    with pytest.raises(ValueError, match="ties"):
        BradleyTerry(ties="coin")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="prior"):
        BradleyTerry(prior=-1)
    # self-comparisons are dropped, not fatal
    bt = BradleyTerry().fit(pl.DataFrame({"winner": ["x", "x"], "loser": ["x", "y"]}))
    assert bt.scores_["n_comparisons"].to_list() == [1.0, 1.0]


# ---------------------------------------------------------------------------------------------- from prefgate tables


def _pairs() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "pair_id": P[:6],
            "response_a_id": [f"ra{i}" for i in range(6)],
            "response_b_id": [f"rb{i}" for i in range(6)],
            "model_a": ["gpt", "gpt", "llama", "gpt", None, "llama"],
            "model_b": ["llama", "mistral", "mistral", "gpt", "gpt", "mistral"],
        }
    )


def test_preference_comparisons_hard_and_soft() -> None:
    df = labels({P[0]: ["a", "a"], P[1]: ["b", "a", "b"], P[2]: ["tie"], P[3]: ["a"], P[4]: ["b"], P[5]: ["a", "b"]})
    majority = majority_consensus(df)
    model_level = preference_comparisons(majority, _pairs())
    # P[3] is gpt vs gpt, P[4] has no model_a, P[5] has no majority
    assert model_level.rows() == [
        (P[0], "gpt", "llama", "a", 1.0),
        (P[1], "gpt", "mistral", "b", 1.0),
        (P[2], "llama", "mistral", "tie", 1.0),
    ]
    response_level = preference_comparisons(majority, _pairs(), level="response")
    assert response_level["pair_id"].to_list() == [P[0], P[1], P[2], P[3], P[4]]
    assert response_level.row(0)[1:3] == ("ra0", "rb0")
    soft = preference_comparisons(dawid_skene_consensus(df), _pairs(), soft=True)
    assert soft.height == 3 * 4  # P[0], P[1], P[2], P[5]
    assert soft.group_by("pair_id").agg(pl.col("weight").sum())["weight"].to_list() == pytest.approx([1.0] * 4)
    with pytest.raises(ValueError, match="posterior"):
        preference_comparisons(majority, _pairs(), soft=True)
    with pytest.raises(ValueError, match="level"):
        preference_comparisons(majority, _pairs(), level="prompt")  # type: ignore[arg-type]


def test_bradley_terry_scores_from_consensus() -> None:
    votes = {P[0]: ["a", "a"], P[1]: ["a", "a", "b"], P[2]: ["a"], P[5]: ["a", "a"]}  # gpt > llama > mistral
    consensus = majority_consensus(labels(votes))
    models = bradley_terry_scores(consensus, _pairs())
    assert models["item"].to_list() == ["gpt", "llama", "mistral"]
    responses = bradley_terry_scores(consensus, _pairs(), level="response")
    assert set(responses["item"]) == {"ra0", "rb0", "ra1", "rb1", "ra2", "rb2", "ra5", "rb5"}
    assert responses.row(0, named=True)["wins"] == 1.0
    soft = bradley_terry_scores(
        dawid_skene_consensus(labels(votes)), _pairs(), soft=True, model=BradleyTerry(ties="davidson")
    )
    assert soft["item"].to_list()[0] == "gpt"
    with pytest.raises(ValueError, match="no model-level comparisons"):
        bradley_terry_scores(consensus.filter(pl.col("pair_id") == P[3]), _pairs())


def test_dawid_skene_fits_unrelated_sources_apart() -> None:
    """Removing a rater from one source must not move the posteriors of a source that shares no pair with it."""
    from prefgate.governance import govern_consensus, source_groups
    from prefgate.policy import Policy

    rows = []
    for i in range(30):  # source "crowd": three raters, one noisy
        for r, choice in (("c1", "a"), ("c2", "a" if i % 3 else "b"), ("c3", "b" if i % 2 else "a")):
            rows.append(("crowd", f"p{i:03d}", f"crowd:{r}", choice))
    for i in range(30):  # source "experts": two raters on other pairs
        for r, choice in (("e1", "a" if i % 4 else "tie"), ("e2", "a" if i % 5 else "b")):
            rows.append(("experts", f"q{i:03d}", f"experts:{r}", choice))
    labels = pl.DataFrame(
        {
            "source": [r[0] for r in rows],
            "pair_id": [r[1] for r in rows],
            "rater_id": [r[2] for r in rows],
            "choice": [r[3] for r in rows],
            "label_id": [f"{k:016x}" for k in range(len(rows))],
        }
    )
    assert len(source_groups(labels)) == 2
    policy = Policy(version="t")
    none = pl.DataFrame({"rater_id": []}, schema={"rater_id": pl.String})
    full = govern_consensus(labels, none, policy)
    less = govern_consensus(labels, pl.DataFrame({"rater_id": ["crowd:c3"]}), policy)
    experts = pl.col("pair_id").str.starts_with("q")
    a, b = full.filter(experts).sort("pair_id"), less.filter(experts).sort("pair_id")
    assert a.select("p_a", "p_b", "p_tie", "verdict").equals(b.select("p_a", "p_b", "p_tie", "verdict"))
    assert not full.filter(~experts).select("p_a").equals(less.filter(~experts).select("p_a"))
