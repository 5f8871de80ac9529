"""prefgate: governance for the preference data that aligns language models.

The package is pure library code (no Dagster import): ids, readers, schemas, consensus and curation that the
Dagster assets in ``assets/`` call, and that can be used on their own on small frames.
"""

__version__ = "0.1.0"
