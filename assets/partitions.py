"""Partitions: labels arrive in daily batches, one landing folder per batch date (landing/<kind>/YYYY-MM-DD/)."""

import dagster as dg

batch_dates = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_offset=1)
