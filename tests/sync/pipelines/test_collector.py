"""The cycle collector of a process that runs pipelines (``sync.pipelines.collector``)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable

from sync.pipelines import collector, run_pipeline

from .conftest import Workspace, badge_pipeline, badge_rows, known_emails


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the collector frees it


def test_runs_space_collections_out_yet_cycles_made_after_the_first_run_are_freed(
    workspace_factory: Callable[..., Workspace],
) -> None:
    ws = workspace_factory({"badges": badge_pipeline()})
    ws.import_badges(badge_rows(known_emails(ws.sandbox, 3)))
    assert run_pipeline(ws.config, "badges", ws.engine).count("pushed") == 3
    assert gc.get_threshold() == (collector.YOUNG, collector.OLDER, collector.OLDER)
    frozen = gc.get_freeze_count()
    assert frozen > 0  # what the process held as its first run began

    made_after = _Node()
    alive = weakref.ref(made_after)
    del made_after
    ws.import_badges(badge_rows(known_emails(ws.sandbox, 5)[3:], start=3), name="more.csv")
    assert run_pipeline(ws.config, "badges", ws.engine).count("pushed") == 2
    assert gc.get_freeze_count() <= frozen  # a later run freezes nothing more (some die)
    gc.collect()
    assert alive() is None
