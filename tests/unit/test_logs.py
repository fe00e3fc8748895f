"""Log lines stay cheap and bounded whatever an entry holds (issue 11, point 3).

The redaction's patterns used to rescan a long word from every position (quadratic: a
10,000-character field name took 1.6 s, a megabyte minutes), stalling the worker between
its commit and its Redis step. They are linear by construction now (dashboard/logs.py);
these tests run them on megabytes of the worst shapes for each pattern — on the old
patterns the first one alone would not finish within the suite's timeout."""

from __future__ import annotations

import logging
import sys

import pytest

from dashboard.logs import LOG_LINE_MAX, RedactingFilter, clip, redact

MB = 1024 * 1024


def test_a_five_megabyte_word_is_redacted_and_secrets_around_it_are_masked() -> None:
    huge = "unknown field " + "a" * (5 * MB)
    message = f"redis://:hunter2@db:6379/0 {huge} token=lq_abcdefghijklmnop&x=1"
    clean = redact(message)
    assert "hunter2" not in clean and "abcdefghijklmnop" not in clean
    assert clean.endswith("token=***&x=1") and len(clean) < len(message)


@pytest.mark.parametrize(
    "shape",
    [
        "a://b:",  # every position a scheme, a user and a password that never ends in "@"
        "a" * 31 + "://",  # long schemes, back to back
        "x:// ",
        "lq_",  # a token prefix, over and over
        "lq_abc ",  # token prefixes too short to match
        "token=",
        "Password=",
        "a+b.c-d",  # the characters the URL pattern's look-behind skips
        "x a://u:p@h lq_abcdefghij token=1&",
    ],
)
def test_every_pattern_is_linear_on_a_megabyte_of_its_worst_shape(shape: str) -> None:
    message = shape * (MB // len(shape))
    assert isinstance(redact(message), str)


@pytest.mark.parametrize(
    ("prefix", "tail"), [("a://", "b"), ("a://b:", "c"), ("a://b:c", "d"), ("", "ab")]
)
def test_a_megabyte_run_after_a_partial_url_is_linear(prefix: str, tail: str) -> None:
    assert redact(prefix + tail * MB).startswith(prefix)


def test_the_log_filter_cuts_a_huge_record_after_masking_it() -> None:
    record = logging.LogRecord(
        "lianqin", logging.INFO, __file__, 1, "dead-lettered %s: %s",
        ("x" * (3 * MB), "password=hunter2"), None,
    )  # fmt: skip
    assert RedactingFilter().filter(record)
    line = record.getMessage()
    assert len(line) < LOG_LINE_MAX + 100 and "more characters" in line
    assert "hunter2" not in line
    assert clip("short") == "short"


def test_a_traceback_is_masked_and_cut_too() -> None:
    try:
        raise ValueError("password=hunter2 " + "x" * (2 * MB))
    except ValueError:
        record = logging.LogRecord(
            "lianqin", logging.ERROR, __file__, 1, "failed", None, sys.exc_info()
        )
    assert RedactingFilter().filter(record)
    line = logging.Formatter().format(record)
    assert "hunter2" not in line and len(line) < LOG_LINE_MAX + 200
