"""The domain vocabulary (dashboard/vocabulary.py): one definition of statuses, roles,
languages and KPIs, which every surface reads instead of listing them again."""

from __future__ import annotations

from dashboard import i18n, lifecycle
from dashboard.contract import entries
from dashboard.models import Case
from dashboard.services import accounts, kpis, trends
from dashboard.vocabulary import (
    KPI_NAMES,
    KPIS,
    LANGUAGES,
    NOT_TERMINAL,
    OPEN_STATUSES,
    RANK,
    ROLES,
    STAGE_COLUMNS,
    STATUSES,
    TERMINAL,
    Status,
    pick_language,
    status_config,
)
from layouts.wall import KPI_TILES, live_config


def test_statuses_in_lifecycle_order_with_their_facts() -> None:
    assert STATUSES == ("reported", "registered", "dispatched", "on_scene", "resolved",
                        "closed", "cancelled")  # fmt: skip
    assert [s for s in STATUSES if s in RANK] == sorted(RANK, key=RANK.__getitem__)
    assert Status.CANCELLED.rank is None and "cancelled" not in RANK
    assert TERMINAL == {"closed", "cancelled"}
    assert OPEN_STATUSES == ("reported", "registered", "dispatched", "on_scene")
    assert NOT_TERMINAL == (*OPEN_STATUSES, "resolved")
    resolved = Status("resolved")
    assert not resolved.open and not resolved.terminal  # awaiting verification
    assert Status.CLOSED == "closed" and {"closed": 1}[Status.CLOSED] == 1


def test_every_stage_column_is_a_column_of_cases() -> None:
    columns = set(Case.__table__.columns.keys())
    assert set(STAGE_COLUMNS) == set(STATUSES)
    assert set(STAGE_COLUMNS.values()) <= columns


def test_the_contract_and_the_lifecycle_use_the_same_statuses() -> None:
    assert entries.STATUSES == STATUSES
    assert lifecycle.TERMINAL is TERMINAL
    assert lifecycle.may_reopen("closed") and not lifecycle.may_reopen("resolved")


def test_roles_and_languages_defined_once() -> None:
    assert ROLES == ("viewer", "operator", "lead", "leader", "admin")
    assert set().union(*accounts.PERMISSIONS.values()) == set(ROLES)
    assert LANGUAGES == ("zh-CN", "en")
    assert pick_language("en") == "en" and pick_language("fr", "zh-CN") == "zh-CN"
    assert pick_language(None, "en") == "en"


def test_the_kpi_registry_is_the_engine_s_names() -> None:
    assert kpis.KPI_NAMES == KPI_NAMES
    assert KPI_NAMES == (
        "reported", "open", "disposal_rate", "closure_rate", "on_time_rate", "overdue",
        "dispatch_p50_s", "dispatch_p90_s", "arrival_p50_s", "arrival_p90_s",
        "dispatch_within_target_rate", "arrival_within_target_rate", "rework_rate",
        "dispute_resolution_rate", "units_online", "coverage_5min",
        # responders (issue 13)
        "joint_rate", "acceptance_p50_s", "acceptance_p90_s", "on_time_acceptance_rate",
        "transfer_count", "return_count", "callback_rate", "satisfaction_rate",
    )  # fmt: skip
    assert {k.format for k in KPIS.values()} == {"count", "rate", "duration", "units"}
    for kpi in KPIS.values():
        assert (kpi.format == "rate") == (kpi.unit == "fraction")
        assert (kpi.format == "duration") == (kpi.unit == "s")
        assert kpi.better in ("up", "down", "")


def test_every_surface_reads_figures_the_registry_knows() -> None:
    assert {name for name, _ in KPI_TILES} <= set(KPIS)
    assert {sub for _, sub in KPI_TILES if sub} <= set(KPIS)
    assert set(trends.COMPARED) <= set(KPIS)
    assert set(trends.SERIES_COLUMNS) <= set(KPIS)
    # The league table's raw counts are exported as they are; its figures are registered.
    assert set(trends.DEPARTMENT_COLUMNS) - {"department", "resolved"} <= set(KPIS)


def test_every_label_key_exists_in_every_language() -> None:
    keys = {k.label for k in KPIS.values()} | {k.title for k in KPIS.values() if k.title}
    for lang in LANGUAGES:
        missing = [key for key in keys if key not in i18n.TEXT[lang]]
        assert not missing, (lang, missing)


def test_the_page_config_carries_the_statuses_and_the_kpis() -> None:
    config = live_config(lang="zh-CN", tz="Asia/Shanghai")
    assert config["statuses"] == status_config()
    assert config["statuses"]["order"] == list(STATUSES)
    assert set(config["statuses"]["terminal"]) == TERMINAL
    assert config["kpis"]["disposal_rate"] == {"unit": "fraction", "format": "rate",
                                               "better": "up"}  # fmt: skip
    assert config["kpis"]["reported"]["better"] == ""
    assert set(config["colors"]) == set(STATUSES)
