"""Every rule of the stream contract v1 (CONTRACT.md), one test or more each."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dashboard.config import Settings
from dashboard.contract import (
    INCIDENT_FIELDS,
    PING_FIELDS,
    STATUSES,
    ContractError,
    parse_incident,
    parse_ping,
)
from dashboard.geo import wgs84_to_gcj02

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
