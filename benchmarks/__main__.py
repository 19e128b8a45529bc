"""Run every benchmark module (or those named on the command line) and print their lines."""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time

import benchmarks


def main(argv: list[str]) -> int:
    """Run the selected benchmarks in name order; a failing one is reported and counted."""
    names = sorted(
        m.name for m in pkgutil.iter_modules(benchmarks.__path__) if m.name.startswith("bench_")
    )
    wanted = [n for n in names if not argv or any(a in n for a in argv)]
    failures = 0
    for name in wanted:
        module = importlib.import_module(f"benchmarks.{name}")
        print(f"== {name}", flush=True)  # noqa: T201 - benchmark output is the product
        started = time.perf_counter()
        try:
            for line in module.run():
                print(f"   {line}", flush=True)  # noqa: T201
        except Exception as exc:  # noqa: BLE001 - report and go on to the next benchmark
            failures += 1
            print(f"   FAILED: {type(exc).__name__}: {exc}", flush=True)  # noqa: T201
        print(f"   ({time.perf_counter() - started:.1f} s)", flush=True)  # noqa: T201
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
