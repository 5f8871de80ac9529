"""The warehouse I/O manager: DuckDB tables of Polars frames, empty tables included.

The stock Polars handler skips writing empty frames, so a clean batch (an empty quarantine) leaves no table and
every downstream read fails; it also appends to a table created by an older schema. This handler writes empty
frames as empty tables and replaces unpartitioned tables whole.
"""

from collections.abc import Sequence
from typing import Any

import polars as pl
from dagster import OutputContext
from dagster._core.storage.db_io_manager import DbTypeHandler, TableSlice
from dagster_duckdb_polars import DuckDBPolarsIOManager, DuckDBPolarsTypeHandler


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
