"""Memory of a process that runs pipelines (``sync.pipelines.memory``): the cycle collector and
the C allocator."""

from __future__ import annotations

import gc
import platform
import weakref
from collections.abc import Callable
from pathlib import Path

import pytest

from sync.pipelines import memory, run_pipeline

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
    assert gc.get_threshold() == (memory.YOUNG, memory.OLDER, memory.OLDER)
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


def _rss_mb() -> int:
    for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's allocator only")
def test_after_a_run_large_blocks_freed_between_live_ones_are_given_back(
    workspace_factory: Callable[..., Workspace],
) -> None:
    """A batch's big buffers, freed while smaller objects made after them live on, leave no
    resident holes: glibc would otherwise raise its large-block threshold past them after the
    first such free and serve them from the heap."""
    ws = workspace_factory({"badges": badge_pipeline()})
    ws.import_badges(badge_rows(known_emails(ws.sandbox, 2)))
    assert run_pipeline(ws.config, "badges", ws.engine).count("pushed") == 2
    warm = bytearray(memory.MALLOC_THRESHOLD * 4)  # freed: glibc's default raises its threshold
    del warm

    before = _rss_mb()
    big, small = [], []
    for n in range(400):  # 100 MiB of 256 KiB buffers, each followed by a small live object
        big.append(bytearray(memory.MALLOC_THRESHOLD * 2))
        small.append(bytearray(1_000 + n))
    grown = _rss_mb()
    big.clear()
    after = _rss_mb()

    assert grown - before >= 90
    assert after - before <= 20, (before, grown, after)
