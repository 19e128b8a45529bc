"""How memory is managed in a process that runs pipelines: the cycle collector and the C
allocator.

A sync run allocates millions of short-lived objects (rows, dicts, payloads, records) and keeps
tens of thousands alive for a while (the people of a run, a round's touches). CPython's default
collects the young generation every 700 net allocations and, every hundred of those, the old
one, scanning every object the process holds, modules and caches included: the engine benchmark
(20,000 touches from Marketo to Salesforce) spent 1.6 s of its 12 s of CPU in the collector.

``settle`` is called as a run begins, and acts once per process:

- the objects alive then (modules, configuration, compiled mappings, connections) are moved out
  of the collector's sight (``gc.freeze``): they live as long as the process, and scanning them
  again and again finds nothing;
- the young generation is collected every ``YOUNG`` net allocations (the older ones every
  ``OLDER`` collections of the one below), so the short-lived garbage of a batch is swept in a
  few passes, not thousands;
- glibc's allocator keeps serving blocks of ``MALLOC_THRESHOLD`` bytes or more from their own
  mappings, returned to the system when freed, and gives back a free heap top from that size.
  By default glibc raises that threshold to the size of each large block freed (up to 32 MiB),
  after which a batch's big buffers (statement texts, response bodies, parameter lists) come
  from the heap and their freed holes stay resident: the engine benchmark's worker held 28 MB of
  free heap at 1,000,000 touches, 16 MB with the threshold fixed from its start (peak RSS 208 ->
  201 MB; fixed as its run begins, as here, 206 MB in one run: noise is a few MB). A
  ``MALLOC_MMAP_THRESHOLD_`` or ``MALLOC_TRIM_THRESHOLD_`` in the environment wins; other C
  libraries (musl, macOS) are left alone.

Objects made after that first call are collected as before, only less often: a cycle made by a
run (an exception and its traceback, say) is freed within the next ``YOUNG`` allocations. Later
calls change nothing, so nothing a run leaves behind is frozen. Same benchmark: 0.2 s in the
collector.
"""

from __future__ import annotations

import ctypes
import gc
import os
import threading

__all__ = ["MALLOC_THRESHOLD", "OLDER", "YOUNG", "settle"]

YOUNG = 20_000
OLDER = 20
MALLOC_THRESHOLD = 128 * 1024  # glibc's own initial value, kept fixed

# mallopt parameters (glibc's malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MALLOC_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")

_lock = threading.Lock()
_settled = False


def settle() -> None:
    """Freeze what the process holds now, space the collections out and fix glibc's large-block
    threshold; once per process."""
    global _settled  # noqa: PLW0603 - a process-wide switch, set once
    with _lock:
        if _settled:
            return
        _settled = True
        gc.collect()
        gc.freeze()
        gc.set_threshold(YOUNG, OLDER, OLDER)
        _fix_malloc_threshold()


def _fix_malloc_threshold() -> None:
    if any(os.environ.get(name) for name in _MALLOC_ENV):
        return  # the operator chose
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # a C library without it
        return
    mallopt(_M_TRIM_THRESHOLD, MALLOC_THRESHOLD)
    mallopt(_M_MMAP_THRESHOLD, MALLOC_THRESHOLD)
