"""The sync engine's pipelines: touches, dispositions, graph reconcile (and recycle by dispatch).

``run_pipeline`` (``runner``) runs one pipeline once with checkpoints, fencing and a run record;
``touches``, ``dispositions`` and ``reconcile`` are the kinds; ``deliveries`` is the
exactly-once map-and-push of stored touches, shared with dead-letter replay (``replay``).
"""

from __future__ import annotations

from sync.pipelines.context import Fence, FenceLost, RunContext
from sync.pipelines.runner import RunSummary, run_pipeline

__all__ = ["Fence", "FenceLost", "RunContext", "RunSummary", "run_pipeline"]
