"""The webhook receiver: authentic, fresh, well-formed activity is committed; everything else is
refused with a status and a reason, and nothing of it is committed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import MutableMapping
from typing import Any

import pytest

from connectors.webhook import build_webhook_app, sign
from tests.connectors.webhook.sender import (
    NOW,
    OTHER_SECRET,
    SECRET,
    Client,
    Recorder,
    activity,
    encode,
    settings,
    signed_headers,
)


class Clock:
    """A settable clock for the receiver."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def client(recorder: Recorder, clock: Clock) -> Client:
    app = build_webhook_app(
        {"events": settings(), "small": settings(max_body_bytes=2048, max_items=3)},
        recorder.commit,
        recorder.dead_letter,
        clock=clock,
    )
    return Client(app)


def _post(client: Client, body: bytes, source: str = "events", **headers: Any) -> Any:
    sent = signed_headers(body)
    sent.update({k.replace("_", "-"): v for k, v in headers.items()})
    sent = {k: v for k, v in sent.items() if v is not None}
    return client.post(f"/hooks/{source}", content=body, headers=sent)


def test_a_signed_activity_is_committed_before_the_answer(
    client: Client, recorder: Recorder
) -> None:
    response = _post(client, encode(activity(1)))

    assert response.status_code == 200
    assert response.json() == {"accepted": 1, "rejected": 0}
    (touch,) = recorder.committed
    assert touch.key == "events:evt-1"
    assert touch.email == "person1@example.com"
    assert touch.raw["attributes"] == {"seat": 1}


def test_a_batch_is_committed_in_one_call(client: Client, recorder: Recorder) -> None:
    response = _post(client, encode([activity(i) for i in range(50)]))

    assert response.json() == {"accepted": 50, "rejected": 0}
    assert recorder.commits == 1
    assert len({t.key for t in recorder.committed}) == 50


# --- items: each judged on its own -------------------------------------------------------------

BAD_ITEMS: list[tuple[dict[str, Any] | Any, str]] = [
    (activity(email=...), "missing_email"),
    (activity(email=None), "missing_email"),
    (activity(email=""), "missing_email"),
    (activity(email="not-an-email"), "invalid_email"),
    (activity(email="a@b"), "invalid_email"),
    (activity(email="a b@example.com"), "invalid_email"),
    (activity(email=42), "wrong_type"),
    (activity(email=["a@example.com"]), "wrong_type"),
    (activity(email={"address": "a@example.com"}), "wrong_type"),
    (activity(email="ann\x00@example.com"), "control_character"),
    (activity(email="ann\x1b@example.com"), "control_character"),
    (activity(email="ann\ud800@example.com"), "invalid_unicode"),
    (activity(email="a" * 300 + "@example.com"), "too_long"),
    (activity(kind=...), "missing_kind"),
    (activity(kind="webinar"), "unknown_kind"),
    (activity(kind="FORM FILL"), "unknown_kind"),
    (activity(kind=7), "wrong_type"),
    (activity(kind=None), "missing_kind"),
    (activity(occurred_at=...), "missing_date"),
    (activity(occurred_at="yesterday"), "bad_date"),
    (activity(occurred_at="2024-02-30T10:00:00Z"), "bad_date"),
    (activity(occurred_at="1980-01-01T00:00:00Z"), "bad_date"),
    (activity(occurred_at="2030-01-01T00:00:00Z"), "bad_date"),
    (activity(occurred_at=True), "wrong_type"),
    (activity(occurred_at=[2024, 5, 1]), "wrong_type"),
    (activity(occurred_at=1e300), "bad_date"),
    (activity(occurred_at=-5), "bad_date"),
    (activity(campaign=12), "wrong_type"),
    (activity(campaign="c" * 1001), "too_long"),
    (activity(campaign="line\x07bell"), "control_character"),
    (activity(channel=["email"]), "wrong_type"),
    (activity(asset={"id": 1}), "wrong_type"),
    (activity(person_ref=False), "wrong_type"),
    (activity(attributes=[1, 2]), "wrong_type"),
    (activity(attributes="seat 4"), "wrong_type"),
    (activity(attributes={"note": "a\x00b"}), "control_character"),
    (activity(attributes={"deep": json.loads("[" * 40 + "]" * 40)}), "too_deep"),
    (activity(id=True), "wrong_type"),
    (activity(id=""), "missing_id"),
    (activity(id={"n": 1}), "wrong_type"),
    (activity(id="i" * 300), "too_long"),
    (activity(emial="typo@example.com"), "unknown_field"),
    (activity(type="form_fill"), "unknown_field"),
    ("just a string", "wrong_type"),
    (42, "wrong_type"),
    (None, "wrong_type"),
    ([activity(2)], "wrong_type"),
]


@pytest.mark.parametrize(("item", "code"), BAD_ITEMS)
def test_a_malformed_item_is_refused_while_its_valid_neighbours_land(
    client: Client, recorder: Recorder, item: Any, code: str
) -> None:
    batch = [activity(100), item, activity(101)]

    response = _post(client, json.dumps(batch).encode())

    assert response.status_code == 207
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (2, 1)
    assert body["errors"][0]["index"] == 1
    assert body["errors"][0]["error"] == code
    assert body["errors"][0]["reason"]
    assert sorted(t.key for t in recorder.committed) == ["events:evt-100", "events:evt-101"]
    ((source, dead),) = recorder.refused
    assert (source, dead.code, dead.payload["index"]) == ("events", code, 1)


def test_a_batch_of_only_bad_items_answers_422_with_every_reason(
    client: Client, recorder: Recorder
) -> None:
    items = [item for item, _ in BAD_ITEMS]

    response = _post(client, json.dumps(items).encode())

    assert response.status_code == 422
    body = response.json()
    assert body["accepted"] == 0
    assert [e["error"] for e in body["errors"]] == [code for _, code in BAD_ITEMS]
    assert recorder.committed == []
    assert len(recorder.refused) == len(BAD_ITEMS)


def test_an_item_without_id_is_keyed_by_its_content_so_resending_it_matches(
    client: Client, recorder: Recorder, clock: Clock
) -> None:
    item = activity(5, id=...)
    _post(client, encode(item))
    clock.now += 60
    reordered = dict(reversed(list(item.items())))
    reordered["email"] = "PERSON5@example.com"
    _post(client, encode(reordered), **signed_headers(encode(reordered), timestamp=clock.now))

    first, second = recorder.committed
    assert first.key == second.key
    assert first.key.startswith("events:h-")


# --- requests refused as a whole ---------------------------------------------------------------

GOOD = encode(activity(1))


def _forged_signatures() -> list[tuple[str, dict[str, Any]]]:
    ts = int(NOW)
    cases: list[tuple[str, dict[str, Any]]] = [
        ("wrong secret", {"X-Closedloop-Signature": sign(OTHER_SECRET, ts, GOOD)}),
        ("other body", {"X-Closedloop-Signature": sign(SECRET, ts, GOOD + b" ")}),
        ("other timestamp", {"X-Closedloop-Signature": sign(SECRET, ts - 1, GOOD)}),
        ("random hex", {"X-Closedloop-Signature": "sha256=" + "ab" * 32}),
        ("no prefix", {"X-Closedloop-Signature": sign(SECRET, ts, GOOD).removeprefix("sha256=")}),
        ("md5 prefix", {"X-Closedloop-Signature": "md5=" + sign(SECRET, ts, GOOD)[7:]}),
        ("upper-case hex", {"X-Closedloop-Signature": sign(SECRET, ts, GOOD).upper()}),
        ("truncated", {"X-Closedloop-Signature": sign(SECRET, ts, GOOD)[:-2]}),
        ("empty list", {"X-Closedloop-Signature": ","}),
        ("non-ascii", {"X-Closedloop-Signature": ("sha256=" + "é" * 64).encode("latin-1")}),
        ("secret as signature", {"X-Closedloop-Signature": SECRET}),
    ]
    return cases


@pytest.mark.parametrize(("_name", "headers"), _forged_signatures())
def test_a_forged_signature_is_refused(
    client: Client, recorder: Recorder, _name: str, headers: dict[str, Any]
) -> None:
    sent = signed_headers(GOOD)
    sent.update(headers)
    response = client.post("/hooks/events", content=GOOD, headers=sent)

    assert response.status_code == 401
    assert response.json()["error"] == "bad_signature"
    assert recorder.committed == []
    assert recorder.refused == []
    assert SECRET not in response.text


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({"X-Closedloop-Timestamp": None}, "missing_timestamp"),
        ({"X-Closedloop-Signature": None}, "missing_signature"),
        ({"X-Closedloop-Timestamp": ""}, "missing_timestamp"),
        ({"X-Closedloop-Timestamp": "yesterday"}, "bad_timestamp"),
        ({"X-Closedloop-Timestamp": "1735689600.5"}, "bad_timestamp"),
        ({"X-Closedloop-Timestamp": "-1735689600"}, "bad_timestamp"),
        ({"X-Closedloop-Timestamp": "9" * 40}, "bad_timestamp"),
    ],
)
def test_missing_or_malformed_signature_headers_are_refused(
    client: Client, recorder: Recorder, headers: dict[str, Any], code: str
) -> None:
    response = _post(client, GOOD, **headers)

    assert response.status_code == 401
    assert response.json()["error"] == code
    assert recorder.committed == []


@pytest.mark.parametrize("skew", [-86_400, -301, 301, 3_600, -int(NOW)])
def test_a_stale_or_future_signature_is_refused_even_when_correctly_signed(
    client: Client, recorder: Recorder, skew: int
) -> None:
    headers = signed_headers(GOOD, timestamp=NOW + skew)

    response = client.post("/hooks/events", content=GOOD, headers=headers)

    assert response.status_code == 401
    assert response.json()["error"] == "stale_timestamp"
    assert recorder.committed == []


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "",
        "application/json; charset=latin-1",
        "application/jsonp",
        "multipart/form-data; boundary=x",
    ],
)
def test_a_wrong_content_type_is_refused(
    client: Client, recorder: Recorder, content_type: str
) -> None:
    response = _post(client, GOOD, Content_Type=content_type)

    assert response.status_code == 415
    assert response.json()["error"] == "unsupported_media_type"
    assert recorder.committed == []


def test_json_with_a_utf8_charset_is_accepted(client: Client, recorder: Recorder) -> None:
    response = _post(client, GOOD, Content_Type='application/json; charset="UTF-8"')

    assert response.status_code == 200


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b'{"email": "\xff\xfe"}', "non_utf8"),
        (b"\xc3\x28", "non_utf8"),
        (b'{"email": "ann@example.com"', "invalid_json"),
        (b"", "invalid_json"),
        (b"{'single': 1}", "invalid_json"),
        (b"[1, 2,]", "invalid_json"),
        # A number longer than Python converts (4,300 digits): a ValueError, not a decode error.
        (b'[{"id": ' + b"7" * 5000 + b"}]", "invalid_json"),
        (b"[" * 100_000, "too_deep"),
        (b'"an activity"', "wrong_type"),
        (b"42", "wrong_type"),
        (b"null", "wrong_type"),
        (b"true", "wrong_type"),
        (b"[]", "empty_batch"),
    ],
)
def test_an_authentic_but_unreadable_body_is_refused_and_dead_lettered(
    client: Client, recorder: Recorder, body: bytes, code: str
) -> None:
    response = _post(client, body)

    assert response.status_code == 400
    assert response.json()["error"] == code
    assert recorder.committed == []
    if code != "empty_batch":
        ((_, dead),) = recorder.refused
        assert dead.code == code
        json.dumps(dead.payload)  # storable as JSON, bad bytes escaped


def test_an_unknown_source_is_404_and_a_get_is_405(client: Client) -> None:
    assert _post(client, GOOD, source="nobody").status_code == 404
    assert client.get("/hooks/events").status_code == 405


def test_a_declared_oversized_body_is_refused_before_reading(client: Client) -> None:
    body = b"[" + b" " * 5_000_000 + b"]"

    response = _post(client, body)

    assert response.status_code == 413
    assert response.json()["error"] == "too_large"


def test_too_many_items_are_refused(client: Client, recorder: Recorder) -> None:
    response = _post(client, encode([activity(i) for i in range(4)]), source="small")

    assert response.status_code == 413
    assert response.json()["error"] == "too_many_items"
    assert recorder.committed == []


def test_a_streamed_5_mb_body_is_cut_off_at_the_limit_without_buffering(recorder: Recorder) -> None:
    app = build_webhook_app({"events": settings()}, recorder.commit, clock=lambda: NOW)
    chunk = b" " * 65_536
    total_chunks = 80  # 5 MiB, sent chunked: no Content-Length to trust
    pulled = 0
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        pulled += 1
        return {"type": "http.request", "body": chunk, "more_body": pulled < total_chunks}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/hooks/events",
        "raw_path": b"/hooks/events",
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in signed_headers(b"").items()],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8080),
    }

    asyncio.run(app(scope, receive, send))

    assert sent[0]["status"] == 413
    assert pulled <= 1024 * 1024 // len(chunk) + 1
    assert recorder.committed == []


def test_a_failing_ledger_answers_503_so_the_sender_retries(
    client: Client, recorder: Recorder
) -> None:
    recorder.fail = True

    response = _post(client, GOOD)

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert "ledger down" not in response.text
    recorder.fail = False
    assert _post(client, GOOD).status_code == 200
    assert len(recorder.committed) == 1


# --- replays ------------------------------------------------------------------------------------


def test_an_exact_redelivery_inside_the_window_gets_the_same_answer_without_a_second_commit(
    client: Client, recorder: Recorder, clock: Clock
) -> None:
    body = encode([activity(1), activity(2, email="bad")])
    headers = signed_headers(body)
    first = client.post("/hooks/events", content=body, headers=headers)
    clock.now += 120

    again = client.post("/hooks/events", content=body, headers=headers)

    assert (first.status_code, again.status_code) == (207, 207)
    assert again.json() == first.json()
    assert again.headers["X-Closedloop-Redelivery"] == "1"
    assert recorder.commits == 1
    assert len(recorder.refused) == 1


def test_a_redelivery_after_the_window_is_refused_as_stale(
    client: Client, recorder: Recorder, clock: Clock
) -> None:
    headers = signed_headers(GOOD)
    client.post("/hooks/events", content=GOOD, headers=headers)
    clock.now += 301

    again = client.post("/hooks/events", content=GOOD, headers=headers)

    assert again.status_code == 401
    assert again.json()["error"] == "stale_timestamp"
    assert recorder.commits == 1


def test_a_replayed_signature_with_a_tampered_body_is_refused(
    client: Client, recorder: Recorder
) -> None:
    headers = signed_headers(GOOD)
    client.post("/hooks/events", content=GOOD, headers=headers)
    tampered = encode(activity(1, email="attacker@example.com"))

    response = client.post("/hooks/events", content=tampered, headers=headers)

    assert response.status_code == 401
    assert [t.email for t in recorder.committed] == ["person1@example.com"]


def test_a_rotating_sender_may_send_two_signatures(client: Client, recorder: Recorder) -> None:
    ts = int(NOW)
    both = f"{sign(OTHER_SECRET, ts, GOOD)}, {sign(SECRET, ts, GOOD)}"

    response = _post(client, GOOD, X_Closedloop_Signature=both)

    assert response.status_code == 200
