"""Where prefgate keeps its state: one project-local directory, overridable by ``PREFGATE_HOME``.

Layout: ``warehouse.duckdb`` (tables), ``dagster/`` (DAGSTER_HOME: run history, schedules, sensors),
``landing/`` (files waiting to be ingested), ``exports/`` (gated outputs), ``judge_cache.sqlite``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Home:
    """Resolved paths of one prefgate home directory."""

    root: Path

    @classmethod
    def from_env(cls) -> Home:
        """The home named by ``PREFGATE_HOME``, else ``.prefgate`` in the project root."""
        return cls(Path(os.environ.get("PREFGATE_HOME", PROJECT_ROOT / ".prefgate")).resolve())

    @property
    def warehouse(self) -> Path:
        return self.root / "warehouse.duckdb"

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster"

    @property
    def landing(self) -> Path:
        return self.root / "landing"

    @property
    def judge_cache(self) -> Path:
        """Durable cache of judgments, one row per (judge, pair, order), shared by the asset and the command."""
        return self.root / "judge_cache.sqlite"

    @property
    def exports(self) -> Path:
        return self.root / "exports"

    def ensure(self) -> Home:
        """Create the directories (idempotent) and return self."""
        for p in (self.root, self.dagster_home, self.landing, self.exports):
            p.mkdir(parents=True, exist_ok=True)
        return self


def shared_cache_dir(kind: str) -> Path:
    """A cache shared by every home on this machine (``PREFGATE_CACHE`` or ``~/.cache/prefgate``), for content-
    addressed results that do not depend on a home's data -- e.g. embeddings keyed by the text's hash."""
    import os

    base = Path(os.environ.get("PREFGATE_CACHE") or Path.home() / ".cache" / "prefgate")
    return base / kind
