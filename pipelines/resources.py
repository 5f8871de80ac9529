"""Resources: where the project's state and configuration live."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
from pydantic import Field

from prefgate.home import PROJECT_ROOT, Home
from prefgate.ingest.sources import SourceSpec, load_sources
from prefgate.policy import Policy, load_policy

SCHEMA = "prefgate"


class PrefgateResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """The prefgate home (warehouse, landing, exports) and the sources and policy files."""

    home: str = Field(description="Project-local state directory (PREFGATE_HOME).")
    sources_path: str = str(PROJECT_ROOT / "config" / "sources.yaml")
    policy_path: str = str(PROJECT_ROOT / "config" / "policy.yaml")
    licenses_path: str = str(PROJECT_ROOT / "config" / "licenses.yaml")

    @property
    def paths(self) -> Home:
        return Home(Path(self.home))

    def sources(self) -> list[SourceSpec]:
        return load_sources(self.sources_path)

    def gold_sources(self) -> set[str]:
        """Names of the human-label sources declared ``gold: true`` (reference labels, see prefgate.gold)."""
        return {s.name for s in self.sources() if s.gold}

    def policy(self) -> Policy:
        return load_policy(self.policy_path)

    def query(self, sql: str, params: list[object] | None = None) -> pl.DataFrame | None:
        """Read-only query of the warehouse; ``None`` if the warehouse or a table does not exist yet."""
        path = self.paths.warehouse
        if not path.exists():
            return None
        con = duckdb.connect(str(path))
        try:
            return con.execute(sql, params or []).pl()
        except (duckdb.CatalogException, duckdb.BinderException):
            return None
        finally:
            con.close()
