"""Partitions: labels arrive in batches, one landing folder per batch date (landing/<kind>/YYYY-MM-DD/).

The partitions are the batches that exist (a dynamic set), not every day since some start date: the catalog
then reads "3 of 3 materialized" for three batches. Batches are added by the landing sensor, ``prefgate land``
and ``prefgate run`` (:func:`register_batches`) as their folders appear.
"""

import dagster as dg

BATCHES = "label_batches"
batch_dates = dg.DynamicPartitionsDefinition(name=BATCHES)


def register_batches(instance: dg.DagsterInstance, keys: list[str]) -> list[str]:
    """Add batch dates the instance does not know yet; returns the ones added."""
    have = set(instance.get_dynamic_partitions(BATCHES))
    new = sorted(set(keys) - have)
    if new:
        instance.add_dynamic_partitions(BATCHES, new)
    return new
