"""Dagster asset definitions, one module per group; bodies stay thin and call the ``prefgate`` library."""
