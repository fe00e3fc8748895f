"""The pages' navigation follows the one policy table (issue 15: after login there was no
way between pages)."""

from __future__ import annotations

from typing import Any

import pytest

from dashboard.policy import PAGES, allowed, pages_for
from dashboard.vocabulary import ROLES
from dashboard.web.auth import PAGE_PERMISSIONS
from layouts.nav import create_nav


def hrefs(nav: Any) -> list[str]:
    return [link.href for link in nav.children]


def test_the_navigation_pages_agree_with_the_web_guard() -> None:
    for path, permission in PAGES:
        assert PAGE_PERMISSIONS[path] == permission


@pytest.mark.parametrize("role", ROLES)
def test_each_role_sees_only_the_pages_it_may_open(role: str) -> None:
    paths = pages_for(role)
    assert paths == [p for p, perm in PAGES if allowed(role, perm)]
    nav = create_nav(paths, current="/wall", lang="zh-CN")
    if len(paths) < 2:  # a kiosk wall: nowhere else to go, no bar
        assert nav is None
        return
    assert nav is not None and hrefs(nav) == paths
    here = [link for link in nav.children if link.className.endswith("lq-nav-here")]
    assert [link.href for link in here] == ["/wall"]


def test_the_roles_navigation() -> None:
    assert pages_for("viewer") == ["/wall"]
    assert pages_for("operator") == ["/wall", "/dispatch"]
    assert pages_for("leader") == ["/wall", "/trends"]
    assert pages_for("lead") == ["/wall", "/dispatch", "/trends"]


def test_the_navigation_keeps_a_language_override_and_speaks_the_ui_language() -> None:
    nav = create_nav(["/wall", "/dispatch"], current="/dispatch", lang="en", query="?lang=en")
    assert nav is not None
    assert hrefs(nav) == ["/wall?lang=en", "/dispatch?lang=en"]
    assert [link.children for link in nav.children] == ["Wall", "Dispatch"]
    zh = create_nav(["/wall", "/dispatch"], current="/dispatch", lang="zh-CN")
    assert zh is not None and [link.children for link in zh.children] == ["大屏", "调度台"]
