"""The working process's own peak memory, as the benchmarks report it."""

from __future__ import annotations

from pathlib import Path

__all__ = ["peak_rss_mb"]


def peak_rss_mb() -> float:
    """This process's peak resident set size in MB (``VmHWM``).

    Not ``ru_maxrss``: on Linux a child keeps its parent's figure from the fork across exec, so a
    small worker spawned by a large parent would report the parent's memory.
    """
    for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (the benchmarks need Linux)")
