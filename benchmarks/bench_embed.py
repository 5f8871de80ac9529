"""Encode throughput of prefgate.embed (all-MiniLM-L6-v2, CPU) on real prompts, cold and from the disk cache.

    python -m benchmarks.bench_embed [N]        # N prompts (default 2000), JSON lines on stdout

Prompts: TruthfulQA-multi questions (5 languages) then MultiJail prompts (10 languages) from shared/data, cycled
to N. Rows: model load, cold encode per batch size (sentences/s), the same call again from a fresh SQLite cache
(writes included) and once more from the warm cache, and near-duplicate search over the N vectors. The machine
may be shared: ``cpu_seconds`` (process CPU time, all threads) is the steadier figure when others load it.
"""

from __future__ import annotations

import gzip
import json
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

from prefgate import embed as emb

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
if not DATA.is_dir():
    DATA = Path("/work/shared/data")


def prompts(n: int) -> list[str]:
    """N real prompts, cycled."""
    texts: list[str] = []
    for lang in ("en", "es", "ca", "eu", "gl"):
        with gzip.open(DATA / "truthfulqa-multi" / lang / "validation.json.gz") as fh:
            texts += [row["question"] for row in json.load(fh)]
    jail = pl.read_csv(DATA / "multijail" / "MultiJail.csv", encoding="utf8-lossy")
    for lang in ("en", "zh", "it", "vi", "ar", "ko", "th", "bn", "sw", "jv"):
        texts += jail[lang].to_list()
    return [texts[i % len(texts)] for i in range(n)]


def emit(**row: object) -> None:
    print(json.dumps(row), flush=True)


def main(n: int) -> None:
    texts = prompts(n)
    start = time.perf_counter()
    emb.encoder().model  # noqa: B018 - load once, timed apart
    emit(step="model_load", seconds=round(time.perf_counter() - start, 2))
    emb.encoder().encode(texts[:64])  # warm-up
    for batch in (32, 64, 128):
        start, cpu = time.perf_counter(), time.process_time()
        emb.encoder().encode(texts, batch_size=batch)
        sec, cpu = time.perf_counter() - start, time.process_time() - cpu
        emit(
            step="encode_cold",
            batch_size=batch,
            n=n,
            seconds=round(sec, 2),
            cpu_seconds=round(cpu, 2),
            sentences_per_s=round(n / sec, 1),
            sentences_per_cpu_s=round(n / cpu, 1),
        )
    with tempfile.TemporaryDirectory() as tmp:
        for step in ("embed_cache_fill", "embed_cache_hit"):
            before = emb.encoder().texts_encoded
            start = time.perf_counter()
            vecs = emb.embed(texts, cache_dir=Path(tmp))
            sec = time.perf_counter() - start
            emit(
                step=step,
                n=n,
                encoded=emb.encoder().texts_encoded - before,
                seconds=round(sec, 3),
                sentences_per_s=round(n / sec, 1),
            )
    ids = [f"p{i:06d}" for i in range(n)]
    start = time.perf_counter()
    dups = emb.embedding_near_duplicates(ids, texts, embeddings=vecs)
    emit(step="near_duplicates", n=n, seconds=round(time.perf_counter() - start, 3), rows=dups.height)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
