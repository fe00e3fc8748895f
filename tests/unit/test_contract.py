"""Every rule of the stream contract v1 (README, docs/contract.md), one test or more each."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from dashboard.config import Settings
from dashboard.contract.changes import parse_change
from dashboard.contract.entries import (
    FIELD_MAX,
    ID_RE,
    INCIDENT_FIELDS,
    PING_FIELDS,
    REASON_MAX,
    STATUSES,
    ContractError,
    parse_incident,
    parse_ping,
)
from dashboard.geo import wgs84_to_gcj02
from dashboard.times import EARLIEST, LATEST, NO_DEADLINE

CATS = Settings().categories
NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


def incident(**overrides: str) -> dict[bytes, bytes]:
    base = {
        "id": "HZ-20261123-0001",
        "status": "reported",
        "ts": "2026-11-23T09:14:05+08:00",
        "lat": "29.3702",
        "lon": "106.2610",
        "category": "dispute",
    }
    base.update(overrides)
    return {k.encode(): v.encode() for k, v in base.items() if v is not None}


def parse(fields: dict[bytes, bytes]) -> object:
    return parse_incident(fields, categories=CATS, now=NOW)


def rejects(fields: dict[bytes, bytes], code: str, field: str | None = None) -> ContractError:
    with pytest.raises(ContractError) as info:
        parse(fields)
    assert info.value.code == code, info.value.reason
    if field is not None:
        assert info.value.field == field
    assert info.value.reason  # a reason people can read
    return info.value


def test_the_readme_example_parses() -> None:
    msg = parse(
        incident(
            priority="2",
            source="grid_app",
            title="邻里噪音纠纷",
            description="17栋住户夜间施工",
        )
    )
    assert msg.id == "HZ-20261123-0001"
    assert msg.status == "reported"
    assert msg.ts == datetime(2026, 11, 23, 1, 14, 5, tzinfo=UTC)
    assert (msg.lat, msg.lon) == (29.3702, 106.2610)
    assert msg.priority == 2 and msg.source == "grid_app"
    assert msg.title == "邻里噪音纠纷"


# -- id ---------------------------------------------------------------------------------
@pytest.mark.parametrize("good", ["a", "A-Z.09_:x", "x" * 64])
def test_id_charset_and_length_accepted(good: str) -> None:
    assert parse(incident(id=good)).id == good


@pytest.mark.parametrize("bad", ["x" * 65, "has space", "斜杠/", "semi;colon", "新"])
def test_id_outside_charset_or_length_rejected(bad: str) -> None:
    rejects(incident(id=bad), "bad_id", "id")


def test_id_required() -> None:
    rejects(incident(id=None), "missing_field", "id")


# -- status -----------------------------------------------------------------------------
@pytest.mark.parametrize("status", STATUSES)
def test_every_status_accepted(status: str) -> None:
    assert parse(incident(status=status)).status == status


@pytest.mark.parametrize("bad", ["Reported", "done", "open", ""])
def test_unknown_status_rejected(bad: str) -> None:
    code = "missing_field" if bad == "" else "unknown_status"
    rejects(incident(status=bad), code, "status")


# -- ts ---------------------------------------------------------------------------------
def test_ts_iso_with_offset_and_epoch_ms_agree() -> None:
    iso = parse(incident(ts="2026-11-23T09:14:05+08:00")).ts
    epoch = parse(incident(ts=str(int(iso.timestamp() * 1000)))).ts
    zulu = parse(incident(ts="2026-11-23T01:14:05Z")).ts
    assert iso == epoch == zulu


@pytest.mark.parametrize(
    "bad", ["2026-11-23T09:14:05", "2026-11-23", "yesterday", "1e12", "-5", "12.5"]
)
def test_ts_needs_offset_or_integer_ms(bad: str) -> None:
    rejects(incident(ts=bad), "bad_time", "ts")


def test_ts_in_far_future_rejected_and_slight_skew_tolerated() -> None:
    rejects(incident(ts=(NOW + timedelta(days=1)).isoformat()), "future_time", "ts")
    assert parse(incident(ts=(NOW + timedelta(minutes=5)).isoformat())).ts > NOW


def test_ts_before_2000_rejected() -> None:
    rejects(incident(ts="1999-12-31T23:59:59+00:00"), "bad_time", "ts")
    rejects(incident(ts="0"), "bad_time", "ts")


def test_ts_required() -> None:
    rejects(incident(ts=None), "missing_field", "ts")


# -- lat / lon / crs ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("lat", "lon", "code", "field"),
    [
        ("91", "106", "bad_coordinates", "lat"),
        ("-90.0001", "106", "bad_coordinates", "lat"),
        ("29", "180.5", "bad_coordinates", "lon"),
        ("nan", "106", "bad_number", "lat"),
        ("29", "inf", "bad_number", "lon"),
        ("29", "-Infinity", "bad_number", "lon"),
        ("1_0", "106", "bad_number", "lat"),
        ("29,3", "106", "bad_number", "lat"),
        ("29", "", "missing_field", "lon"),
    ],
)
def test_bad_coordinates_rejected(lat: str, lon: str, code: str, field: str) -> None:
    rejects(incident(lat=lat, lon=lon), code, field)


def test_coordinate_bounds_inclusive() -> None:
    msg = parse(incident(lat="-90", lon="180"))
    assert (msg.lat, msg.lon) == (-90.0, 180.0)


def test_lat_and_lon_optional_on_updates_but_come_together() -> None:
    msg = parse(incident(lat=None, lon=None, category=None, status="dispatched"))
    assert msg.lat is None and msg.lon is None
    rejects(incident(lon=None), "missing_field", "lon")


def test_crs_gcj02_and_bd09_are_stored_as_wgs84() -> None:
    lat, lon = 29.3702, 106.2610
    glat, glon = wgs84_to_gcj02(lat, lon)
    msg = parse(incident(lat=repr(glat), lon=repr(glon), crs="gcj02"))
    assert abs(msg.lat - lat) < 1e-7 and abs(msg.lon - lon) < 1e-7
    default = parse(incident())
    assert default.crs == "wgs84" and default.lat == lat


def test_unknown_crs_rejected() -> None:
    rejects(incident(crs="epsg:4326"), "bad_crs", "crs")


# -- category / priority / source ----------------------------------------------------------
@pytest.mark.parametrize("category", CATS)
def test_every_catalogue_category_accepted(category: str) -> None:
    assert parse(incident(category=category)).category == category


def test_unknown_category_rejected_and_catalogue_is_configurable() -> None:
    rejects(incident(category="ufo"), "unknown_category", "category")
    assert parse_incident(incident(category="ufo"), categories=("ufo",), now=NOW).category == "ufo"


def test_priority_1_to_4_default_none() -> None:
    assert [parse(incident(priority=str(p))).priority for p in (1, 2, 3, 4)] == [1, 2, 3, 4]
    assert parse(incident()).priority is None
    for bad in ("0", "5", "2.0", "high", "+1"):
        rejects(incident(priority=bad), "bad_priority", "priority")


def test_sources() -> None:
    for source in (
        "hotline_12345",
        "police_110",
        "grid_app",
        "video_ai",
        "iot",
        "patrol",
        "walk_in",
        "other",
    ):
        assert parse(incident(source=source)).source == source
    rejects(incident(source="wechat"), "unknown_source", "source")


# -- text ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "limit"), [("title", 200), ("description", 4000), ("address", 300)]
)
def test_text_limits_in_characters(name: str, limit: int) -> None:
    assert getattr(parse(incident(**{name: "纠" * limit})), name) == "纠" * limit
    rejects(incident(**{name: "纠" * (limit + 1)}), "too_long", name)


def test_text_may_hold_newlines_but_not_control_characters() -> None:
    assert parse(incident(description="第一行\n第二行\t!")).description == "第一行\n第二行\t!"
    rejects(incident(title="bad\x00nul"), "control_character", "title")
    rejects(incident(title="bell\x07"), "control_character", "title")


def test_untrusted_markup_is_kept_verbatim_as_text() -> None:
    payload = '<img src=x onerror="alert(1)">'
    assert parse(incident(title=payload)).title == payload


def test_invalid_utf8_rejected() -> None:
    fields = incident()
    fields[b"title"] = b"\xff\xfe bad"
    with pytest.raises(ContractError) as info:
        parse(fields)
    assert info.value.code == "invalid_utf8" and info.value.field == "title"


def test_one_megabyte_value_rejected() -> None:
    rejects(incident(description="x" * 1_000_000), "too_long", "description")


# -- references, due, unknown fields ------------------------------------------------------
def test_grid_unit_department_use_the_id_charset() -> None:
    msg = parse(incident(grid="G001", unit="P-017", department="police"))
    assert (msg.grid, msg.unit, msg.department) == ("G001", "P-017", "police")
    rejects(incident(unit="巡逻一组"), "bad_id", "unit")


def test_due_same_formats_as_ts_and_may_be_far_ahead() -> None:
    msg = parse(incident(due="2027-01-01T00:00:00+08:00"))
    assert msg.due == datetime(2026, 12, 31, 16, tzinfo=UTC)
    rejects(incident(due="tomorrow"), "bad_time", "due")


def test_unknown_field_rejected_naming_it() -> None:
    error = rejects(incident(lng="106.26"), "unknown_field", "lng")
    assert "lng" in error.reason


def test_empty_optional_value_counts_as_absent() -> None:
    msg = parse(incident(title="", unit=""))
    assert msg.title is None and msg.unit is None


def test_field_sets_match_the_contract_tables() -> None:
    assert {
        "id", "status", "ts", "lat", "lon", "crs", "category", "priority", "source",
        "title", "description", "address", "grid", "unit", "department", "due",
    } == INCIDENT_FIELDS  # fmt: skip
    assert {
        "unit",
        "lat",
        "lon",
        "ts",
        "crs",
        "speed",
        "heading",
        "accuracy",
        "status",
    } == PING_FIELDS


# -- pings ---------------------------------------------------------------------------------
def ping(**overrides: str | None) -> dict[bytes, bytes]:
    base: dict[str, str | None] = {
        "unit": "P-017",
        "lat": "29.3711",
        "lon": "106.2633",
        "ts": "1763860445000",
        "speed": "3.1",
        "heading": "270",
    }
    base.update(overrides)
    return {k.encode(): v.encode() for k, v in base.items() if v is not None}


def test_the_readme_ping_parses() -> None:
    msg = parse_ping(ping(), now=NOW)
    assert msg.unit == "P-017" and msg.speed == 3.1 and msg.heading == 270.0
    assert msg.ts == datetime.fromtimestamp(1763860445, tz=UTC)


@pytest.mark.parametrize("missing", ["unit", "lat", "lon", "ts"])
def test_ping_required_fields(missing: str) -> None:
    with pytest.raises(ContractError) as info:
        parse_ping(ping(**{missing: None}), now=NOW)
    assert info.value.code == "missing_field" and info.value.field == missing


@pytest.mark.parametrize(
    ("field", "value"),
    [("speed", "-1"), ("heading", "360.5"), ("heading", "-0.1"), ("accuracy", "-3")],
)
def test_ping_ranges(field: str, value: str) -> None:
    with pytest.raises(ContractError) as info:
        parse_ping(ping(**{field: value}), now=NOW)
    assert info.value.code == "out_of_range" and info.value.field == field


def test_ping_optional_fields_and_status() -> None:
    msg = parse_ping(ping(speed=None, heading="0", accuracy="0", status="busy"), now=NOW)
    assert msg.speed is None and msg.heading == 0.0 and msg.accuracy == 0.0 and msg.status == "busy"
    with pytest.raises(ContractError) as info:
        parse_ping(ping(status="sleeping"), now=NOW)
    assert info.value.code == "unknown_status"


def test_ping_crs_converted_and_unknown_fields_rejected() -> None:
    glat, glon = wgs84_to_gcj02(29.3711, 106.2633)
    msg = parse_ping(ping(lat=repr(glat), lon=repr(glon), crs="gcj02"), now=NOW)
    assert abs(msg.lat - 29.3711) < 1e-7
    with pytest.raises(ContractError) as info:
        parse_ping(ping(battery="80"), now=NOW)
    assert info.value.code == "unknown_field"


# -- times every layer can show (issue 11: poison pills) ------------------------------------
EXTREMES = [
    "0001-01-01T00:00:00+23:59",
    "0001-01-01T00:00:00-23:59",
    "9999-12-31T23:59:59-23:59",
    "9999-12-31T23:59:59+23:59",
    "0001-01-01T00:00:00Z",
]


@pytest.mark.parametrize("value", EXTREMES)
def test_ts_at_the_ends_of_the_datetime_range_is_a_contract_error_not_a_crash(value: str) -> None:
    rejects(incident(ts=value), "bad_time", "ts")
    with pytest.raises(ContractError) as info:
        parse_ping(ping(ts=value), now=NOW)
    assert info.value.code == "bad_time" and info.value.field == "ts"
    with pytest.raises(ContractError):  # replay and import parse without the clock check
        parse_incident(incident(ts=value), categories=CATS, now=NOW, skew_s=None)


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+23:59", "0001-01-01T00:00:00Z"])
def test_due_at_the_start_of_the_datetime_range_is_refused(value: str) -> None:
    rejects(incident(due=value), "bad_time", "due")


@pytest.mark.parametrize(
    "value",
    [
        "9999-12-31T23:59:59Z",
        "9999-12-31T23:59:59-23:59",
        "9999-12-31T23:59:59+23:59",
        "9999-01-01T00:00:00+08:00",
        "253402300799000",  # 9999-12-31T23:59:59Z in epoch milliseconds
    ],
)
def test_a_due_in_year_9999_means_no_deadline(value: str) -> None:
    assert parse(incident(due=value)).due == NO_DEADLINE == LATEST


@pytest.mark.parametrize(
    "value", ["2200-01-01T00:00:00Z", "2199-12-31T23:00:00-01:00", "2500-06-01T00:00:00+08:00",
              "9998-12-31T23:59:59Z", "7258118400000"]  # the last: 2200-01-01 in epoch ms
)  # fmt: skip
def test_a_due_past_the_window_is_refused_naming_the_rule(value: str) -> None:
    error = rejects(incident(due=value), "bad_time", "due")
    assert "2200" in error.reason and "9999" in error.reason


def test_the_window_ends_are_exact() -> None:
    last = parse(incident(due="2199-12-31T23:59:59.999999Z")).due
    assert last is not None and last < LATEST
    assert parse(incident(due="2000-01-01T08:00:00+08:00")).due == EARLIEST
    rejects(incident(due="2000-01-01T07:59:59+08:00"), "bad_time", "due")
    # Without the clock check (replay, import), ts still stays inside the window.
    late = incident(ts="2300-01-01T00:00:00Z")
    with pytest.raises(ContractError) as info:
        parse_incident(late, categories=CATS, now=NOW, skew_s=None)
    assert info.value.code == "bad_time"


# -- ASCII digits only ------------------------------------------------------------------------
@pytest.mark.parametrize("lat", ["٢٩.٣٧", "２９.３７", "29.3٧", "۲۹", "२९.३७", "𝟐𝟗.𝟑𝟕", "29.37e١"])
def test_numbers_in_other_scripts_digits_are_not_plain_decimals(lat: str) -> None:
    rejects(incident(lat=lat), "bad_number", "lat")
    with pytest.raises(ContractError) as info:
        parse_ping(ping(speed=lat), now=NOW)
    assert info.value.code == "bad_number"


@pytest.mark.parametrize(
    "ts",
    [
        "١٧٦٣٨٦٠٤٤٥٠٠٠",
        "１７６３８６０４４５０００",
        "2026-11-23T09:14:05+٠٨:00",
        "２０２６-11-23T09:14:05+08:00",
    ],
)
def test_times_in_other_scripts_digits_are_refused(ts: str) -> None:
    rejects(incident(ts=ts), "bad_time", "ts")


@pytest.mark.parametrize("priority", ["٢", "２", "²"])
def test_priority_in_other_scripts_digits_is_refused(priority: str) -> None:
    rejects(incident(priority=priority), "bad_priority", "priority")


@pytest.mark.parametrize("version", ["٣", "３", "²", "1²"])
def test_change_version_in_other_scripts_digits_is_refused(version: str) -> None:
    with pytest.raises(ContractError) as info:
        parse_change({"case": "HZ-1", "version": version})
    assert info.value.code == "bad_version"


@settings(max_examples=200, deadline=None)
@given(
    digits=st.text(st.characters(categories=["Nd"]), min_size=1, max_size=12).filter(
        lambda s: not s.isascii()
    ),
    shape=st.sampled_from(["{}", "{}.5", "1.{}", "-{}", "{}e2", "1e{}"]),
)
def test_no_unicode_digit_is_ever_a_number_or_a_time(digits: str, shape: str) -> None:
    value = shape.format(digits)
    rejects(incident(lat=value), "bad_number", "lat")
    rejects(incident(ts=value), "bad_time", "ts")
    rejects(incident(due=value), "bad_time", "due")


# -- text that cannot be encoded, huge names ------------------------------------------------------
@pytest.mark.parametrize("where", ["value", "name"])
def test_text_with_a_lone_surrogate_is_refused(where: str) -> None:
    fields: dict[bytes | str, bytes | str] = {k.decode(): v.decode() for k, v in incident().items()}
    if where == "value":
        fields["title"] = "ok \ud800 no"
    else:
        fields["\udcff"] = "1"
    with pytest.raises(ContractError) as info:
        parse_incident(fields, categories=CATS, now=NOW)
    assert info.value.code == "invalid_utf8"
    info.value.reason.encode("utf-8")  # the reason itself can be written anywhere
    with pytest.raises(ContractError) as info:
        parse_change({"case": "HZ-1", "note": "\ud83d"})
    assert info.value.code == "invalid_utf8"


def test_a_huge_field_name_gives_a_short_reason_and_field() -> None:
    name = "n" * 1_000_000
    error = rejects({**incident(), name.encode(): b"1"}, "unknown_field")
    assert len(error.reason) <= REASON_MAX and error.field is not None
    assert len(error.field) <= FIELD_MAX
    error = rejects({**incident(), name.encode(): b"x" * 70_000}, "too_long")
    assert len(error.reason) <= REASON_MAX


# -- property: the parsers raise only ContractError, and what they accept can be shown -----------
ZONES = [ZoneInfo(z) for z in ("Asia/Shanghai", "Pacific/Kiritimati", "Etc/GMT+12", "UTC")]


@st.composite
def extreme_time(draw: st.DrawFn) -> str:
    """ISO 8601 anywhere in years 1-9999 with any offset (±23:59), or any epoch ms."""
    kind = draw(st.sampled_from(["iso", "iso", "epoch", "near"]))
    if kind == "epoch":
        return str(draw(st.integers(min_value=0, max_value=10**16 - 1)))
    if kind == "near":  # close to the window's ends and to "now"
        base = draw(st.sampled_from([EARLIEST, LATEST, NOW, datetime(9999, 1, 1, tzinfo=UTC)]))
        moment = base + draw(
            st.timedeltas(min_value=timedelta(days=-2), max_value=timedelta(days=2))
        )
        return moment.isoformat()
    naive = draw(
        st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59))
    )
    minutes = draw(st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1))
    sign = "+" if minutes >= 0 else "-"
    return f"{naive.isoformat()}{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


hostile_text = st.one_of(
    st.text(max_size=30),
    st.text(st.characters(categories=["Cs", "Nd", "Cc", "Zs", "Co"]), max_size=20),
    st.integers(min_value=0, max_value=200_000).map(lambda n: "x" * n),
    st.sampled_from(["nan", "-inf", "1e999", "٢٩.٣٧", "\ud800", "9999-12-31T23:59:59Z", ""]),
    extreme_time(),
)
hostile_name = st.one_of(
    st.sampled_from(sorted(INCIDENT_FIELDS | PING_FIELDS)),
    st.text(max_size=20),
    st.integers(min_value=1, max_value=500_000).map(lambda n: "k" * n),
)


def _raw(value: str) -> bytes | str:
    # Most entries come from Redis as bytes; in-process producers give str (maybe unencodable).
    return (
        value if not value.isascii() and len(value) % 2 else value.encode("utf-8", "surrogatepass")
    )


@st.composite
def hostile_incident(draw: st.DrawFn) -> dict[bytes | str, bytes | str]:
    fields: dict[bytes | str, bytes | str] = dict(incident())  # type: ignore[arg-type]
    for _ in range(draw(st.integers(0, 4))):
        name = draw(hostile_name)
        fields[_raw(name)] = _raw(draw(hostile_text))
    for name in draw(st.lists(st.sampled_from(["ts", "due"]), max_size=2)):
        fields[name.encode()] = draw(extreme_time()).encode()
    return fields


def assert_renderable(message: object) -> None:
    """Every time in the window (or "no deadline"), shown in any zone; text encodable; finite."""
    for name in message.__slots__:  # type: ignore[attr-defined]
        value = getattr(message, name)
        if isinstance(value, datetime):
            assert EARLIEST <= value <= LATEST, (name, value)
            for zone in ZONES:
                value.astimezone(zone).isoformat()
            assert -8.64e15 < value.timestamp() * 1000 < 8.64e15  # a JavaScript Date
        elif isinstance(value, float):
            assert math.isfinite(value)
        elif isinstance(value, str):
            value.encode("utf-8")
        elif isinstance(value, dict):
            json.dumps(value, ensure_ascii=False).encode("utf-8")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fields=hostile_incident())
def test_fuzz_parse_incident_raises_only_contract_errors_and_accepts_only_renderable(
    fields: dict[bytes | str, bytes | str],
) -> None:
    try:
        msg = parse_incident(fields, categories=CATS, now=NOW)
    except ContractError as error:
        event(f"refused: {error.code}")
        assert error.code and len(error.reason) <= REASON_MAX
        error.reason.encode("utf-8")
        return
    event("accepted")
    assert_renderable(msg)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    extra=st.dictionaries(hostile_name, hostile_text, max_size=3),
    ts=extreme_time(),
    skew=st.sampled_from([900, None]),
)
def test_fuzz_parse_ping_raises_only_contract_errors_and_accepts_only_renderable(
    extra: dict[str, str], ts: str, skew: int | None
) -> None:
    fields: dict[bytes | str, bytes | str] = {**ping(ts=ts)}
    fields.update({_raw(k): _raw(v) for k, v in extra.items()})
    try:
        msg = parse_ping(fields, now=NOW, skew_s=skew)
    except ContractError as error:
        event(f"refused: {error.code}")
        assert error.code and len(error.reason) <= REASON_MAX
        return
    event("accepted")
    assert_renderable(msg)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fields=st.dictionaries(hostile_name.map(_raw), hostile_text.map(_raw), max_size=5))
def test_fuzz_parse_change_raises_only_contract_errors(
    fields: dict[bytes | str, bytes | str],
) -> None:
    try:
        case_id = parse_change(fields)
    except ContractError as error:
        assert error.code and len(error.reason) <= REASON_MAX
        return
    assert ID_RE.fullmatch(case_id)
