"""A writer process for the crash test: records deliveries as intended, pushes, dies by SIGKILL.

Usage: ``python killed_writer.py HOST TOUCHES_JSON LEDGER_JSONL MODE``. MODE ``in_flight`` dies
when the batch-create answer arrives, before the connector has read it (HubSpot applied the
write, nobody knows); ``before_commit`` dies after ``push_touches`` returned, before the results
reach the ledger file. Either way the ledger keeps the deliveries as "intended" only.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from connectors.base import RenderedTouch
from connectors.hubspot.connector import HubSpotConnector
from connectors.hubspot.settings import HubSpotSettings
from sandbox import credentials


def main(host: str, touches_file: str, ledger_file: str, mode: str) -> None:
    """Push the touches of ``touches_file`` and die as ``mode`` says."""
    settings = HubSpotSettings.model_validate(
        {"host": host, "auth": {"method": "private_app", "access_token": credentials.HUBSPOT_TOKEN}}
    )
    connector = HubSpotConnector("hubspot", settings)
    rows: list[dict[str, Any]] = json.loads(Path(touches_file).read_text())
    touches = [RenderedTouch(**row) for row in rows]
    ledger = Path(ledger_file)
    with ledger.open("a") as out:
        for touch in touches:
            out.write(json.dumps({"key": touch.key, "state": "intended"}) + "\n")
    if mode == "in_flight":
        pool = connector.client._pool
        original = pool.urlopen

        def die_on_create_answer(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            response = original(method, url, *args, **kwargs)
            if url.endswith("/batch/create"):
                os.kill(os.getpid(), signal.SIGKILL)
            return response

        pool.urlopen = die_on_create_answer  # type: ignore[method-assign]
    results = connector.push_touches(touches)
    if mode == "before_commit":
        os.kill(os.getpid(), signal.SIGKILL)
    with ledger.open("a") as out:  # pragma: no cover - never reached in the crash test
        for result in results:
            out.write(json.dumps({"key": result.key, "state": "confirmed"}) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:5])
