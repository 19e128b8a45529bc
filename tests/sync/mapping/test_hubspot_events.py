"""HubSpot event targets in a mapping: timeline events (template tokens, extraData) and custom
behavioral events (properties) render from the touch and are validated line by line."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from connectors.base import Person, PersonKind, TouchKind
from sync.mapping.catalogue import offline_catalogue
from sync.mapping.validate import validate_file
from tests.sync.mapping.helpers import mapping_from, touch

HUBSPOT = """schema_version: 1
name: events
source: marketo
crm: hubspot
touches:
  target: note
  key_field: closedloop_touch_key
  fields:
    hs_timestamp: {source: touch.occurred_at, transforms: [{datetime: epoch_ms}]}
    hs_note_body: "{{ touch.kind }}"
  kinds:
    webinar_attended:
      target: timeline_event
      event:
        template_id: 1001298
        extra_data:
          url: {source: touch.attributes.url}
      fields:
        webinar: "{{ touch.campaign | default('(webinar)') }}"
        asset: {source: touch.asset, transforms: [upper]}
    content_download:
      target: behavioral_event
      event: {name: pe123_content_downloaded}
      fields:
        asset_name: "{{ touch.asset }}"
"""
ANN = Person("hubspot", "501", PersonKind.CONTACT, "ann@example.com", account_id="9001")


def test_a_timeline_event_renders_its_template_tokens_extra_data_and_time(tmp_path: Path) -> None:
    mapping = mapping_from(tmp_path, HUBSPOT)
    webinar = touch(
        TouchKind.WEBINAR_ATTENDED, campaign="Q2 Webinar", asset="Deck",
        attributes={"url": "https://example.com/w"},
    )  # fmt: skip

    rendered = mapping.render(webinar, ANN)

    assert rendered is not None
    assert rendered.target == "timeline_event"
    assert rendered.person_id == "501"
    assert dict(rendered.payload) == {
        "eventTemplateId": "1001298",
        "tokens": {"webinar": "Q2 Webinar", "asset": "DECK"},
        "extraData": {"url": "https://example.com/w"},
        "timestamp": "2024-05-03T14:00:00+00:00",
    }
    assert mapping.event_targets == {
        "timeline_event": {"1001298"},
        "behavioral_event": {"pe123_content_downloaded"},
    }


def test_a_behavioral_event_renders_its_name_properties_and_time(tmp_path: Path) -> None:
    mapping = mapping_from(tmp_path, HUBSPOT)

    rendered = mapping.render(touch(TouchKind.CONTENT_DOWNLOAD, asset="Guide"), ANN)

    assert rendered is not None
    assert dict(rendered.payload) == {
        "eventName": "pe123_content_downloaded",
        "properties": {"asset_name": "Guide"},
        "occurredAt": "2024-05-03T14:00:00+00:00",
    }


def test_other_kinds_stay_engagements_with_the_touch_key(tmp_path: Path) -> None:
    rendered = mapping_from(tmp_path, HUBSPOT).render(touch(TouchKind.FORM_FILL), ANN)

    assert rendered is not None
    assert rendered.target == "note"
    assert rendered.payload["closedloop_touch_key"] == "marketo:1"


def test_a_broken_event_section_is_reported_at_its_lines(tmp_path: Path) -> None:
    broken = (
        HUBSPOT.replace("template_id: 1001298", "name: pe1_x")
        .replace("event: {name: pe123_content_downloaded}", "event: {}")
        .replace("    content_download:\n", "    form_fill:\n      event: {name: pe1_y}\n"
                 "    content_download:\n")
    )  # fmt: skip
    path = tmp_path / "broken.yaml"
    path.write_text(broken, encoding="utf-8")

    issues = {
        (i.line, i.key_path): i.message for i in validate_file(path, offline_catalogue()).issues
    }

    assert "needs template_id" in issues[(15, "touches.kinds.webinar_attended.event")]
    assert "for behavioral_event" in issues[(15, "touches.kinds.webinar_attended.event.name")]
    assert "remove it" in issues[(22, "touches.kinds.form_fill.event")]
    assert "needs name" in issues[(25, "touches.kinds.content_download.event")]
    assert len(issues) == 4, issues


def test_a_template_id_that_is_no_number_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad-id.yaml"
    path.write_text(HUBSPOT.replace("template_id: 1001298", "template_id: webinar"), "utf-8")

    [issue] = validate_file(path, offline_catalogue()).issues

    assert (issue.line, issue.key_path) == (15, "touches.kinds.webinar_attended.event.template_id")
    assert "is a number" in issue.message


def test_an_event_target_needs_a_hubspot_mapping(tmp_path: Path) -> None:
    text = HUBSPOT.replace("crm: hubspot", "crm: salesforce")
    path = tmp_path / "sf.yaml"
    path.write_text(text, encoding="utf-8")

    messages = [i.message for i in validate_file(path, offline_catalogue()).issues]

    assert any("unknown Salesforce object 'timeline_event'" in m for m in messages)
    assert any("event belongs to a HubSpot timeline_event" in m for m in messages)


def test_the_commented_event_examples_of_the_shipped_mapping_validate(tmp_path: Path) -> None:
    shipped = Path(__file__).parents[3] / "mappings" / "marketo-hubspot.yaml"
    text = shipped.read_text(encoding="utf-8")
    # The examples are the commented lines indented under kinds: "    # <kind>:" and deeper.
    example = [
        line.replace("    # ", "    ", 1)
        for line in text.splitlines()
        if re.match(r"^    # (\w+:|  )", line)
    ]
    kinds = yaml.safe_load("\n".join(example))
    assert set(kinds) == {"webinar_attended", "content_download"}
    data = yaml.safe_load(text)
    data["touches"]["kinds"].update(kinds)
    path = tmp_path / "examples.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")

    report = validate_file(path, offline_catalogue())

    assert report.ok, report.issues
    assert mapping_from(tmp_path, path.read_text("utf-8")).event_targets == {
        "timeline_event": {"1001298"},
        "behavioral_event": {"pe1234567_content_downloaded"},
    }
