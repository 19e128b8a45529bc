"""Property tests of the field transforms: what an admin relies on for every possible value."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from sync.mapping.model import DatetimeTransform, MapTransform, TruncateTransform
from sync.mapping.transforms import (
    SIMPLE,
    compile_strftime,
    compile_transforms,
    format_datetime,
    make_map,
    parse_datetime,
    truncate,
)

# No deadline: this machine is shared, and timing is the benchmarks' job, not the tests'.
FAST = settings(max_examples=60, deadline=None)
text = st.text(max_size=200)
aware = st.datetimes(
    min_value=datetime(1971, 1, 1),  # noqa: DTZ001 - hypothesis bounds are naive by design
    max_value=datetime(2200, 1, 1),  # noqa: DTZ001
    timezones=st.just(UTC),
)
zones = st.sampled_from(
    ["UTC", "America/New_York", "Europe/Berlin", "Asia/Kolkata", "Australia/Lord_Howe"]
)


@FAST
@given(text)
def test_lower_and_strip_are_idempotent(value: str) -> None:
    for name in ("lower", "strip", "upper", "collapse_spaces"):
        once = SIMPLE[name](value)
        assert SIMPLE[name](once) == once


@FAST
@given(text)
def test_strip_leaves_no_outer_whitespace(value: str) -> None:
    out = SIMPLE["strip"](value)
    assert out == out.strip()


@FAST
@given(text, st.integers(min_value=1, max_value=300), st.text(max_size=10))
def test_truncation_never_exceeds_the_length_and_keeps_the_marker(
    value: str, length: int, marker: str
) -> None:
    out = truncate(value, length, marker)
    assert len(out) <= length
    if len(value) <= length:
        assert out == value
    elif len(marker) < length:
        assert out.endswith(marker)
        assert out == value[: length - len(marker)] + marker


def test_blank_passes_through_every_transform_untouched() -> None:
    for fn in SIMPLE.values():
        assert fn(None) is None
    assert truncate(None, 5, "...") is None


@FAST
@given(
    st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=6), text, st.text(max_size=5)
)
def test_value_map_with_default_is_total(table: dict[str, str], value: str, default: str) -> None:
    fn = make_map(table, default=default, has_default=True)
    assert fn(value) in {*table.values(), default}
    assert fn(value) == table.get(value, default)


@FAST
@given(st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=6), text)
def test_value_map_without_default_keeps_unmapped_values(table: dict[str, str], value: str) -> None:
    fn = make_map(table)
    assert fn(value) == table.get(value, value)


def test_value_map_can_ignore_case() -> None:
    fn = make_map({"Email": "Email"}, ignore_case=True, default="Other", has_default=True)
    assert fn("EMAIL") == "Email"
    assert fn("webinar") == "Other"


@FAST
@given(aware, zones)
def test_iso_format_round_trips_to_the_same_instant(moment: datetime, zone: str) -> None:
    out = format_datetime(moment, "iso", ZoneInfo(zone))
    assert parse_datetime(out) == moment


@FAST
@given(aware)
def test_epoch_milliseconds_round_trip_at_millisecond_precision(moment: datetime) -> None:
    moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    out = format_datetime(moment, "epoch_ms", ZoneInfo("UTC"))
    assert isinstance(out, int)
    assert parse_datetime(out) == moment


@FAST
@given(aware, zones)
def test_strftime_pattern_round_trips_through_strptime(moment: datetime, zone: str) -> None:
    tz = ZoneInfo(zone)
    out = format_datetime(moment, "%Y-%m-%d %H:%M:%S", tz)
    back = datetime.strptime(out, "%Y-%m-%d %H:%M:%S")  # noqa: DTZ007 - local wall time in tz
    assert back == moment.astimezone(tz).replace(tzinfo=None, microsecond=0)


@FAST
@given(aware, zones)
def test_date_format_is_the_local_calendar_day(moment: datetime, zone: str) -> None:
    tz = ZoneInfo(zone)
    [fn] = compile_transforms(
        [DatetimeTransform(datetime="date", timezone=zone)],
        timezone="UTC",
        marker="",
        crm_length=None,
    )
    assert fn(moment) == moment.astimezone(tz).date().isoformat()
    assert fn(moment.isoformat()) == moment.astimezone(tz).date().isoformat()


def test_a_late_evening_touch_in_new_york_is_dated_the_previous_utc_day() -> None:
    moment = datetime(2024, 5, 3, 2, 30, tzinfo=UTC)
    assert format_datetime(moment, "date", ZoneInfo("America/New_York")) == "2024-05-02"


def test_non_timestamps_pass_through_the_datetime_transform() -> None:
    assert format_datetime("not a date", "date", ZoneInfo("UTC")) == "not a date"
    assert parse_datetime("") is None


def test_naive_timestamps_are_read_as_utc() -> None:
    assert parse_datetime("2024-01-01T10:00:00") == datetime(2024, 1, 1, 10, tzinfo=UTC)
    naive = datetime(2024, 1, 1)  # noqa: DTZ001 - the naive input is the point of the test
    assert parse_datetime(naive) == datetime(2024, 1, 1, tzinfo=UTC)


@FAST
@given(text)
def test_compiled_chain_applies_steps_in_order(value: str) -> None:
    funcs = compile_transforms(
        ["strip", "lower", MapTransform(map={"x": "Y"}), TruncateTransform(truncate=5)],
        timezone="UTC", marker="~", crm_length=None,
    )  # fmt: skip
    out: object = value
    for fn in funcs:
        out = fn(out)
    expected = value.strip().lower()
    expected = "Y" if expected == "x" else expected
    assert out == truncate(expected, 5, "~")


def test_truncate_to_crm_length_uses_the_catalogue_length() -> None:
    [fn] = compile_transforms(
        [TruncateTransform(truncate="crm")], timezone="UTC", marker="...", crm_length=10
    )
    assert fn("a" * 20) == "aaaaaaa..."
    assert fn(timedelta(0)) == "0:00:00"


@FAST
@given(
    st.datetimes(
        min_value=datetime(1900, 1, 1),  # noqa: DTZ001 - hypothesis bounds are naive by design
        max_value=datetime(2200, 1, 1),  # noqa: DTZ001
        timezones=st.just(UTC),
    ),
    zones,
    st.sampled_from(
        ["%Y-%m-%d %H:%M %Z", "%d %b %Y, %I:%M %p (%a)", "%y%m%d %%", "{x} %S", "%j %Q", "end %"]
    ),
)
def test_compiled_strftime_matches_strftime(moment: datetime, zone: str, fmt: str) -> None:
    local = moment.astimezone(ZoneInfo(zone))
    assert compile_strftime(fmt)(local) == local.strftime(fmt)


@FAST
@given(st.text(alphabet="%YmdHMSZbapIy{}'\"\\ x-", max_size=20))
def test_any_pattern_compiles_to_the_same_text_as_strftime(fmt: str) -> None:
    local = datetime(2024, 3, 9, 18, 5, 7, tzinfo=UTC).astimezone(ZoneInfo("Europe/Berlin"))
    assert compile_strftime(fmt)(local) == local.strftime(fmt)
