"""UI strings in zh-CN (the default: operators read Chinese) and English.

The strings are data, one file per language: dashboard/data/i18n/<lang>.json (shipped as
package data), each with the same sections — ``status``, ``category``, ``unit_status``,
``unit_kind``, ``source`` (code → name), ``text`` (the pages' strings, by key) and
``login`` (the sign-in and kiosk pages) — and the same keys in every language (a test
checks it: tests/unit/test_i18n.py).

``t(lang, key)`` looks a string up. A key missing from a language is a bug: with
``LIANQIN_I18N_STRICT`` set (the test suite sets it) it raises :class:`MissingText`;
otherwise it logs a warning (once per key) and falls back to the default language's
string, then to the key itself, so a screen never goes blank. The code → name tables
fall back to the code (categories are configurable: an unknown one shows its code).
"""

from __future__ import annotations

import functools
import json
import logging
from importlib import resources
from typing import Any

from dashboard.config import i18n_strict
from dashboard.vocabulary import DEFAULT_LANGUAGE, LANGUAGES, Lang

__all__ = [
    "CATEGORY_LABELS",
    "LANGUAGES",
    "LOGIN_TEXT",
    "SECTIONS",
    "SOURCE_LABELS",
    "STATUS_LABELS",
    "TEXT",
    "UNIT_KIND_LABELS",
    "UNIT_STATUS_LABELS",
    "Lang",
    "MissingText",
    "load_language",
    "status_label",
    "t",
]

log = logging.getLogger(__name__)

SECTIONS: tuple[str, ...] = (
    "status", "category", "unit_status", "unit_kind", "source", "text", "login",
)  # fmt: skip


class MissingText(KeyError):
    """A UI string missing from a language's table (raised in strict mode only)."""


def load_language(lang: str) -> dict[str, dict[str, str]]:
    """The tables of one language, read from dashboard/data/i18n/<lang>.json."""
    path = resources.files("dashboard").joinpath("data", "i18n", f"{lang}.json")
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    missing = [s for s in SECTIONS if not isinstance(data.get(s), dict)]
    if missing:
        raise ValueError(f"dashboard/data/i18n/{lang}.json lacks the sections {missing}")
    return {s: {str(k): str(v) for k, v in data[s].items()} for s in SECTIONS}


_TABLES: dict[str, dict[str, dict[str, str]]] = {lang: load_language(lang) for lang in LANGUAGES}


def _section(name: str) -> dict[str, dict[str, str]]:
    return {lang: tables[name] for lang, tables in _TABLES.items()}


STATUS_LABELS: dict[str, dict[str, str]] = _section("status")
CATEGORY_LABELS: dict[str, dict[str, str]] = _section("category")
UNIT_STATUS_LABELS: dict[str, dict[str, str]] = _section("unit_status")
UNIT_KIND_LABELS: dict[str, dict[str, str]] = _section("unit_kind")
SOURCE_LABELS: dict[str, dict[str, str]] = _section("source")
TEXT: dict[str, dict[str, str]] = _section("text")
LOGIN_TEXT: dict[str, dict[str, str]] = _section("login")


def t(lang: str, key: str) -> str:
    """The ``lang`` string of ``key`` (see the module's docstring for a missing one)."""
    value = TEXT.get(lang, {}).get(key)
    if value is not None:
        return value
    if i18n_strict():
        raise MissingText(f"no {lang!r} text for {key!r} (dashboard/data/i18n/{lang}.json)")
    _warn_missing(lang, key)
    return TEXT[DEFAULT_LANGUAGE].get(key, key)


@functools.lru_cache(maxsize=256)
def _warn_missing(lang: str, key: str) -> None:
    log.warning("no %s text for %r: showing the %s one or the key", lang, key, DEFAULT_LANGUAGE)


def status_label(lang: str, status: str) -> str:
    return STATUS_LABELS.get(lang, STATUS_LABELS[DEFAULT_LANGUAGE]).get(status, status)
