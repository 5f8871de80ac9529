"""Time prefgate.degenerate.degenerate_pairs on N real pairs (HH-RLHF test final turns, cycled), one JSON line.

    python -m benchmarks.bench_degenerate [N]     # default 100000

Also times the full HH-RLHF dialogues (shared context kept: the worst case for the near-identical check).
"""

from __future__ import annotations

import gzip
import json
import sys
import time
from pathlib import Path

import polars as pl

from prefgate.degenerate import degenerate_pairs

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
if not DATA.is_dir():
    DATA = Path("/work/shared/data")
SPLITS = ("harmless-base", "helpful-base", "helpful-online", "helpful-rejection-sampled")


def hh_pairs() -> pl.DataFrame:
    """The 8,552 HH-RLHF test pairs as full dialogues."""
    rows = []
    for split in SPLITS:
        with gzip.open(DATA / "hh-rlhf-test" / split / "test.jsonl.gz") as fh:
            rows += [json.loads(line) for line in fh]
    return pl.DataFrame(rows).select("chosen", "rejected")


def timed(frame: pl.DataFrame) -> tuple[float, dict[str, int]]:
    start = time.perf_counter()
    out = degenerate_pairs(frame, columns=("chosen", "rejected"))
    return time.perf_counter() - start, dict(out.group_by("reason").len().rows())


def main(n: int) -> None:
    full = hh_pairs()
    last = full.select(pl.col("chosen", "rejected").str.split("\n\nAssistant:").list.last())
    cycled = pl.concat([last] * (n // last.height + 1)).head(n).with_row_index("pair_id")
    sec, counts = timed(cycled)
    full_sec, full_counts = timed(full.with_row_index("pair_id"))
    row = {
        "n": n,
        "seconds": round(sec, 2),
        "pairs_per_s": round(n / sec),
        "reasons": counts,
        "full_dialogues_n": full.height,
        "full_dialogues_seconds": round(full_sec, 2),
        "full_dialogues_reasons": full_counts,
    }
    print(json.dumps(row))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
