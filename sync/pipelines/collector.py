"""How the cycle collector runs in a process that runs pipelines.

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
  few passes, not thousands.

Objects made after that first call are collected as before, only less often: a cycle made by a
run (an exception and its traceback, say) is freed within the next ``YOUNG`` allocations. Later
calls change nothing, so nothing a run leaves behind is frozen. Same benchmark: 0.2 s in the
collector.
"""

from __future__ import annotations

import gc
import threading

__all__ = ["OLDER", "YOUNG", "settle"]

YOUNG = 20_000
OLDER = 20

_lock = threading.Lock()
_settled = False


def settle() -> None:
    """Freeze what the process holds now and space the collections out; once per process."""
    global _settled  # noqa: PLW0603 - a process-wide switch, set once
    with _lock:
        if _settled:
            return
        _settled = True
        gc.collect()
        gc.freeze()
        gc.set_threshold(YOUNG, OLDER, OLDER)
