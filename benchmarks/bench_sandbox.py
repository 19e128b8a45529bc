"""Throughput of the sandbox's batch endpoints, so the emulators never dominate a benchmark.

Plain httpx against a started ``SandboxServer`` (no connector code), one connection per API:

- Salesforce: sObject Collections upsert of Tasks on ``Closedloop_Key__c`` (200 per call);
- HubSpot: batch create of notes with an inline contact association (100 per call);
- Marketo: paging through every activity (300 per page) with a paging token.

The vendors' own rate limits are lifted on the stores for the run: this measures the emulator,
not the policy. Each line reports the median of a few repetitions; the target is >= 20,000
records/s per API.
"""

from __future__ import annotations

import ssl
import statistics
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx

from connectors.sandbox import credentials
from connectors.sandbox.server import SandboxServer

TARGET = 20_000
REPEATS = 3
SF_RECORDS = 10_000
HUBSPOT_RECORDS = 10_000
PEOPLE = 3_000  # about 30,000 Marketo activities to page through


def _median_rate(run: Callable[[int], int]) -> float:
    rates = []
    for attempt in range(REPEATS):
        started = time.perf_counter()
        records = run(attempt)
        rates.append(records / (time.perf_counter() - started))
    return statistics.median(rates)


def _lift_limits(server: SandboxServer) -> None:
    """Raise the emulated vendor rate limits so the run measures the emulator itself."""
    for api, attributes in {
        "hubspot": ("rate_limit_max", "search_per_second", "daily_limit"),
        "marketo": ("rate_max", "daily_quota", "max_concurrent"),
    }.items():
        store = server.store(api)
        for attribute in attributes:
            if hasattr(store, attribute):
                setattr(store, attribute, 10**9)


def _salesforce(server: SandboxServer) -> Callable[[int], int]:
    version = credentials.SALESFORCE_API_VERSION
    client = httpx.Client(
        base_url=f"{server.salesforce_url}/services/data/v{version}",
        headers={"Authorization": f"Bearer {credentials.SALESFORCE_SESSION_ID}"},
        verify=ssl.create_default_context(cafile=str(server.ca_file)),
        trust_env=False,
        timeout=60,
    )
    rows = client.get("/query", params={"q": "SELECT Id FROM Lead LIMIT 200"})
    rows.raise_for_status()
    who_ids = [r["Id"] for r in rows.json()["records"]]

    def run(attempt: int) -> int:
        for start in range(0, SF_RECORDS, 200):
            records = [
                {
                    "attributes": {"type": "Task"},
                    "Closedloop_Key__c": f"bench:{attempt}:{n}",
                    "Subject": f"Email opened: Newsletter {n}",
                    "WhoId": who_ids[n % len(who_ids)],
                    "ActivityDate": "2026-10-01",
                    "Status": "Completed",
                }
                for n in range(start, start + 200)
            ]
            response = client.patch(
                "/composite/sobjects/Task/Closedloop_Key__c",
                json={"allOrNone": False, "records": records},
            )
            response.raise_for_status()
            assert all(r["success"] for r in response.json()), response.text[:300]
        return SF_RECORDS

    return run


def _hubspot(server: SandboxServer) -> Callable[[int], int]:
    client = httpx.Client(
        base_url=server.hubspot_url,
        headers={"Authorization": f"Bearer {credentials.HUBSPOT_TOKEN}"},
        trust_env=False,
        timeout=60,
    )
    contacts = client.get("/crm/v3/objects/contacts", params={"limit": 100})
    contacts.raise_for_status()
    contact_ids = [c["id"] for c in contacts.json()["results"]]
    assert server.world is not None
    stamp = server.world.now - timedelta(days=1)

    def run(attempt: int) -> int:
        for start in range(0, HUBSPOT_RECORDS, 100):
            inputs: list[dict[str, Any]] = [
                {
                    "properties": {
                        "hs_timestamp": (stamp + timedelta(seconds=n)).isoformat(),
                        "hs_note_body": f"bench {attempt}:{n}: opened the newsletter",
                    },
                    "associations": [
                        {
                            "to": {"id": contact_ids[n % len(contact_ids)]},
                            "types": [
                                {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 202}
                            ],
                        }
                    ],
                }
                for n in range(start, start + 100)
            ]
            response = client.post("/crm/v3/objects/notes/batch/create", json={"inputs": inputs})
            response.raise_for_status()
        return HUBSPOT_RECORDS

    return run


def _marketo(server: SandboxServer) -> Callable[[int], int]:
    client = httpx.Client(base_url=server.marketo_url, trust_env=False, timeout=60)
    token = client.get(
        "/identity/oauth/token",
        params={
            "grant_type": "client_credentials",
            "client_id": credentials.MARKETO_CLIENT_ID,
            "client_secret": credentials.MARKETO_CLIENT_SECRET,
        },
    ).json()["access_token"]
    client.headers["Authorization"] = f"Bearer {token}"
    assert server.world is not None
    since = (server.world.now - timedelta(days=190)).isoformat()
    type_ids = "1,2,6,7,8,9,10,11"

    def run(_attempt: int) -> int:
        body = client.get("/rest/v1/activities/pagingtoken.json", params={"sinceDatetime": since})
        page_token = body.json()["nextPageToken"]
        records = 0
        while True:
            page = client.get(
                "/rest/v1/activities.json",
                params={"nextPageToken": page_token, "activityTypeIds": type_ids},
            ).json()
            assert page.get("success"), page
            records += len(page.get("result", []))
            page_token = page["nextPageToken"]
            if not page.get("moreResult"):
                return records

    return run


def run() -> list[str]:
    """Records per second through each API's batch endpoint (median of a few runs)."""
    lines = []
    with SandboxServer(seed=42, size=PEOPLE) as server:
        _lift_limits(server)
        for name, factory in (
            ("salesforce collections upsert Task", _salesforce),
            ("hubspot notes batch create", _hubspot),
            ("marketo activities paging", _marketo),
        ):
            rate = _median_rate(factory(server))
            verdict = "ok" if rate >= TARGET else "BELOW TARGET"
            lines.append(f"{name}: {rate:,.0f} records/s (target >= {TARGET:,}) {verdict}")
    return lines
