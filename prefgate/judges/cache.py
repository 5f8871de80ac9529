"""Durable judgment cache: one SQLite row per (judge_id, pair_id, order).

* ``PRIMARY KEY (judge_id, pair_id, pair_order)``: a key can never have two rows.
* Upsert rule: a new judgment is written when the key is absent or its stored judgment **failed**; a stored
  **ok** judgment is never overwritten (so a success replaces a failure, never the reverse, and the first
  success is final).
* :meth:`JudgmentCache.put_many` writes a whole batch in one ``BEGIN IMMEDIATE`` transaction: a writer killed
  mid-batch loses that batch only. WAL mode and a busy timeout make it safe for several processes at once.
* :meth:`JudgmentCache.get_many` reads with one query per chunk of pair ids (per judge), so the cache-hit path
  is a handful of queries for thousands of keys.
* A row is the :class:`Judgment` itself, field by field: one column per scalar field (``order`` is stored as
  ``pair_order``) and ``extra`` as JSON. Storing fields as columns keeps the cache-hit path free of a JSON parse
  per row and makes the cache queryable in SQL. :meth:`Judgment.to_json` of a row read back equals that of the
  row written. Nothing else is stored: no request, header, URL or API key ever reaches the file.
* Defence in depth: :meth:`JudgmentCache.put_many` scrubs each row's free text (``raw_output``, ``rationale``,
  ``error``, ``extra``) of registered secrets, auth-header echoes and key-shaped strings
  (:mod:`prefgate.judges.secrets`) before writing, whichever caller built the judgment.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import fields
from pathlib import Path
from types import TracebackType
from typing import Any

from prefgate.judges.base import Judgment, Order
from prefgate.judges.secrets import known_secrets, scrub_judgment

CacheKey = tuple[str, str, Order]  # (judge_id, pair_id, order)

_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Judgment))
_KEY_FIELDS = ("judge_id", "pair_id", "order")
# Native SQLite types of the known scalar fields; any other field (a later addition to Judgment) is stored as
# JSON text, like ``extra``.
_NATIVE: dict[str, str] = {
    "judge_id": "TEXT", "pair_id": "TEXT", "order": "TEXT", "status": "TEXT", "parse_status": "TEXT",
    "verdict": "TEXT", "p_first": "REAL", "raw_output": "TEXT", "rationale": "TEXT", "error": "TEXT",
    "prompt_tokens": "INTEGER", "completion_tokens": "INTEGER", "latency_s": "REAL", "cost_usd": "REAL",
    "attempts": "INTEGER", "pii_action": "TEXT", "constitution_hash": "TEXT", "template_hash": "TEXT",
}  # fmt: skip
_JSON_FIELDS: tuple[int, ...] = tuple(i for i, name in enumerate(_FIELDS) if name not in _NATIVE)
# only ``extra`` is JSON, and it is the last field (the hot decoding path)
_EXTRA_LAST_ONLY = _FIELDS[-1] == "extra" and len(_JSON_FIELDS) == 1


def _column(name: str) -> str:
    return "pair_order" if name == "order" else name


_COLUMNS: tuple[str, ...] = tuple(_column(n) for n in _FIELDS)
_SELECT = ", ".join(_COLUMNS)
_CHUNK = 900  # bound parameters per query: below every SQLite build's limit


def _schema() -> str:
    cols = []
    for name in _FIELDS:
        kind = _NATIVE.get(name, "TEXT")
        null = " NOT NULL" if name in _KEY_FIELDS or name in ("status", "parse_status") else ""
        cols.append(f"    {_column(name)} {kind}{null}")
    return (
        "CREATE TABLE IF NOT EXISTS judgments (\n" + ",\n".join(cols) + ",\n    updated_at REAL NOT NULL,\n"
        "    CHECK (pair_order IN ('ab', 'ba')),\n"
        "    CHECK (status IN ('ok', 'failed')),\n"
        "    PRIMARY KEY (judge_id, pair_id, pair_order)\n"
        ") WITHOUT ROWID"
    )


def _upsert() -> str:
    marks = ", ".join("?" * (len(_COLUMNS) + 1))
    updates = ", ".join(f"{c} = excluded.{c}" for c in (*_COLUMNS, "updated_at") if c not in ("judge_id", "pair_id"))
    return (
        f"INSERT INTO judgments ({_SELECT}, updated_at) VALUES ({marks})\n"
        f"ON CONFLICT (judge_id, pair_id, pair_order) DO UPDATE SET {updates}\n"
        "WHERE judgments.status <> 'ok'"
    )


_UPSERT = _upsert()


def _encode(j: Judgment, secrets: frozenset[str] = frozenset()) -> list[object]:
    j = scrub_judgment(j, secrets)  # a secret never reaches the file, whoever built the judgment
    row: list[object] = [getattr(j, name) for name in _FIELDS]
    for i in _JSON_FIELDS:
        row[i] = json.dumps(row[i], sort_keys=True, default=str)
    return row


_MEMO: dict[str, dict[str, Any]] = {}  # decoded flat ``extra`` objects by text (most rows repeat a few)
_MEMO_MAX = 4096


def _json_field(text: Any) -> Any:
    """Decode a JSON column; flat objects (scalar values) are memoised and handed out as fresh copies."""
    if text == "{}":
        return {}
    hit = _MEMO.get(text)
    if hit is not None:
        return dict(hit)
    value = json.loads(text)
    if (
        isinstance(value, dict)
        and len(_MEMO) < _MEMO_MAX
        and not any(isinstance(v, dict | list) for v in value.values())
    ):
        _MEMO[text] = value
        return dict(value)
    return value


def _decode(row: Sequence[Any]) -> Judgment:
    if _EXTRA_LAST_ONLY:  # the hot path
        return Judgment(*[*row[:-1], _json_field(row[-1])])
    values: list[Any] = list(row)  # SQLite gives back the native types written
    for i in _JSON_FIELDS:
        values[i] = _json_field(values[i])
    return Judgment(*values)


def key_of(judgment: Judgment) -> CacheKey:
    """The cache key of a judgment."""
    return (judgment.judge_id, judgment.pair_id, judgment.order)


class JudgmentCache:
    """SQLite-backed store of :class:`Judgment` records (see the module docstring). Use as a context manager."""

    def __init__(self, path: str | Path, *, busy_timeout_s: float = 60.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, timeout=busy_timeout_s, isolation_level=None)
        self._conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute("PRAGMA synchronous = NORMAL")
        self._conn.execute(_schema())
        present = {r[1] for r in self._conn.execute("PRAGMA table_info(judgments)")}
        for name in _FIELDS:  # a field added to Judgment since the file was made: add its column
            if _column(name) not in present:
                self._conn.execute(f"ALTER TABLE judgments ADD COLUMN {_column(name)} {_NATIVE.get(name, 'TEXT')}")

    def __repr__(self) -> str:
        return f"JudgmentCache({str(self.path)!r})"

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> JudgmentCache:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ---------------------------------------------------------------------------------------------- writes

    def put_many(self, judgments: Iterable[Judgment]) -> int:
        """Upsert a batch in one transaction; returns how many rows were written (ok rows are never replaced)."""
        now = time.time()
        secrets = known_secrets()
        before = self._conn.total_changes
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._conn.executemany(_UPSERT, ([*_encode(j, secrets), now] for j in judgments))
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")
        return self._conn.total_changes - before

    def put(self, judgment: Judgment) -> bool:
        """Upsert one judgment; True when it was written."""
        return self.put_many([judgment]) == 1

    # ----------------------------------------------------------------------------------------------- reads

    def _query(
        self, keys: Iterable[CacheKey], columns: str, where: str = ""
    ) -> Iterator[tuple[set[CacheKey], sqlite3.Cursor]]:
        """(wanted keys, cursor over rows starting with judge_id, pair_id, pair_order): one query per judge and
        chunk of pair ids; rows may include keys that were not asked for (the other order)."""
        by_judge: dict[str, set[str]] = defaultdict(set)
        wanted: set[CacheKey] = set()
        for key in keys:
            by_judge[key[0]].add(key[1])
            wanted.add(key)
        for judge_id, pair_ids in by_judge.items():
            ids = sorted(pair_ids)
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                sql = f"SELECT {columns} FROM judgments WHERE judge_id = ? {where} AND pair_id IN ({marks})"
                yield wanted, self._conn.execute(sql, (judge_id, *chunk))

    def get_many(self, keys: Iterable[CacheKey]) -> dict[CacheKey, Judgment]:
        """The stored judgments of the keys that have one (absent keys are simply missing from the result)."""
        out: dict[CacheKey, Judgment] = {}
        for wanted, cursor in self._query(keys, _SELECT):
            for row in cursor:
                key = row[:3]
                if key in wanted:
                    out[key] = _decode(row)
        return out

    def ok_keys(self, keys: Iterable[CacheKey]) -> set[CacheKey]:
        """The keys that already hold a successful judgment (nothing decoded)."""
        out: set[CacheKey] = set()
        for wanted, cursor in self._query(keys, "judge_id, pair_id, pair_order", "AND status = 'ok'"):
            out.update(key for key in cursor if key in wanted)
        return out

    def get(self, key: CacheKey) -> Judgment | None:
        return self.get_many([key]).get(key)

    def iter_judge(self, judge_id: str) -> Iterator[Judgment]:
        """Every stored judgment of one judge, by pair id and order."""
        cur = self._conn.execute(
            f"SELECT {_SELECT} FROM judgments WHERE judge_id = ? ORDER BY pair_id, pair_order", (judge_id,)
        )
        for row in cur:
            yield _decode(row)

    def counts(self) -> dict[tuple[str, str], int]:
        """Row counts by (judge_id, status)."""
        rows: Sequence[tuple[str, str, int]] = self._conn.execute(
            "SELECT judge_id, status, COUNT(*) FROM judgments GROUP BY judge_id, status"
        ).fetchall()
        return {(j, s): n for j, s, n in rows}

    def __len__(self) -> int:
        row = self._conn.execute("SELECT COUNT(*) FROM judgments").fetchone()
        return int(row[0])
