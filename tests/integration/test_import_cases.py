"""`lianqin import cases`: the two public 311 samples straight into the real database, checked
against an independent read of the CSV files (the csv module and the documented mapping,
not the importer's code), idempotent re-import, our own CSV format, and the CLI."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner
from helpers import dataset
from sqlalchemy import func, select

from dashboard.cli import main
from dashboard.config import Settings
from dashboard.geo import GridIndex
from dashboard.imports.cases import IMPORTERS, ImportResult, LoadSummary, load_cases
from dashboard.models import Case, CaseEvent
from dashboard.runtime import Runtime

BOSTON = dataset("boston311-100.csv")
NYC = dataset("nyc311-sample.csv")
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
# The README's mapping of NYC statuses, written out again here.
NYC_STAGE = {"Open": "reported", "Pending": "registered", "Assigned": "dispatched"}


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        return list(csv.DictReader(handle))


def expected_boston() -> dict[str, str]:
    out = {}
    for row in rows(BOSTON):
        closed = row["case_status"] == "Closed" and row["closed_dt"].strip()
        out["BOS-" + row["case_enquiry_id"]] = "closed" if closed else "reported"
    return out


def expected_nyc() -> tuple[dict[str, str], int]:
    out = {}
    no_point = 0
    for row in rows(NYC):
        if not row["Latitude"] or not row["Longitude"]:
            no_point += 1
            continue
        status = row["Status"]
        if status == "Closed":
            out["NYC-" + row["Unique Key"]] = "closed" if row["Closed Date"] else "reported"
        else:
            out["NYC-" + row["Unique Key"]] = NYC_STAGE[status]
    return out, no_point


def load(runtime: Runtime, fmt: str, path: Path) -> tuple[ImportResult, LoadSummary]:
    result = IMPORTERS[fmt](path)
    with runtime.db.write() as session:
        summary = load_cases(
            session, result.cases, source=fmt, categories=runtime.settings.categories,
            policy=runtime.policy, grids=GridIndex([]), now=NOW,
        )  # fmt: skip
    return result, summary


def statuses(runtime: Runtime, prefix: str) -> dict[str, str]:
    with runtime.db.read() as session:
        rows = session.execute(select(Case.id, Case.status).where(Case.id.like(f"{prefix}%")))
        return {case_id: status for case_id, status in rows}


def test_boston_sample_imports_cleanly(runtime: Runtime) -> None:
    _, summary = load(runtime, "boston311", BOSTON)
    expected = expected_boston()
    assert len(expected) == 100
    assert summary.loaded == 100 and summary.skipped == []
    assert statuses(runtime, "BOS-") == expected
    with runtime.db.read() as session:
        case = session.get(Case, "BOS-101004120108")
        assert case is not None
        # 2022-01-08 12:54:49 in Boston (EST, -05:00) → 17:54:49 UTC; closed the next morning.
        assert case.reported_at == datetime(2022, 1, 8, 17, 54, 49, tzinfo=UTC)
        assert case.closed_at == datetime(2022, 1, 9, 11, 43, 6, tzinfo=UTC)
        assert case.category == "environment"  # Street Cleaning
        assert case.department_id == "PWDx"
        events = session.scalar(
            select(func.count()).select_from(CaseEvent).where(CaseEvent.case_id == case.id)
        )
        assert events == 2  # the timeline: reported, closed


def test_nyc_sample_imports_cleanly(runtime: Runtime) -> None:
    result, summary = load(runtime, "nyc311", NYC)
    expected, no_point = expected_nyc()
    assert no_point == 6 and len(expected) == 193
    assert summary.loaded == 193 and summary.skipped == []
    assert [why for _, why in result.problems] == ["no coordinates"] * 6
    got = statuses(runtime, "NYC-")
    assert got == expected
    # 83 rows are Closed, 2 of them without coordinates (skipped).
    assert sum(1 for s in got.values() if s == "closed") == 81
    with runtime.db.read() as session:
        case = session.get(Case, "NYC-26594139")  # Noise - Commercial, closed 02:40:32 AM EDT
        assert case is not None
        assert case.category == "noise" and case.department_id == "NYPD"
        assert case.closed_at == datetime(2013, 10, 31, 6, 40, 32, tzinfo=UTC)
        assigned = session.get(Case, "NYC-26589651")  # Assigned at 02:35:17 AM
        assert assigned is not None and assigned.status == "dispatched"
        assert assigned.dispatched_at == datetime(2013, 10, 31, 6, 35, 17, tzinfo=UTC)
        # Issue 13: the agency is the case's one lead department assignment.
        from dashboard.models import Assignment

        rows = session.scalars(
            select(Assignment).where(Assignment.case_id.in_(["NYC-26594139", "NYC-26589651"]))
        ).all()
        got_rows = {(a.case_id, a.assignee_id, a.role, a.status) for a in rows}
        assert got_rows == {
            ("NYC-26594139", "NYPD", "lead", "done"),
            ("NYC-26589651", assigned.department_id, "lead", "dispatched"),
        }


def test_importing_twice_adds_nothing(runtime: Runtime) -> None:
    load(runtime, "nyc311", NYC)
    with runtime.db.read() as session:
        before = (
            session.scalar(select(func.count()).select_from(Case)),
            session.scalar(select(func.count()).select_from(CaseEvent)),
        )
    _, again = load(runtime, "nyc311", NYC)
    assert again.loaded == 0 and again.already == 193 and again.entries == 0
    with runtime.db.read() as session:
        after = (
            session.scalar(select(func.count()).select_from(Case)),
            session.scalar(select(func.count()).select_from(CaseEvent)),
        )
    assert after == before
    from dashboard.models import Assignment

    with runtime.db.read() as session:
        n = session.scalar(select(func.count()).select_from(Assignment))
        leads = session.scalar(select(func.count(func.distinct(Assignment.case_id))))
    assert n == leads  # one each, not two


def test_our_own_csv_with_a_bad_case(runtime: Runtime, tmp_path: Path) -> None:
    path = tmp_path / "cases.csv"
    path.write_text(
        "id,status,ts,lat,lon,category,source,title\n"
        "HZ-1,reported,2026-11-20T09:00:00+08:00,29.37,106.26,dispute,grid_app,邻里纠纷\n"
        "HZ-1,dispatched,2026-11-20T09:01:00+08:00,,,,,\n"
        "HZ-1,closed,2026-11-20T10:00:00+08:00,,,,,\n"
        "HZ-2,reported,2026-11-20T09:00:00+08:00,29.37,106.26,no_such_category,,x\n"
        ",reported,2026-11-20T09:00:00+08:00,29.37,106.26,dispute,,x\n",
        encoding="utf-8",
    )
    result, summary = load(runtime, "lianqin-csv", path)
    assert summary.loaded == 1
    assert [case for case, _ in summary.skipped] == ["HZ-2"]
    assert "unknown_category" in summary.skipped[0][1]
    assert result.problems == [(6, "no id")]
    assert statuses(runtime, "HZ-") == {"HZ-1": "closed"}


def test_the_cli_command(settings: Settings) -> None:
    env = {"DATABASE_URL": settings.database_url or "", "LIANQIN_DATA_DIR": str(settings.data_dir)}
    runner = CliRunner()
    first = runner.invoke(main, ["import", "cases", str(BOSTON), "--format", "boston311"], env=env)
    assert first.exit_code == 0, first.output
    assert "100 cases loaded" in first.output and "0 skipped" in first.output
    again = runner.invoke(main, ["import", "cases", str(BOSTON), "--format", "boston311"], env=env)
    assert "0 cases loaded (0 entries), 100 already there" in again.output


def test_a_file_of_another_format_stops_with_one_line_and_a_non_zero_exit(
    settings: Settings,
) -> None:
    """The NYC sample read as Boston used to print 199 "skipped: no case_enquiry_id" lines and
    exit 0: the header says at once that it is another format."""
    env = {"DATABASE_URL": settings.database_url or "", "LIANQIN_DATA_DIR": str(settings.data_dir)}
    runner = CliRunner()
    for fmt, path, other in (("boston311", NYC, "nyc311"), ("nyc311", BOSTON, "boston311"),
                             ("lianqin-csv", BOSTON, "boston311")):  # fmt: skip
        result = runner.invoke(main, ["import", "cases", str(path), "--format", fmt], env=env)
        assert result.exit_code == 1, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, lines
        assert f"not --format {fmt}'s" in lines[0] and f"looks like --format {other}" in lines[0]
        assert result.stdout == ""
    replayed = runner.invoke(main, ["replay", "boston311", str(NYC)], env=env)
    assert replayed.exit_code == 1 and len(replayed.stderr.strip().splitlines()) == 1


def test_a_run_that_skips_every_row_exits_non_zero(settings: Settings, tmp_path: Path) -> None:
    env = {"DATABASE_URL": settings.database_url or "", "LIANQIN_DATA_DIR": str(settings.data_dir)}
    path = tmp_path / "no-coordinates.csv"
    with BOSTON.open(encoding="utf-8-sig") as source:
        lines = source.read().splitlines()
    header = lines[0].split(",")
    rows_without_points = []
    for row in csv.DictReader(lines):
        row["latitude"] = row["longitude"] = ""
        rows_without_points.append(row)
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows_without_points[:5])
    result = CliRunner().invoke(
        main, ["import", "cases", str(path), "--format", "boston311"], env=env
    )
    assert result.exit_code == 1, result.output
    assert result.stderr.count("skipped: no coordinates") == 5
    assert "nothing imported: all 5 rows skipped" in result.stderr
    # A run that skips some rows but loads others still succeeds (the NYC sample: 6 skipped).
    partial = CliRunner().invoke(main, ["import", "cases", str(NYC), "--format", "nyc311"], env=env)
    assert partial.exit_code == 0 and "6 skipped" in partial.stdout


# -- time zones (issue 15): the file's local times, the deployment's LIANQIN_TZ ---------------


def _nyc_created_hours() -> dict[tuple[int, int], int]:
    """(weekday, hour) of each NYC row with coordinates, read from the CSV independently:
    `Created Date` is New York's wall clock."""
    counts: dict[tuple[int, int], int] = {}
    with NYC.open(encoding="utf-8-sig") as f:
        for row in csv.DictReader(f):
            if not row["Latitude"] or not row["Longitude"]:
                continue
            at = datetime.strptime(row["Created Date"], "%m/%d/%Y %I:%M:%S %p")
            counts[(at.weekday(), at.hour)] = counts.get((at.weekday(), at.hour), 0) + 1
    return counts


def _heatmap(runtime: Runtime, tz: str) -> dict[tuple[int, int], int]:
    from datetime import date
    from zoneinfo import ZoneInfo

    from dashboard.services.trends import TrendRequest, hour_of_week, resolve_period

    zone = ZoneInfo(tz)
    period = resolve_period(
        "custom", now=NOW, zone=zone, start=date(2013, 10, 29), end=date(2013, 11, 1)
    )
    with runtime.db.read() as session:
        matrix = hour_of_week(
            session, req=TrendRequest(period=period, granularity="hour", zone=zone)
        )
    return {(d, h): n for d, row in enumerate(matrix) for h, n in enumerate(row) if n}


def test_nyc_nights_fall_at_night_in_the_heatmap_of_a_new_york_deployment(
    settings: Settings, runtime: Runtime
) -> None:
    env = {
        "DATABASE_URL": settings.database_url or "",
        "LIANQIN_DATA_DIR": str(settings.data_dir),
        "LIANQIN_TZ": "America/New_York",
    }
    result = CliRunner().invoke(
        main,
        ["import", "cases", str(NYC), "--format", "nyc311", "--source-tz", "America/New_York"],
        env=env,
    )
    assert result.exit_code == 0, result.output
    assert "times read as America/New_York local time, stored in UTC" in result.stderr
    assert "shown in America/New_York (LIANQIN_TZ)" in result.stderr
    expected = _nyc_created_hours()
    # The sample is the night of Wed 30 → Thu 31 October 2013, 22:00–03:00 in New York.
    assert {h for _, h in expected} <= {22, 23, 0, 1, 2}
    assert _heatmap(runtime, "America/New_York") == expected
    # The same cases on a Beijing-time deployment: the same instants, twelve hours on.
    shanghai = _heatmap(runtime, "Asia/Shanghai")
    assert sum(shanghai.values()) == sum(expected.values())
    assert {h for _, h in shanghai} <= {10, 11, 12, 13, 14}


def test_source_tz_says_how_the_files_times_are_read(tmp_path: Path) -> None:
    from zoneinfo import ZoneInfo

    new_york = IMPORTERS["nyc311"](NYC, limit=1).cases[0]
    beijing = IMPORTERS["nyc311"](NYC, limit=1, source_tz=ZoneInfo("Asia/Shanghai")).cases[0]
    at_ny = datetime.fromisoformat(new_york.entries[0]["ts"])
    at_bj = datetime.fromisoformat(beijing.entries[0]["ts"])
    assert at_ny - at_bj == timedelta(hours=12)  # EDT (-4) vs China (+8)
    # Our own CSV: times need their offset, unless --source-tz says whose local time it is.
    path = tmp_path / "ours.csv"
    path.write_text(
        "id,status,ts,lat,lon,category\nT-1,reported,2026-11-20 08:00:00,30.27,120.15,noise\n",
        encoding="utf-8",
    )
    entry = IMPORTERS["lianqin-csv"](path, source_tz=ZoneInfo("Asia/Shanghai")).cases[0].entries[0]
    assert entry["ts"] == "2026-11-20T08:00:00.000+08:00"
    assert IMPORTERS["lianqin-csv"](path).cases[0].entries[0]["ts"] == "2026-11-20 08:00:00"


def test_an_unknown_source_tz_is_one_line(settings: Settings) -> None:
    env = {"DATABASE_URL": settings.database_url or "", "LIANQIN_DATA_DIR": str(settings.data_dir)}
    result = CliRunner().invoke(
        main, ["import", "cases", str(NYC), "--format", "nyc311", "--source-tz", "Mars/Olympus"],
        env=env,
    )  # fmt: skip
    assert result.exit_code == 1
    assert len(result.stderr.strip().splitlines()) == 1 and "Mars/Olympus" in result.stderr
