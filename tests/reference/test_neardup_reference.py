"""prefgate.neardup against datasketch (MinHash + MinHashLSH) and exact Jaccard, on real prompts.

Data: AdvBench (``/work/shared/data/advbench``): the 520 ``goal`` prompts of harmful_behaviors.csv, their ``target``
strings ("Sure, here is ..." + the goal, i.e. real near-copies) and the 574 harmful_strings.csv targets: 1,614
texts. Shingles are word bigrams of the normalised text on both sides (datasketch gets the same shingle strings),
and exact Jaccard is computed here for every pair from a sparse bigram incidence matrix.

Checked: both estimators' errors against exact Jaccard (bias and RMSE, prefgate no worse than datasketch), and the
near-duplicate pairs found at threshold 0.5 (datasketch: LSH candidates verified by ``MinHash.jaccard``) against
each other and against exact Jaccard. Skipped where datasketch or the shared data are absent.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy.sparse import csr_matrix, triu

from prefgate.neardup import candidate_pairs, lsh_params, minhash_signatures, near_duplicates, normalise

datasketch = pytest.importorskip("datasketch")

_HERE = Path(__file__).resolve().parents[2].parent / "shared" / "data"
DATA = _HERE if _HERE.exists() else Path("/work/shared/data")
ADVBENCH = DATA / "advbench"
THRESHOLD = 0.5
NUM_PERM = 128


@pytest.fixture(scope="module")
def prompts() -> pl.Series:
    if not ADVBENCH.exists():
        pytest.skip(f"shared data folder {ADVBENCH} is absent")
    behaviors = pl.read_csv(ADVBENCH / "harmful_behaviors.csv")
    strings = pl.read_csv(ADVBENCH / "harmful_strings.csv")
    return pl.concat([behaviors["goal"], behaviors["target"], strings["target"]]).alias("text")


def bigram_sets(texts: pl.Series) -> list[list[str]]:
    out = []
    for text in normalise(texts).to_list():
        words = text.split(" ")
        out.append(sorted({f"{a} {b}" for a, b in itertools.pairwise(words)}) if len(words) > 1 else [text])
    return out


@pytest.fixture(scope="module")
def exact(prompts: pl.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, Jaccard) for every pair i < j sharing at least one bigram."""
    sets = bigram_sets(prompts)
    vocab = {s: k for k, s in enumerate(sorted({s for b in sets for s in b}))}
    rows = np.repeat(np.arange(len(sets)), [len(b) for b in sets])
    cols = np.array([vocab[s] for b in sets for s in b])
    x = csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(sets), len(vocab)))
    inter = triu(x @ x.T, k=1).tocoo()
    sizes = np.asarray(x.sum(axis=1)).ravel()
    jac = inter.data / (sizes[inter.row] + sizes[inter.col] - inter.data)
    return inter.row.astype(np.int64), inter.col.astype(np.int64), jac


@pytest.fixture(scope="module")
def sketches(prompts: pl.Series) -> list[object]:
    return list(datasketch.MinHash.bulk([[s.encode() for s in b] for b in bigram_sets(prompts)], num_perm=NUM_PERM))


def test_jaccard_estimates_agree_with_exact_and_datasketch(
    prompts: pl.Series, exact: tuple[np.ndarray, np.ndarray, np.ndarray], sketches: list[object]
) -> None:
    i, j, jac = exact
    rng = np.random.default_rng(0)
    pick = np.concatenate([np.flatnonzero(jac >= 0.2), rng.choice(len(jac), 2000, replace=False)])
    i, j, jac = i[pick], j[pick], jac[pick]
    ours = minhash_signatures(prompts, num_perm=NUM_PERM, ngram=2).jaccard(i, j)
    # pairs share prompts (and common bigrams), so one seed's errors are correlated: average the bias over seeds
    seed_bias = [(minhash_signatures(prompts, seed=s).jaccard(i, j) - jac).mean() for s in range(1, 5)]
    theirs = np.array([sketches[a].jaccard(sketches[b]) for a, b in zip(i, j, strict=True)])
    err_ours, err_theirs = ours - jac, theirs - jac
    rmse_ours, rmse_theirs = np.sqrt((err_ours**2).mean()), np.sqrt((err_theirs**2).mean())
    print(
        f"\n{len(jac)} pairs ({(jac >= 0.5).sum()} with J >= 0.5): bias ours {err_ours.mean():+.4f} datasketch "
        f"{err_theirs.mean():+.4f} (ours over 4 more seeds {np.mean(seed_bias):+.4f}); "
        f"RMSE ours {rmse_ours:.4f} datasketch {rmse_theirs:.4f}"
    )
    assert (jac >= 0.5).sum() >= 400  # the goal/target pairs at least
    assert abs(np.mean([err_ours.mean(), *seed_bias])) < 0.006
    assert max(abs(b) for b in seed_bias) < 0.025
    assert rmse_ours < 0.05
    assert rmse_ours <= 1.2 * rmse_theirs + 0.005
    assert np.abs(ours - theirs).max() < 0.3
    assert np.abs(err_ours).max() < 0.25


def test_near_duplicate_pairs_agree_with_datasketch_lsh(
    prompts: pl.Series, exact: tuple[np.ndarray, np.ndarray, np.ndarray], sketches: list[object]
) -> None:
    i, j, jac = exact
    lsh = datasketch.MinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM)
    for k, m in enumerate(sketches):
        lsh.insert(k, m)
    theirs = {
        (min(k, q), max(k, q))
        for k, m in enumerate(sketches)
        for q in lsh.query(m)
        if q != k and m.jaccard(sketches[q]) >= THRESHOLD  # type: ignore[attr-defined]
    }
    sig = minhash_signatures(prompts, num_perm=NUM_PERM, ngram=2)
    left, right = candidate_pairs(sig, *lsh_params(THRESHOLD, NUM_PERM))
    keep = sig.jaccard(left, right) >= THRESHOLD
    ours = set(zip(left[keep].tolist(), right[keep].tolist(), strict=True))  # verified LSH edges (chain + star)
    exact_of = dict(zip(zip(i.tolist(), j.tolist(), strict=True), jac.tolist(), strict=True))
    ids = pl.Series(np.arange(len(prompts)))
    groups = near_duplicates(ids, prompts, threshold=THRESHOLD)
    rep = dict(zip(groups["id"].to_list(), groups["duplicate_of"].to_list(), strict=True))
    their_rep = _components(len(prompts), theirs)
    clear = list(zip(i[jac >= 0.6].tolist(), j[jac >= 0.6].tolist(), strict=True))
    ours_together = sum(rep.get(a, a) == rep.get(b, b) for a, b in clear)
    theirs_together = sum(their_rep[a] == their_rep[b] for a, b in clear)
    in_ours = {k for k in range(len(prompts)) if k in rep or k in rep.values()}
    in_theirs = {k for k in range(len(prompts)) if their_rep[k] != k or (their_rep == k).sum() > 1}
    agree = len(in_ours & in_theirs) / len(in_ours | in_theirs)
    weak_edges = sum(exact_of.get(e, 0.0) < 0.4 for e in ours)
    their_weak = sum(exact_of.get(e, 0.0) < 0.4 for e in theirs)
    print(f"\nclear pairs (J >= 0.6): {len(clear)}, grouped together: ours {ours_together}, datasketch "
          f"{theirs_together}; prompts in a group: ours {len(in_ours)}, datasketch {len(in_theirs)}, agreement "
          f"{agree:.3f}; verified edges with exact J < 0.4: ours {weak_edges} of {len(ours)}, datasketch "
          f"{their_weak} of {len(theirs)}")  # fmt: skip
    assert len(clear) >= 400
    assert ours_together >= 0.99 * len(clear)
    assert ours_together >= theirs_together - 0.01 * len(clear)
    assert weak_edges <= 0.02 * len(ours)  # estimation noise: our r = 3 bands also verify more pairs near 0.4
    assert len(in_theirs - in_ours) <= 0.02 * len(in_theirs)  # we group (nearly) everything datasketch groups
    assert agree >= 0.85
    for row in groups.iter_rows(named=True):  # the reported Jaccard is an estimate of the exact one
        key = (min(row["id"], row["duplicate_of"]), max(row["id"], row["duplicate_of"]))
        assert row["jaccard"] == pytest.approx(exact_of.get(key, 0.0), abs=0.2)


def _components(n: int, pairs: set[tuple[int, int]]) -> np.ndarray:
    """Smallest member of each prompt's connected component (scipy)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    a = np.array([p[0] for p in pairs], dtype=np.int64)
    b = np.array([p[1] for p in pairs], dtype=np.int64)
    _, label = connected_components(coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n)), directed=False)
    smallest = pl.DataFrame({"k": np.arange(n), "c": label}).select(pl.col("k").min().over("c"))
    return smallest.to_series().to_numpy()
