"""The Salesforce connector's API-call budget and throughput against the sandbox org.

Real simple-salesforce over HTTPS to the emulator, counted by the emulator itself:

- push 10,000 rendered touches for known people (minimum 10 calls: 1,000 per Composite call of
  five 200-record collections; target <= 12), then the same 10,000 again (still no new Task);
- resolve 10,000 new distinct emails and create them as Leads (target <= 30 calls);
- pull every Lead and Contact from an empty cursor.

Each line prints the calls made against the minimum, and records per second.
"""

from __future__ import annotations

import math
import time
from typing import Any

from connectors.base import Cursor, Person, PersonKind, RenderedTouch
from connectors.salesforce.connector import SalesforceConnector
from connectors.salesforce.settings import SalesforceSettings
from sandbox import credentials
from sandbox.server import SandboxServer

TOUCHES = 10_000
EMAILS = 10_000
PUSH_MIN = math.ceil(TOUCHES / 1_000)


def _calls(server: SandboxServer) -> int:
    counts = server.state.counts("salesforce")
    return sum(n for endpoint, n in counts.items() if endpoint != "oauth_token")


def _touch(key: str, who: str) -> RenderedTouch:
    payload: dict[str, Any] = {
        "Subject": f"Email open: Newsletter {key}",
        "ActivityDate": "2026-06-01",
        "Status": "Completed",
        "Type": "Email",
        "Closedloop_Key__c": key,
        "WhoId": who,
    }
    return RenderedTouch(key, "Task", payload, person_id=who)


def run() -> list[str]:
    """Run the three measurements on a fresh demo sandbox; one line each."""
    lines: list[str] = []
    with SandboxServer(seed=42) as server:
        store = server.store("salesforce")
        settings = SalesforceSettings.model_validate(
            {
                "instance_url": server.salesforce_url,
                "auth": {"method": "session", "session_id": credentials.SALESFORCE_SESSION_ID},
                "ca_bundle": server.ca_file,
            }
        )
        connector = SalesforceConnector("bench", settings)
        people = [
            row["Id"]
            for name in ("Lead", "Contact")
            for row in store.records[name].values()
            if row.get("Email") and not row.get("IsConverted")
        ]
        touches = [_touch(f"bench:{n}", people[n % len(people)]) for n in range(TOUCHES)]
        for attempt in ("first", "replay"):
            server.state.reset_counters()
            started = time.perf_counter()
            results = connector.push_touches(touches)
            elapsed = time.perf_counter() - started
            ok = sum(r.ok for r in results)
            tasks = sum(1 for r in store.records["Task"].values() if not r.get("IsDeleted"))
            lines.append(
                f"push {TOUCHES:,} touches ({attempt}): {_calls(server)} calls "
                f"(minimum {PUSH_MIN}, target <= 12), {ok:,} ok, {tasks:,} Tasks, "
                f"{TOUCHES / elapsed:,.0f} touches/s"
            )
        emails = [f"bench.person{n}@company{n % 211}.example.com" for n in range(EMAILS)]
        server.state.reset_counters()
        started = time.perf_counter()
        found = connector.resolve_people(emails)
        created = connector.create_people(
            [Person("bench", e, PersonKind.LEAD, e) for e in emails if e not in found]
        )
        elapsed = time.perf_counter() - started
        lines.append(
            f"resolve + create {EMAILS:,} new emails: {_calls(server)} calls (minimum 12 at 5 "
            f"queries or 1,000 records a call; target <= 30), {len(created):,} Leads, "
            f"{EMAILS / elapsed:,.0f} people/s"
        )
        server.state.reset_counters()
        started = time.perf_counter()
        pulled = sum(
            len(page.records)
            for page in connector.pull_changes("people", Cursor(), store.clock.now())
        )
        elapsed = time.perf_counter() - started
        lines.append(
            f"pull people from scratch: {pulled:,} records in {_calls(server)} calls, "
            f"{pulled / elapsed:,.0f} records/s"
        )
        connector.close()
    return lines
