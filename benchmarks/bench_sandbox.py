"""Throughput of the sandbox's batch endpoints, so the emulators never dominate a benchmark.

The sandbox runs in its own process, as ``closedloop sandbox serve`` does, so the load generator
does not share its GIL. Plain httpx clients (no connector code) keep ``CONCURRENCY`` requests in
flight over kept-alive connections, as an engine pushing several batches at once would; every
request body is built and JSON-encoded before the clock starts (that is the client's work, not
the emulator's), and every answer is checked record by record:

- Salesforce: what the connector's ``push_touches`` sends, a Composite request of five sObject
  Collections upserts of 200 Tasks each on ``Closedloop_Key__c``, each Task with the fields the
  shipped ``marketo-salesforce`` mapping writes (Subject, ActivityDate, Status, Priority, Type, a
  multi-line Description, WhoId);
- HubSpot: batch create of notes (100 per call) as the ``marketo-hubspot`` mapping writes them:
  epoch-ms ``hs_timestamp``, an HTML body, the closedloop custom properties (created first, as
  ``closedloop check hubspot --fix`` does), the ``closedloop_touch_key`` and an inline
  contact association;
- Marketo: paging through every activity (300 per page) with a paging token; one stream, since
  each page needs the token of the one before.

The vendors' own rate limits are lifted on the stores for the run: this measures the emulator,
not the policy. Each line reports the median of a few repetitions (target >= 20,000 records/s
per API) and the sandbox process's own CPU time per record, which is what a sandbox served
in-process (the test fixtures, the connector benchmarks) adds to the caller's time.
"""

from __future__ import annotations

import json
import multiprocessing
import ssl
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from multiprocessing.connection import Connection
from typing import Any

import httpx

from sandbox import credentials
from sandbox.server import SandboxServer

TARGET = 20_000
REPEATS = 3
CONCURRENCY = 4
SF_RECORDS = 20_000
SF_COLLECTIONS_PER_CALL = 5  # the connector's MAX_COMPOSITE_HEAVY: 1,000 records per call
HUBSPOT_RECORDS = 10_000
PEOPLE = 3_000  # about 30,000 Marketo activities to page through
_DESCRIPTION = (
    "Email opened on 2026-10-01 09:30 BST\nCampaign: Newsletter\nAsset: Newsletter {n}\n"
    "Channel: email\nSource: marketo (email_opened), touch key {key}"
)
_NOTE_BODY = (
    "<p><strong>Email opened</strong>: Newsletter {n}</p>\n"
    "<p>Campaign: Newsletter &middot; Channel: email</p>"
)
_TOUCH_KEY = "closedloop_touch_key"

# A prepared run: given the attempt number, build the payloads and return the timed part,
# which sends them and returns how many records went through.
Scenario = Callable[[int], Callable[[], int]]


@dataclass
class _Sandbox:
    """The parent's handle on the sandbox process: base URLs, CA file, world clock, CPU probe."""

    urls: dict[str, str]
    ca_file: str
    now: datetime
    conn: Connection

    def cpu_seconds(self) -> float:
        """CPU time the sandbox process has used so far (all its threads)."""
        self.conn.send("cpu")
        seconds: float = self.conn.recv()
        return seconds


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


def _serve(conn: Connection, seed: int, size: int) -> None:
    """Child process: serve the sandbox with lifted limits; answer CPU probes until told to stop."""
    with SandboxServer(seed=seed, size=size) as server:
        _lift_limits(server)
        assert server.world is not None
        conn.send(
            {
                "urls": server.urls,
                "ca_file": str(server.ca_file),
                "now": server.world.now.isoformat(),
            }
        )
        while conn.recv() == "cpu":
            conn.send(time.process_time())


def _clients(base_url: str, headers: dict[str, str], verify: Any = True) -> list[httpx.Client]:
    """``CONCURRENCY`` clients, one kept-alive connection each."""
    return [
        httpx.Client(
            base_url=base_url,
            headers={**headers, "Content-Type": "application/json"},
            verify=verify,
            trust_env=False,
            timeout=60,
        )
        for _ in range(CONCURRENCY)
    ]


def _send_all(
    clients: list[httpx.Client],
    method: str,
    url: str,
    bodies: list[bytes],
    check: Callable[[httpx.Response], None],
) -> None:
    """Send ``bodies`` over all clients at once, each client taking every n-th body."""

    def share(index: int) -> None:
        client = clients[index]
        for body in bodies[index :: len(clients)]:
            check(client.request(method, url, content=body))

    with ThreadPoolExecutor(len(clients)) as pool:
        list(pool.map(share, range(len(clients))))  # re-raises the first failure


def _encode(payload: Any) -> bytes:
    return json.dumps(payload).encode()


def _salesforce(sandbox: _Sandbox) -> Scenario:
    version = credentials.SALESFORCE_API_VERSION
    clients = _clients(
        f"{sandbox.urls['salesforce']}/services/data/v{version}",
        {"Authorization": f"Bearer {credentials.SALESFORCE_SESSION_ID}"},
        ssl.create_default_context(cafile=sandbox.ca_file),
    )
    rows = clients[0].get("/query", params={"q": "SELECT Id FROM Lead LIMIT 200"})
    rows.raise_for_status()
    who_ids = [r["Id"] for r in rows.json()["records"]]
    for client in clients:  # open every connection (TLS handshake) before the clock starts
        client.get("/limits").raise_for_status()

    def check(response: httpx.Response) -> None:
        response.raise_for_status()
        answers = response.json()["compositeResponse"]
        if len(answers) != SF_COLLECTIONS_PER_CALL or not all(
            a["httpStatusCode"] == 200
            and len(a["body"]) == 200
            and all(r["success"] and r["created"] for r in a["body"])
            for a in answers
        ):
            raise RuntimeError(f"collections upsert failed: {response.text[:300]}")

    def collection(attempt: int, start: int, ref: str) -> dict[str, Any]:
        return {
            "method": "PATCH",
            "url": f"/services/data/v{version}/composite/sobjects/Task/Closedloop_Key__c",
            "referenceId": ref,
            "body": {
                "allOrNone": False,
                "records": [
                    {
                        "Subject": f"Email opened: Newsletter {n}",
                        "ActivityDate": "2026-10-01",
                        "Status": "Completed",
                        "Priority": "Normal",
                        "Type": "Email",
                        "Description": _DESCRIPTION.format(n=n, key=f"bench:{attempt}:{n}"),
                        "WhoId": who_ids[n % len(who_ids)],
                        "Closedloop_Key__c": f"bench:{attempt}:{n}",
                        "attributes": {"type": "Task"},
                    }
                    for n in range(start, start + 200)
                ],
            },
        }

    def prepare(attempt: int) -> Callable[[], int]:
        per_call = 200 * SF_COLLECTIONS_PER_CALL
        bodies = [
            _encode(
                {
                    "allOrNone": False,
                    "compositeRequest": [
                        collection(attempt, start + 200 * n, f"t{n}")
                        for n in range(SF_COLLECTIONS_PER_CALL)
                    ],
                }
            )
            for start in range(0, SF_RECORDS, per_call)
        ]

        def send() -> int:
            _send_all(clients, "POST", "/composite", bodies, check)
            return SF_RECORDS

        return send

    return prepare


def _hubspot(sandbox: _Sandbox) -> Scenario:
    clients = _clients(
        sandbox.urls["hubspot"], {"Authorization": f"Bearer {credentials.HUBSPOT_TOKEN}"}
    )
    contacts = clients[0].get("/crm/v3/objects/contacts", params={"limit": 100})
    contacts.raise_for_status()
    contact_ids = [c["id"] for c in contacts.json()["results"]]
    for name in ("closedloop_source", "closedloop_kind", "closedloop_campaign", _TOUCH_KEY):
        clients[0].post(
            "/crm/v3/properties/notes",
            json={
                "name": name,
                "label": name.replace("_", " "),
                "type": "string",
                "fieldType": "text",
                "groupName": "noteinformation",
            },
        ).raise_for_status()
    for client in clients:
        client.get("/crm/v3/owners").raise_for_status()
    stamp_ms = int((sandbox.now - timedelta(days=1)).timestamp() * 1000)

    def check(response: httpx.Response) -> None:
        if response.status_code != 201 or len(response.json()["results"]) != 100:
            raise RuntimeError(f"notes batch create failed: {response.text[:300]}")

    def prepare(attempt: int) -> Callable[[], int]:
        bodies = [
            _encode(
                {
                    "inputs": [
                        {
                            "properties": {
                                "hs_timestamp": stamp_ms + n * 1000,
                                "hs_note_body": _NOTE_BODY.format(n=n),
                                "closedloop_source": "marketo",
                                "closedloop_kind": "email_opened",
                                "closedloop_campaign": "Newsletter",
                                _TOUCH_KEY: f"bench:{attempt}:{n}",
                            },
                            "associations": [
                                {
                                    "to": {"id": contact_ids[n % len(contact_ids)]},
                                    "types": [
                                        {
                                            "associationCategory": "HUBSPOT_DEFINED",
                                            "associationTypeId": 202,
                                        }
                                    ],
                                }
                            ],
                        }
                        for n in range(start, start + 100)
                    ]
                }
            )
            for start in range(0, HUBSPOT_RECORDS, 100)
        ]

        def send() -> int:
            _send_all(clients, "POST", "/crm/v3/objects/notes/batch/create", bodies, check)
            return HUBSPOT_RECORDS

        return send

    return prepare


def _marketo(sandbox: _Sandbox) -> Scenario:
    client = httpx.Client(base_url=sandbox.urls["marketo"], trust_env=False, timeout=60)
    token = client.get(
        "/identity/oauth/token",
        params={
            "grant_type": "client_credentials",
            "client_id": credentials.MARKETO_CLIENT_ID,
            "client_secret": credentials.MARKETO_CLIENT_SECRET,
        },
    ).json()["access_token"]
    client.headers["Authorization"] = f"Bearer {token}"
    since = (sandbox.now - timedelta(days=190)).isoformat()
    type_ids = "1,2,6,7,8,9,10,11"

    def prepare(_attempt: int) -> Callable[[], int]:
        def send() -> int:
            body = client.get(
                "/rest/v1/activities/pagingtoken.json", params={"sinceDatetime": since}
            )
            page_token = body.json()["nextPageToken"]
            records = 0
            while True:
                page = client.get(
                    "/rest/v1/activities.json",
                    params={"nextPageToken": page_token, "activityTypeIds": type_ids},
                ).json()
                if not page.get("success"):
                    raise RuntimeError(f"activities page failed: {page}")
                records += len(page.get("result", []))
                page_token = page["nextPageToken"]
                if not page.get("moreResult"):
                    return records

        return send

    return prepare


def _measure(sandbox: _Sandbox, scenario: Scenario) -> tuple[float, float]:
    """Median records/s over ``REPEATS`` runs, and the sandbox's CPU microseconds per record."""
    rates: list[float] = []
    cpu_per_record: list[float] = []
    for attempt in range(REPEATS):
        send = scenario(attempt)
        cpu_before = sandbox.cpu_seconds()
        started = time.perf_counter()
        records = send()
        elapsed = time.perf_counter() - started
        cpu_per_record.append((sandbox.cpu_seconds() - cpu_before) / records * 1e6)
        rates.append(records / elapsed)
    return statistics.median(rates), statistics.median(cpu_per_record)


def run() -> list[str]:
    """Records per second through each API's batch endpoint (median of a few runs)."""
    parent, child = multiprocessing.get_context("spawn").Pipe()
    process = multiprocessing.get_context("spawn").Process(
        target=_serve, args=(child, 42, PEOPLE), daemon=True
    )
    process.start()
    child.close()
    lines = []
    try:
        while not parent.poll(0.2):
            if not process.is_alive():
                raise RuntimeError("the sandbox process did not start")
        info = parent.recv()
        sandbox = _Sandbox(
            info["urls"], info["ca_file"], datetime.fromisoformat(info["now"]), parent
        )
        for name, factory in (
            ("salesforce composite of collections upsert Task", _salesforce),
            ("hubspot notes batch create", _hubspot),
            ("marketo activities paging", _marketo),
        ):
            rate, cpu_us = _measure(sandbox, factory(sandbox))
            verdict = "ok" if rate >= TARGET else "BELOW TARGET"
            lines.append(
                f"{name}: {rate:,.0f} records/s (target >= {TARGET:,}) {verdict}; "
                f"sandbox CPU {cpu_us:.0f} us/record"
            )
    finally:
        if process.is_alive():
            parent.send("stop")
        process.join(timeout=30)
        if process.is_alive():
            process.terminate()
            process.join(timeout=10)
    return lines
