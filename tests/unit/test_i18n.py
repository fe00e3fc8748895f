"""The UI strings (dashboard/data/i18n/<lang>.json, read by dashboard/i18n.py): every key in
every language, every key the code asks for present, and a missing key fails in tests."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest

from dashboard import i18n
from dashboard.vocabulary import LANGUAGES

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "dashboard" / "data" / "i18n"
LITERAL_KEY = re.compile(r"\bt\(\s*\w+\s*,\s*[\"']([A-Za-z0-9_]+)[\"']\s*\)")


def test_one_file_per_language_with_every_section() -> None:
    assert sorted(p.stem for p in DATA.glob("*.json")) == sorted(LANGUAGES)
    for lang in LANGUAGES:
        data = json.loads((DATA / f"{lang}.json").read_text(encoding="utf-8"))
        assert set(data) == set(i18n.SECTIONS), lang
        for section, table in data.items():
            assert all(isinstance(v, str) for v in table.values()), (lang, section)


@pytest.mark.parametrize("section", i18n.SECTIONS)
def test_every_key_exists_in_every_language(section: str) -> None:
    tables = {lang: i18n.load_language(lang)[section] for lang in LANGUAGES}
    every = set().union(*(set(table) for table in tables.values()))
    for lang, table in tables.items():
        assert not every - set(table), f"{lang}.json {section!r} lacks {sorted(every - set(table))}"


def test_every_literal_key_the_code_asks_for_exists() -> None:
    """``t(lang, "key")`` with a literal key, anywhere in the app's Python."""
    asked = set()
    for path in [*ROOT.glob("dashboard/**/*.py"), *ROOT.glob("layouts/*.py"),
                 *ROOT.glob("callbacks/*.py")]:  # fmt: skip
        asked |= set(LITERAL_KEY.findall(path.read_text(encoding="utf-8")))
    assert len(asked) > 100  # the pattern still finds them
    for lang in LANGUAGES:
        assert not asked - set(i18n.TEXT[lang]), (lang, sorted(asked - set(i18n.TEXT[lang])))


def test_a_missing_key_raises_in_strict_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIANQIN_I18N_STRICT", "1")  # what tests/conftest.py sets
    assert i18n.t("en", "wall_title") == "Lianqin Command Center · Live"
    with pytest.raises(i18n.MissingText, match="no_such_key"):
        i18n.t("en", "no_such_key")
    with pytest.raises(i18n.MissingText):
        i18n.t("fr", "wall_title")


def test_a_missing_key_falls_back_with_a_warning_in_production(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("LIANQIN_I18N_STRICT", raising=False)
    monkeypatch.setitem(i18n.TEXT, "en", {k: v for k, v in i18n.TEXT["en"].items()
                                          if k != "wall_title"})  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="dashboard.i18n"):
        assert i18n.t("en", "wall_title") == i18n.TEXT["zh-CN"]["wall_title"]  # the default
        assert i18n.t("en", "no_such_key_either") == "no_such_key_either"  # then the key
    assert "wall_title" in caplog.text and "no_such_key_either" in caplog.text
