"""The warehouse I/O manager: DuckDB tables of Polars frames, empty tables included.

The stock Polars handler skips writing empty frames, so a clean batch (an empty quarantine) leaves no table and
every downstream read fails; it also appends to a table created by an older schema. This handler writes empty
frames as empty tables and replaces unpartitioned tables whole.

The stock client also leaves its connection open when a read or write raises, with a config (a user agent)
that differs from every other connection prefgate opens; the next ``duckdb.connect`` of the same file in that
process then fails with "different configuration than existing connections", hiding the real error. This
client opens connections exactly like the rest of prefgate and always closes them.
"""

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import duckdb
import polars as pl
from dagster import OutputContext
from dagster._core.storage.db_io_manager import DbIOManager, DbTypeHandler, TableSlice
from dagster._utils.backoff import backoff
from dagster_duckdb.io_manager import DuckDbClient
from dagster_duckdb_polars import DuckDBPolarsIOManager, DuckDBPolarsTypeHandler


class WarehouseClient(DuckDbClient):
    """DuckDB connections with prefgate's (default) config, closed even when the step fails."""

    @staticmethod
    @contextlib.contextmanager
    def connect(context: Any, _: Any) -> Iterator[duckdb.DuckDBPyConnection]:
        conn = backoff(
            fn=duckdb.connect,
            retry_on=(RuntimeError, duckdb.IOException),
            kwargs={"database": context.resource_config["database"], "read_only": False},
            max_retries=10,
        )
        try:
            yield conn
        finally:
            conn.close()


class WarehouseTypeHandler(DuckDBPolarsTypeHandler):
    """Polars <-> DuckDB, writing empty frames and replacing unpartitioned tables."""

    def handle_output(
        self, context: OutputContext, table_slice: TableSlice, obj: pl.DataFrame, connection: Any
    ) -> None:
        obj_arrow = obj.to_arrow()  # noqa: F841  (DuckDB reads the local by name)
        name = f"{table_slice.schema}.{table_slice.table}"
        connection.execute(f"create schema if not exists {table_slice.schema};")
        if not table_slice.partition_dimensions:
            connection.execute(f"create or replace table {name} as select * from obj_arrow")
        else:
            connection.execute(f"create table if not exists {name} as select * from obj_arrow limit 0")
            # columns added since the table was created: add them (older partitions read as null)
            have = {r[0] for r in connection.execute(f"describe {name}").fetchall()}
            for col, dtype, *_ in connection.execute("describe select * from obj_arrow").fetchall():
                if col not in have:
                    connection.execute(f'alter table {name} add column "{col}" {dtype}')
            connection.execute(f"insert into {name} by name select * from obj_arrow")
        context.add_output_metadata({"row_count": obj.height})


class WarehouseIOManager(DuckDBPolarsIOManager):
    """DuckDB file warehouse for Polars frames (see :class:`WarehouseTypeHandler`)."""

    @staticmethod
    def type_handlers() -> Sequence[DbTypeHandler[Any]]:
        return [WarehouseTypeHandler()]

    def create_io_manager(self, context: Any) -> DbIOManager:
        return DbIOManager(
            db_client=WarehouseClient(),
            database=self.database,
            schema=self.schema_,
            type_handlers=self.type_handlers(),
            default_load_type=self.default_load_type(),
            io_manager_name="DuckDBIOManager",
        )
