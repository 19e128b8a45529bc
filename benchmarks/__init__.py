"""Benchmarks run by `make bench`: each ``bench_*.py`` module has ``run() -> list[str]``."""
