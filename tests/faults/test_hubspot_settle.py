"""A HubSpot create sent seconds after its intent was recorded, then a SIGKILL: the next run
looks for it only once the search index can show it, so it is not created twice.

The intent of a batch is recorded before its push, and the push sends its chunks one after the
other (or after rate-limit waits): the last chunk can leave seconds after the intent. Waiting
``search_settle_seconds`` from the intent alone searched too early and created that chunk again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections import Counter
from pathlib import Path

import pytest

from sandbox.server import SandboxServer
from sync.pipelines import run_pipeline
from tests.connectors.hubspot.conftest import KEY
from tests.faults.harness import make_rig, prepare_portal
from tests.sync.pipelines.conftest import badge_rows, known_emails

pytestmark = pytest.mark.slow

TOUCHES = 500  # one batch, pushed as five creates of 100
LAG_S = 3.0
SETTLE_S = 3.5


def test_a_create_sent_late_in_a_killed_push_is_found_not_created_again(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    with prepare_portal(sandbox):
        store = sandbox.store("hubspot")
        store.data.search_index_lag_s = LAG_S
        rig = make_rig(
            sandbox, tmp_path, "hubspot", batch_size=TOUCHES,
            hubspot={"search_settle_seconds": SETTLE_S},
        )  # fmt: skip
        people = known_emails(sandbox, 250)
        rig.import_badges(badge_rows([people[n % 250] for n in range(TOUCHES)]), "scans.csv")
        creates = 0
        started = threading.Event()
        pid: list[int] = []

        def kill_after_fourth_create(api: str, endpoint: str, _method: str) -> None:
            nonlocal creates
            if api == "hubspot" and endpoint == "notes.batch_create":
                creates += 1
                if creates == 4:  # sent about a second after the intent; its answer never read
                    started.wait(5)
                    os.kill(pid[0], signal.SIGKILL)

        sandbox.state.latency_ms = 300
        sandbox.state.on_applied = kill_after_fourth_create
        env = {**os.environ, "CLOSEDLOOP_LOG_LEVEL": "error"}
        proc = subprocess.Popen(rig.command(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, env=env)  # fmt: skip
        pid.append(proc.pid)
        started.set()
        assert proc.wait(timeout=120) == -signal.SIGKILL
        sandbox.state.on_applied = None
        sandbox.state.latency_ms = 0
        assert set(rig.deliveries().values()) == {"intended"}

        summary = run_pipeline(rig.config, rig.pipeline, rig.engine)

        assert summary.state == "succeeded", summary.error
        with store.lock:
            notes = Counter(
                r.properties[KEY] for r in store.data.objects["notes"].values()
                if r.properties.get(KEY)
            )  # fmt: skip
        assert len(notes) == TOUCHES
        assert set(notes.values()) == {1}, "a note was created twice"
        assert summary.count("pushed") == TOUCHES
        rig.engine.dispose()
