"""Rendering touches through a compiled mapping: payloads, filters, required fields, digests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connectors.base import Person, PersonKind, TouchKind
from connectors.errors import MappingError
from tests.sync.mapping.helpers import BASE, mapping_from, touch

LEAD = Person("salesforce", "00Q1", PersonKind.LEAD, "ann@example.com", account_id="001X")
CONTACT = Person("salesforce", "0031", PersonKind.CONTACT, "ann@example.com", account_id="001X")


def test_render_gives_the_exact_salesforce_task_payload(tmp_path: Path) -> None:
    mapping = mapping_from(tmp_path, BASE)
    rendered = mapping.render(touch(asset="May newsletter"), CONTACT)
    assert rendered is not None
    assert rendered.target == "Task"
    assert rendered.key == "marketo:1"
    assert rendered.person_id == "0031"
    assert dict(rendered.payload) == {
        "Subject": "Email open: May newsletter",
        "Status": "Completed",
        "ActivityDate": "2024-05-03",
        "Closedloop_Key__c": "marketo:1",
        "WhoId": "0031",
        "WhatId": "001X",
    }


def test_a_lead_never_gets_an_account_what_id(tmp_path: Path) -> None:
    rendered = mapping_from(tmp_path, BASE).render(touch(), LEAD)
    assert rendered is not None
    assert "WhatId" not in rendered.payload
    assert rendered.payload["WhoId"] == "00Q1"


def test_activity_date_is_the_local_day_in_the_mapping_time_zone(tmp_path: Path) -> None:
    late = touch(occurred_at=datetime(2024, 5, 3, 2, 30, tzinfo=UTC))
    rendered = mapping_from(tmp_path, BASE).render(late)
    assert rendered is not None
    assert rendered.payload["ActivityDate"] == "2024-05-02"


def test_kind_rules_override_common_fields_and_can_change_the_target(tmp_path: Path) -> None:
    text = (
        BASE
        + """  kinds:
    form_fill:
      fields:
        Subject: "Form: {{ touch.asset }}"
        Priority: High
"""
    )
    mapping = mapping_from(tmp_path, text)
    rendered = mapping.render(touch(TouchKind.FORM_FILL, asset="Demo"), LEAD)
    assert rendered is not None
    assert rendered.payload["Subject"] == "Form: Demo"
    assert rendered.payload["Priority"] == "High"
    assert rendered.payload["Status"] == "Completed"


def test_long_text_is_cut_to_the_crm_length_with_the_marker(tmp_path: Path) -> None:
    mapping = mapping_from(tmp_path, BASE)
    rendered = mapping.render(touch(asset="x" * 400))
    assert rendered is not None
    subject = rendered.payload["Subject"]
    assert len(subject) == 255
    assert subject.endswith(" [...]")


def test_a_blank_required_field_rejects_the_touch_with_its_key(tmp_path: Path) -> None:
    text = (
        BASE
        + """    Description:
      source: touch.attributes.notes
      required: true
"""
    )
    mapping = mapping_from(tmp_path, text)
    with pytest.raises(MappingError, match="touch marketo:7: field Description is required"):
        mapping.render(touch(source_id="7"))
    rendered = mapping.render(touch(attributes={"notes": "hi"}))
    assert rendered is not None
    assert rendered.payload["Description"] == "hi"


def test_default_fills_a_blank_source_and_blank_fields_are_left_out(tmp_path: Path) -> None:
    text = (
        BASE
        + """    Description:
      source: touch.attributes.notes
      default: none given
    OwnerId:
      source: touch.attributes.owner
"""
    )
    rendered = mapping_from(tmp_path, text).render(touch())
    assert rendered is not None
    assert rendered.payload["Description"] == "none given"
    assert "OwnerId" not in rendered.payload


def test_value_map_with_default_picks_the_picklist_value(tmp_path: Path) -> None:
    text = (
        BASE
        + """    Type:
      source: touch.channel
      transforms:
        - lower
        - map: {email: Email, call: Call}
          default: Other
"""
    )
    mapping = mapping_from(tmp_path, text)
    types = [mapping.render(touch(channel=c)).payload["Type"] for c in ("EMAIL", "tv", None)]  # type: ignore[union-attr]
    assert types == ["Email", "Other", "Other"]


def test_kind_and_campaign_filters_drop_touches(tmp_path: Path) -> None:
    text = (
        BASE
        + """filters:
  kinds:
    exclude: [email_sent]
  campaigns:
    include: ["Q2*"]
    exclude: ["*test*"]
"""
    )
    mapping = mapping_from(tmp_path, text)
    assert mapping.render(touch(TouchKind.EMAIL_SENT, campaign="Q2 Launch")) is None
    assert mapping.render(touch(campaign="Q3 Launch")) is None
    assert mapping.render(touch(campaign="Q2 TEST run")) is None
    assert mapping.render(touch(campaign="q2 launch")) is not None
    assert TouchKind.EMAIL_SENT not in mapping.kinds


def test_inclusion_rules_use_score_lists_and_fields(tmp_path: Path) -> None:
    text = (
        BASE
        + """filters:
  rules:
    match: any
    conditions:
      - score_at_least: 50
      - in_list: Sales Ready
      - field: person.lead_source
        op: equals
        value: web
"""
    )
    mapping = mapping_from(tmp_path, text)

    def person(**kw: object) -> Person:
        return Person("salesforce", "1", PersonKind.LEAD, "a@b.c", **kw)  # type: ignore[arg-type]

    assert mapping.render(touch(), person(score=10)) is None
    assert mapping.render(touch(), person(score=60)) is not None
    assert mapping.render(touch(), person(fields={"lists": ["sales ready"]})) is not None
    assert mapping.render(touch(), person(lead_source="Web")) is not None
    assert mapping.render(touch(), None) is None


def test_hubspot_note_gets_epoch_millisecond_timestamp_and_no_person_property(
    tmp_path: Path,
) -> None:
    text = """schema_version: 1
name: hs
source: marketo
crm: hubspot
touches:
  target: note
  key_field: closedloop_touch_key
  fields:
    hs_timestamp:
      source: touch.occurred_at
      transforms: [{datetime: epoch_ms}]
    hs_note_body: "{{ touch.kind }}"
"""
    contact = Person("hubspot", "501", PersonKind.CONTACT, "ann@example.com")
    rendered = mapping_from(tmp_path, text).render(touch(), contact)
    assert rendered is not None
    assert rendered.target == "note"
    assert rendered.person_id == "501"
    assert dict(rendered.payload) == {
        "hs_timestamp": 1714744800000,
        "hs_note_body": "email_open",
        "closedloop_touch_key": "marketo:1",
    }


DIGEST = (
    BASE
    + """  kinds:
    page_view:
      digest:
        window: day
        max_items: 2
        immediate_assets: ["*/pricing*"]
        fields:
          Subject: "Viewed {{ touch.attributes.count }} pages"
"""
)


def test_page_views_roll_up_per_person_per_day_and_pricing_lands_at_once(tmp_path: Path) -> None:
    mapping = mapping_from(tmp_path, DIGEST)
    start = datetime(2024, 5, 3, 13, 0, tzinfo=UTC)
    views = [
        touch(TouchKind.PAGE_VIEW, str(i), asset=f"/p{i}", occurred_at=start + timedelta(minutes=i))
        for i in range(4)
    ]
    views.append(touch(TouchKind.PAGE_VIEW, "9", asset="/pricing", occurred_at=start))
    views.append(touch(TouchKind.PAGE_VIEW, "10", asset="/p0", email="bo@example.com"))
    views.append(touch(TouchKind.FORM_FILL, "11"))
    out = mapping.digest(views)
    kinds = sorted((t.kind.value, t.attributes.get("count", 0)) for t in out)
    assert kinds == [("form_fill", 0), ("page_view", 0), ("page_view", 1), ("page_view", 4)]
    ann = next(t for t in out if t.attributes.get("count") == 4)
    assert ann.attributes["assets"] == ["/p0", "/p1"]
    assert ann.attributes["more"] == 2
    rendered = mapping.render(ann, LEAD)
    assert rendered is not None
    assert rendered.payload["Subject"] == "Viewed 4 pages"
    assert rendered.payload["Closedloop_Key__c"] == ann.key


def test_digest_keys_are_stable_across_reruns_and_input_order(tmp_path: Path) -> None:
    mapping = mapping_from(tmp_path, DIGEST)
    start = datetime(2024, 5, 3, 13, 0, tzinfo=UTC)
    views = [
        touch(TouchKind.PAGE_VIEW, str(i), asset=f"/p{i}", occurred_at=start + timedelta(hours=i))
        for i in range(3)
    ]
    first = mapping.digest(views)
    again = mapping.digest(list(reversed(views)))
    more = mapping.digest([*views, touch(TouchKind.PAGE_VIEW, "99", occurred_at=start)])
    assert [t.key for t in first] == [t.key for t in again]
    assert first == again
    assert [t.key for t in more] == [t.key for t in first]
    assert more[0].attributes["count"] == 4


def test_digest_windows_follow_the_mapping_time_zone(tmp_path: Path) -> None:
    mapping = mapping_from(tmp_path, DIGEST)
    # 23:30 and 01:30 UTC are the same New York evening.
    a = touch(TouchKind.PAGE_VIEW, "1", occurred_at=datetime(2024, 5, 3, 23, 30, tzinfo=UTC))
    b = touch(TouchKind.PAGE_VIEW, "2", occurred_at=datetime(2024, 5, 4, 1, 30, tzinfo=UTC))
    [digest] = mapping.digest([a, b])
    assert digest.attributes["window"] == "2024-05-03"
