"""Benchmark prefgate.neardup + prefgate.decontam at 1.25M prompts, and datasketch side by side at 125k.

    python -m benchmarks.bench_dedup                       # 1.25M full pass + 125k side by side (a few minutes)
    python -m benchmarks.bench_dedup --full 200000 --compare 20000 --markdown

Input (seeded, `make_corpus`): a vocabulary of 50,000 synthetic words with Zipf(1.05) frequencies; each prompt is
15-60 words (uniform) drawn independently from it, first word capitalised, ending in "." or "?". Planted:

* near-copies (2% of the prompts): a copy of a distinct base prompt with 1-3 word edits (uniform), each edit an
  insertion of a random vocabulary word, a deletion, or a substitution (uniform, at uniform positions);
* exact copies (0.5%): a base prompt upper-cased, with doubled spaces and "!!" in place of its final mark;
* an eval set (5,000 fresh prompts, sources ``mt_bench`` / ``alpaca_eval`` / ``arena_hard``) and 600 train prompts
  contaminated from 600 distinct eval prompts, 200 of each kind: ``exact`` (reformatted copy), ``embedded`` (the eval
  prompt between 5-20 random prefix words and 0-10 suffix words) and ``edited`` (1-3 word edits as above).

Measured (each pass in a fresh child process reading the corpus from Parquet, so peak RSS = ``ru_maxrss`` of a
process holding the input; load average is printed): wall time of `near_duplicates` + `contamination` sharing one
MinHash pass, recall (a planted copy counts when it lands in its source's group) and precision (a reported
duplicate counts when it and its representative belong to one planted group) with the exact bigram Jaccard range of
the planted pairs, and the same for datasketch (MinHash + MinHashLSH, candidates verified by ``MinHash.jaccard``,
union-find) at 125k, with the time ratio.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

VOCAB = 50_000
ZIPF = 1.05
MIN_WORDS, MAX_WORDS = 15, 60
SOURCES = ("mt_bench", "alpaca_eval", "arena_hard")
THRESHOLD = 0.5  # near-duplicate threshold of the benchmark (see the Jaccard range it prints)
NGRAM = 2
NUM_PERM = 128


def vocabulary(rng: np.random.Generator, size: int = VOCAB) -> np.ndarray:
    """``size`` distinct pronounceable words of 1-4 syllables."""
    onsets = np.array([*"bcdfghjklmnprstvwz", "br", "st", "tr", "ch", "sh", "th", "pl", "gr", ""])
    vowels = np.array([*"aeiou", "ai", "ou", "ea", "io"])
    words: list[str] = []
    seen: set[str] = set()
    while len(words) < size:
        n = rng.integers(1, 5, size=size)
        syl = onsets[rng.integers(0, len(onsets), size=(size, 4))] + vowels[rng.integers(0, len(vowels), (size, 4))]
        for k, parts in zip(n, syl, strict=True):
            w = "".join(parts[:k])
            if w not in seen:
                seen.add(w)
                words.append(w)
    return np.array(words[:size])


def _edit(words: list[int], rng: np.random.Generator, cdf: np.ndarray) -> list[int]:
    """1-3 word edits: insert a random word, delete, or substitute (uniform kind and position)."""
    out = list(words)
    for _ in range(int(rng.integers(1, 4))):
        kind = int(rng.integers(0, 3))
        new = int(np.searchsorted(cdf, rng.random()))
        if kind == 0:
            out.insert(int(rng.integers(0, len(out) + 1)), new)
        elif kind == 1 and len(out) > 1:
            del out[int(rng.integers(0, len(out)))]
        else:
            pos = int(rng.integers(0, len(out)))
            while new == out[pos]:
                new = int(np.searchsorted(cdf, rng.random()))
            out[pos] = new
    return out


def _texts(
    vocab: np.ndarray, docs: list[np.ndarray] | tuple[np.ndarray, np.ndarray], rng: np.random.Generator
) -> pl.Series:
    """Join word ids into prompts: first letter upper-case, a final "." or "?"."""
    if isinstance(docs, tuple):
        flat, lengths = docs
    else:
        lengths = np.array([len(d) for d in docs])
        flat = np.concatenate(docs) if docs else np.empty(0, dtype=np.int64)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    words = pl.Series(vocab).gather(flat).to_arrow()
    lists = pa.LargeListArray.from_arrays(pa.array(offsets), words)
    joined = pl.Series(pl.from_arrow(lists)).list.join(" ")
    mark = pl.Series(np.where(rng.random(len(lengths)) < 0.7, ".", "?"))
    return (joined.str.slice(0, 1).str.to_uppercase() + joined.str.slice(1) + mark).alias("text")


@dataclass(frozen=True)
class Corpus:
    """Train prompts, eval prompts and the planted truth."""

    train: pl.DataFrame  # id (string), text
    eval: pl.DataFrame  # id, text, source
    near_pairs: pl.DataFrame  # copy, source, kind ("near" | "exact"), jaccard (exact bigram Jaccard)
    contaminated: pl.DataFrame  # train_id, eval_id, kind ("exact" | "embedded" | "edited")


def _bigram_jaccard(a: list[int], b: list[int]) -> float:
    sa = {(a[i], a[i + 1]) for i in range(len(a) - 1)} if len(a) > 1 else {(a[0], -1)}
    sb = {(b[i], b[i + 1]) for i in range(len(b) - 1)} if len(b) > 1 else {(b[0], -1)}
    return len(sa & sb) / len(sa | sb)


def make_corpus(n: int, *, n_eval: int = 5_000, n_contaminated: int = 600, seed: int = 0) -> Corpus:
    """The seeded synthetic corpus described in the module docstring (``n`` train prompts in all)."""
    rng = np.random.default_rng(seed)
    vocab = vocabulary(rng)
    p = 1.0 / np.arange(1, VOCAB + 1) ** ZIPF
    cdf = np.cumsum(p / p.sum())
    n_near, n_exact = n // 50, n // 200
    n_contaminated = min(n_contaminated, n_eval, n // 10) // 3 * 3
    n_base = n - n_near - n_exact - n_contaminated
    n_gen = n_base + n_eval
    lengths = rng.integers(MIN_WORDS, MAX_WORDS + 1, size=n_gen)
    flat = np.minimum(np.searchsorted(cdf, rng.random(int(lengths.sum()))), VOCAB - 1)
    starts = np.zeros(n_gen, dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])

    def doc(i: int) -> list[int]:
        return [int(v) for v in flat[starts[i] : starts[i] + lengths[i]]]

    base_texts = _texts(vocab, (flat[: int(lengths[:n_base].sum())], lengths[:n_base]), rng)
    eval_texts = _texts(vocab, (flat[int(lengths[:n_base].sum()) :], lengths[n_base:]), rng)
    sources = rng.choice(n_base, size=n_near + n_exact, replace=False)
    near_docs, jac = [], []
    for s in sources[:n_near]:
        d = doc(int(s))
        e = _edit(d, rng, cdf)
        near_docs.append(np.array(e))
        jac.append(_bigram_jaccard(d, e))
    near_texts = _texts(vocab, near_docs, rng)
    exact_texts = (
        base_texts.gather(sources[n_near:]).str.to_uppercase().str.replace_all(" ", "  ").str.replace(r"[.?]$", "!!")
    )
    k = n_contaminated // 3
    picked = rng.choice(n_eval, size=n_contaminated, replace=False)
    cont_docs: list[np.ndarray] = []
    for j, e in enumerate(picked):
        d = doc(n_base + int(e))
        if j < k:
            cont_docs.append(np.array(d))
        elif j < 2 * k:
            pre = np.searchsorted(cdf, rng.random(int(rng.integers(5, 21))))
            post = np.searchsorted(cdf, rng.random(int(rng.integers(0, 11))))
            cont_docs.append(np.concatenate((pre, d, post)).astype(np.int64))
        else:
            cont_docs.append(np.array(_edit(d, rng, cdf)))
    cont_texts = _texts(vocab, cont_docs, rng)
    cont_texts = pl.concat([cont_texts[:k].str.to_uppercase().str.replace_all(" ", "  "), cont_texts[k:]])
    texts = pl.concat([base_texts, near_texts, exact_texts, cont_texts])
    perm = rng.permutation(n)  # ids are shuffled so representatives are not always the base prompt
    ids = pl.Series("id", [f"p{v:08d}" for v in perm])
    train = pl.DataFrame({"id": ids, "text": texts})
    copy_rows = np.arange(n_base, n_base + n_near + n_exact)
    near_pairs = pl.DataFrame(
        {
            "copy": ids.gather(copy_rows),
            "source": ids.gather(sources),
            "kind": ["near"] * n_near + ["exact"] * n_exact,
            "jaccard": jac + [1.0] * n_exact,
        }
    )
    eval_ids = pl.Series("id", [f"e{v:05d}" for v in range(n_eval)])
    ev = pl.DataFrame({"id": eval_ids, "text": eval_texts, "source": rng.choice(np.array(SOURCES), n_eval)})
    contaminated = pl.DataFrame(
        {
            "train_id": ids.gather(np.arange(n - n_contaminated, n)),
            "eval_id": eval_ids.gather(picked),
            "kind": ["exact"] * k + ["embedded"] * k + ["edited"] * k,
        }
    )
    return Corpus(train, ev, near_pairs, contaminated)


# ------------------------------------------------------------------------------------------------ child passes


def _prefgate_pass(data: Path, out: Path, with_contamination: bool) -> dict[str, Any]:
    from prefgate.decontam import contamination
    from prefgate.neardup import minhash_signatures, near_duplicates, prepare

    train = pl.read_parquet(data / "train.parquet")
    ev = pl.read_parquet(data / "eval.parquet") if with_contamination else None
    stages: dict[str, list[float]] = {}
    wall0, cpu0 = time.perf_counter(), time.process_time()
    last = [wall0, cpu0]

    def lap(name: str) -> None:
        now = [time.perf_counter(), time.process_time()]
        stages[name] = [round(now[0] - last[0], 2), round(now[1] - last[1], 2)]
        last[:] = now

    prepared = prepare(train["text"])
    lap("normalise + word hashes")
    sig = minhash_signatures(prepared.words, num_perm=NUM_PERM, ngram=NGRAM)
    lap("minhash")
    near = near_duplicates(train["id"], train["text"], threshold=THRESHOLD, signatures=sig)
    lap("lsh + verify + union-find")
    if ev is not None:
        found = contamination(
            train["id"], train["text"], ev["id"], ev["text"], ev["source"],
            jaccard_threshold=THRESHOLD, train=prepared, train_signatures=sig,
        )  # fmt: skip
        lap("contamination")
        found.write_parquet(out / "contamination.parquet")
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    near.write_parquet(out / "near.parquet")
    return {"wall_s": wall, "cpu_s": cpu, "stages": stages, "peak_rss_gib": _peak_rss_gib()}


def _datasketch_pass(data: Path, out: Path) -> dict[str, Any]:
    from datasketch import MinHash, MinHashLSH

    from prefgate.neardup import normalise

    train = pl.read_parquet(data / "train.parquet")
    wall0, cpu0 = time.perf_counter(), time.process_time()
    words = normalise(train["text"]).str.split(" ").to_list()
    shingles = [
        [f"{a} {b}".encode() for a, b in itertools.pairwise(w)] if len(w) > 1 else [" ".join(w).encode()] for w in words
    ]
    hashes = MinHash.bulk(shingles, num_perm=NUM_PERM)
    lsh = MinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM)
    with lsh.insertion_session() as session:
        for i, m in enumerate(hashes):
            session.insert(i, m)
    parent = list(range(len(hashes)))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i, m in enumerate(hashes):
        for j in lsh.query(m):
            if j < i and m.jaccard(hashes[j]) >= THRESHOLD:
                a, b = find(i), find(j)
                if a != b:
                    parent[max(a, b)] = min(a, b)
    roots = np.array([find(i) for i in range(len(hashes))])
    ids = train["id"]
    groups = pl.DataFrame({"id": ids, "root": roots}).with_columns(pl.col("id").min().over("root").alias("rep"))
    near = groups.filter(pl.col("id") != pl.col("rep")).select("id", pl.col("rep").alias("duplicate_of"))
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    near.write_parquet(out / "near.parquet")
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "peak_rss_gib": _peak_rss_gib(),
        "bands_rows": list(lsh.b_r) if hasattr(lsh, "b_r") else [lsh.b, lsh.r],
    }


def _reset_peak_rss() -> None:
    """Reset the kernel's RSS high-water mark: a child's ru_maxrss would start at its parent's size at fork."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _peak_rss_gib() -> float:
    """VmHWM (peak RSS since the reset) where /proc has it, else ru_maxrss."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def _child(kind: str, data: Path, out: Path, timeout: float = 1800.0) -> dict[str, Any]:
    """Run one pass in a fresh interpreter; its last stdout line is the JSON result."""
    cmd = [sys.executable, "-m", "benchmarks.bench_dedup", "--child", kind, "--data", str(data), "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


# ------------------------------------------------------------------------------------------------ scoring


def score_near(corpus: Corpus, near: pl.DataFrame) -> dict[str, Any]:
    """Recall (a planted copy lands in its source's group) and precision (a reported row within a planted group)."""
    rep = dict(zip(near["id"].to_list(), near["duplicate_of"].to_list(), strict=True))
    pairs = corpus.near_pairs
    hit = np.array([rep.get(c, c) == rep.get(s, s) for c, s in zip(pairs["copy"], pairs["source"], strict=True)])
    group = {c: s for c, s in zip(pairs["copy"], pairs["source"], strict=True)}
    true_rows = sum(group.get(i, i) == group.get(d, d) for i, d in zip(near["id"], near["duplicate_of"], strict=True))
    jac = pairs["jaccard"].to_numpy()
    near_kind = (pairs["kind"] == "near").to_numpy()
    return {
        "planted": len(pairs),
        "reported": len(near),
        "recall": float(hit.mean()) if len(hit) else float("nan"),
        "recall_near_copies": float(hit[near_kind].mean()),
        "recall_above_threshold": float(hit[jac >= THRESHOLD].mean()),
        "precision": true_rows / len(near) if len(near) else float("nan"),
        "false_positives": len(near) - true_rows,
    }


def score_contamination(corpus: Corpus, found: pl.DataFrame) -> dict[str, Any]:
    truth = corpus.contaminated
    got = found.select("train_id", "eval_id", "method").with_columns(pl.lit(True).alias("hit"))
    joined = truth.join(got, on=["train_id", "eval_id"], how="left")
    by_kind = joined.group_by("kind").agg(pl.col("hit").fill_null(False).mean().alias("recall"))
    true_found = found.join(truth, on=["train_id", "eval_id"], how="semi")
    return {
        "planted": len(truth),
        "reported": len(found),
        "recall": float(joined["hit"].fill_null(False).cast(pl.Float64).mean() or 0.0),  # type: ignore[arg-type]
        "recall_by_kind": dict(zip(by_kind["kind"], by_kind["recall"], strict=True)),
        "precision": len(true_found) / len(found) if len(found) else float("nan"),
        "methods": dict(found["method"].value_counts().iter_rows()),
    }


def jaccard_range(corpus: Corpus) -> dict[str, float]:
    j = corpus.near_pairs.filter(pl.col("kind") == "near")["jaccard"]
    return {
        "min": float(j.min()),  # type: ignore[arg-type]
        "p1": float(j.quantile(0.01)),  # type: ignore[arg-type]
        "p5": float(j.quantile(0.05)),  # type: ignore[arg-type]
        "median": float(j.median()),  # type: ignore[arg-type]
        "max": float(j.max()),  # type: ignore[arg-type]
        "share_below_threshold": float((j < THRESHOLD).cast(pl.Float64).mean()),  # type: ignore[arg-type]
    }


def _write(corpus: Corpus, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    corpus.train.write_parquet(folder / "train.parquet")
    corpus.eval.write_parquet(folder / "eval.parquet")


def run(full: int, compare: int, with_datasketch: bool = True) -> dict[str, Any]:
    """Generate, run the passes in child processes, score; returns every figure."""
    result: dict[str, Any] = {"load_average_start": os.getloadavg(), "threshold": THRESHOLD, "ngram": NGRAM}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if full:
            t = time.perf_counter()
            corpus = make_corpus(full, seed=0)
            result["full_generate_s"] = time.perf_counter() - t
            _write(corpus, root / "full")
            out = root / "full_out"
            out.mkdir()
            result["full"] = {"n": full, **_child("prefgate-full", root / "full", out)}
            result["full"]["near"] = score_near(corpus, pl.read_parquet(out / "near.parquet"))
            result["full"]["contamination"] = score_contamination(
                corpus, pl.read_parquet(out / "contamination.parquet")
            )
            result["full"]["jaccard_range"] = jaccard_range(corpus)
            del corpus
        if compare:
            corpus = make_corpus(compare, seed=1)
            _write(corpus, root / "cmp")
            result["compare"] = {"n": compare, "jaccard_range": jaccard_range(corpus)}
            kinds = ["prefgate-near", "datasketch"] if with_datasketch else ["prefgate-near"]
            for kind in kinds:
                out = root / f"cmp_{kind}"
                out.mkdir()
                r = _child(kind, root / "cmp", out)
                r["near"] = score_near(corpus, pl.read_parquet(out / "near.parquet"))
                result["compare"][kind] = r
            if with_datasketch:
                c = result["compare"]
                c["ratio"] = c["datasketch"]["wall_s"] / c["prefgate-near"]["wall_s"]
    result["load_average_end"] = os.getloadavg()
    return result


def markdown(r: dict[str, Any]) -> str:
    lines = [f"load average at start {r['load_average_start'][0]:.2f}, at end {r['load_average_end'][0]:.2f}", ""]
    if "full" in r:
        f = r["full"]
        nd, ct, jr = f["near"], f["contamination"], f["jaccard_range"]
        lines += [
            f"### Full pass: {f['n']:,} prompts + 5,000 eval prompts (fresh process)",
            "",
            "| wall (s) | CPU (s) | peak RSS (GiB) | near-dup recall | recall (J >= thr) | precision | "
            "contamination recall | contamination precision |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
            f"| {f['wall_s']:.1f} | {f['cpu_s']:.1f} | {f['peak_rss_gib']:.2f} | {nd['recall']:.4f} | "
            f"{nd['recall_above_threshold']:.4f} | {nd['precision']:.4f} | {ct['recall']:.4f} | "
            f"{ct['precision']:.4f} |",
            "",
            "stages (wall s / CPU s): " + ", ".join(f"{k} {w:.1f} / {c:.1f}" for k, (w, c) in f["stages"].items()),
            "",
            f"planted near-copy bigram Jaccard: min {jr['min']:.3f}, p1 {jr['p1']:.3f}, p5 {jr['p5']:.3f}, "
            f"median {jr['median']:.3f}, max {jr['max']:.3f}; {jr['share_below_threshold']:.2%} below {r['threshold']}",
            f"near-dup: {nd['planted']:,} planted copies, {nd['reported']:,} rows reported, "
            f"{nd['false_positives']} false positives; near-copies only recall {nd['recall_near_copies']:.4f}",
            f"contamination recall by kind: {ct['recall_by_kind']}; methods: {ct['methods']}",
            "",
        ]
    if "compare" in r:
        c = r["compare"]
        lines += [
            f"### Side by side at {c['n']:,} prompts (near-duplicates only, fresh process each)",
            "",
            "| implementation | wall (s) | CPU (s) | peak RSS (GiB) | recall | precision | false positives |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for kind in ("prefgate-near", "datasketch"):
            if kind in c:
                x = c[kind]
                lines.append(
                    f"| {kind} | {x['wall_s']:.1f} | {x['cpu_s']:.1f} | {x['peak_rss_gib']:.2f} | "
                    f"{x['near']['recall']:.4f} | {x['near']['precision']:.4f} | {x['near']['false_positives']} |"
                )
        if "ratio" in c:
            lines += ["", f"ratio (datasketch wall / prefgate wall): {c['ratio']:.1f}x"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", type=int, default=1_250_000)
    parser.add_argument("--compare", type=int, default=125_000)
    parser.add_argument("--no-datasketch", action="store_true")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--child", choices=["prefgate-full", "prefgate-near", "datasketch"])
    parser.add_argument("--data", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if args.child:
        _reset_peak_rss()
        if args.child == "datasketch":
            res = _datasketch_pass(args.data, args.out)
        else:
            res = _prefgate_pass(args.data, args.out, with_contamination=args.child == "prefgate-full")
        print(json.dumps(res))
        return
    r = run(args.full, args.compare, with_datasketch=not args.no_datasketch)
    print(markdown(r) if args.markdown else json.dumps(r, default=float))


if __name__ == "__main__":
    main()
