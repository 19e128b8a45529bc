"""Templates: validate-time checks, and the fast renderer agreeing with Jinja itself."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jinja2.exceptions import UndefinedError

from connectors.base import Person, PersonKind, Touch, TouchKind
from connectors.errors import MappingError
from sync.mapping.templates import (
    EMPTY_PERSON,
    check_template,
    compile_fast,
    compile_template,
    make_environment,
)

ENV = make_environment("Europe/Berlin")
FAST = settings(max_examples=40, deadline=None)

TEMPLATES = [
    "plain text",
    "{{ touch.kind | humanize }}: {{ touch.asset | default('(none)') }}",
    "{{ touch.campaign or touch.asset or 'n/a' }}",
    "{{ touch.attributes.url }}",
    "{{ touch.attributes['url'] | upper }}",
    "{% if touch.attributes.url is defined %}{{ touch.attributes.url }}{% else %}-{% endif %}",
    "{% if touch.campaign %}C={{ touch.campaign }}{% elif touch.asset %}A{% else %}-{% endif %}",
    "{{ touch.occurred_at | datetime('%Y-%m-%d %H:%M %Z') }}",
    "{{ person.first_name | default('there') | title }} {{ not touch.email }}",
    "{{ touch.key }} {{ touch.attributes.score | default(0) }}",
    "{{ touch.kind | default(touch.asset) }}",
]

optional_text = st.none() | st.text(alphabet="abc XYZ/-", max_size=12)
touches = st.builds(
    Touch,
    source=st.sampled_from(["marketo", "files"]),
    source_id=st.text(alphabet="0123456789", min_size=1, max_size=6),
    kind=st.sampled_from(list(TouchKind)),
    occurred_at=st.datetimes(
        min_value=datetime(2000, 1, 1),  # noqa: DTZ001 - hypothesis bounds are naive by design
        max_value=datetime(2100, 1, 1),  # noqa: DTZ001
        timezones=st.just(UTC),
    ),
    email=optional_text,
    campaign=optional_text,
    asset=optional_text,
    attributes=st.dictionaries(st.sampled_from(["url", "score", "lists"]), optional_text),
)


def _outcome(fn: object, touch: Touch, person: Person) -> tuple[str, str]:
    try:
        return "ok", fn(touch, person)  # type: ignore[operator]
    except (UndefinedError, MappingError):
        return "error", ""


@pytest.mark.parametrize("text", TEMPLATES)
def test_every_sample_template_takes_the_fast_path(text: str) -> None:
    assert compile_fast(text, ENV, "field X") is not None


@FAST
@given(touch=touches, first_name=optional_text)
def test_fast_renderer_gives_exactly_what_jinja_gives(touch: Touch, first_name: str | None) -> None:
    person = Person("crm", "1", PersonKind.LEAD, touch.email, first_name=first_name)
    for text in TEMPLATES:
        fast = compile_fast(text, ENV, "field X")
        template = ENV.from_string(text)

        def jinja(t: Touch, p: Person, template: object = template) -> str:
            return template.render(touch=t, person=p)  # type: ignore[attr-defined]

        assert _outcome(fast, touch, person) == _outcome(jinja, touch, person), text


def test_templates_that_need_jinja_still_render() -> None:
    text = "{% for a in touch.attributes.assets %}[{{ a }}]{% endfor %}"
    assert compile_fast(text, ENV, "x") is None
    render = compile_template(text, ENV, "field Description")
    touch = Touch("m", "1", TouchKind.PAGE_VIEW, datetime(2024, 1, 1, tzinfo=UTC), None,
                  attributes={"assets": ["/a", "/b"]})  # fmt: skip
    assert render(touch, EMPTY_PERSON) == "[/a][/b]"


def test_a_missing_attribute_at_render_time_is_a_mapping_error_naming_the_touch() -> None:
    render = compile_template("{{ touch.attributes.url }}", ENV, "field Subject")
    touch = Touch("marketo", "9", TouchKind.EMAIL_OPEN, datetime(2024, 1, 1, tzinfo=UTC), None)
    with pytest.raises(MappingError, match=r"touch marketo:9: field Subject: .*url"):
        render(touch, EMPTY_PERSON)


def test_none_renders_blank_and_default_covers_it() -> None:
    touch = Touch("m", "1", TouchKind.EMAIL_OPEN, datetime(2024, 1, 1, tzinfo=UTC), None)
    assert compile_template("[{{ touch.asset }}]", ENV, "x")(touch, EMPTY_PERSON) == "[]"
    assert (
        compile_template("{{ touch.asset | default('-') }}", ENV, "x")(touch, EMPTY_PERSON) == "-"
    )


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("{{ tuch.asset }}", "unknown template variable 'tuch' (did you mean 'touch'?)"),
        ("{{ touch.campain }}", "touch has no field 'campain' (did you mean 'campaign'?)"),
        ("{{ person.frist_name }}", "did you mean 'first_name'?"),
        ("{{ touch.asset | lowr }}", "unknown filter 'lowr' (did you mean 'lower'?)"),
        ("{% if touch.asset is definned %}x{% endif %}", "unknown test 'definned'"),
        ("{{ touch.asset ", "template syntax error"),
    ],
)
def test_check_template_names_the_problem(text: str, fragment: str) -> None:
    problems = check_template(text, ENV)
    assert any(fragment in p for p in problems), problems


def test_free_form_mappings_accept_any_key_at_validate_time() -> None:
    assert check_template("{{ touch.attributes.anything }} {{ person.fields.Industry }}", ENV) == []


def test_the_sandbox_refuses_unsafe_attribute_access() -> None:
    render = compile_template("{{ touch.__class__.__mro__ }}", ENV, "field X")
    touch = Touch("m", "1", TouchKind.EMAIL_OPEN, datetime(2024, 1, 1, tzinfo=UTC), None)
    with pytest.raises(MappingError):
        render(touch, EMPTY_PERSON)
