"""A webhook item's ``person``: who the activity's person is, carried with the touch."""

from __future__ import annotations

from datetime import UTC, datetime

from connectors.base import Touch
from connectors.webhook.payload import ItemReject, parse_item

NOW = datetime(2026, 5, 1, tzinfo=UTC)
ITEM = {
    "id": "reg-1",
    "kind": "webinar_registered",
    "email": "mason.white@cedarline.example",
    "occurred_at": "2026-04-30T14:30:00Z",
}


def test_a_person_object_travels_with_the_touch_for_the_people_fields() -> None:
    person = {"first_name": "Mason", "last_name": "White", "company": "Cedarline Media",
              "title": "Head of Growth", "phone": " ", "country": None}  # fmt: skip

    touch = parse_item("hooks", 0, {**ITEM, "person": person}, NOW)

    assert isinstance(touch, Touch)
    assert touch.attributes["person"] == {
        "first_name": "Mason", "last_name": "White", "company": "Cedarline Media",
        "title": "Head of Growth",
    }  # fmt: skip


def test_an_unknown_person_field_or_a_non_text_value_is_refused_with_its_name() -> None:
    unknown = parse_item("hooks", 0, {**ITEM, "person": {"jobtitle": "CTO"}}, NOW)
    number = parse_item("hooks", 1, {**ITEM, "person": {"phone": 4155550100}}, NOW)

    assert isinstance(unknown, ItemReject)
    assert unknown.code == "unknown_field"
    assert "'jobtitle'" in unknown.reason
    assert isinstance(number, ItemReject)
    assert number.code == "wrong_type"
    assert "person.phone" in number.reason
