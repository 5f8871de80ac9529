"""Benchmarks, run by hand (``prefgate bench``, ``python -m benchmarks.<module>``); not in the installed package."""
