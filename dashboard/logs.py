"""Logs: every line redacted (passwords in URLs, tokens) and clipped, optionally as JSON
(``LIANQIN_LOG_FORMAT=json``); ``setup_logging`` wires them for every CLI process."""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any

from dashboard.config import load_settings


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s",
    )
    try:
        json_logs = load_settings().log_format == "json"
    except Exception:  # invalid settings are reported by the command itself
        json_logs = False
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactingFilter())  # no passwords or tokens in any log line
        if json_logs:
            handler.setFormatter(JsonFormatter())
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("engineio").setLevel(logging.WARNING)
    logging.getLogger("socketio").setLevel(logging.WARNING)


# Linear time by construction, whatever a line holds (a field name of megabytes): every
# pattern starts with a literal or at the start of a word (the look-behind fails at once
# inside a word, where ``\w+`` used to rescan the rest of the word from every position),
# and every repetition is bounded or stops at a character that also ends the next match.
# No log line is longer than LOG_LINE_MAX characters either.
_SECRETS = (
    # user:password@ in URLs; the password stops at "/" (it would be percent-encoded)
    (
        re.compile(r"(?<![\w+.-])([A-Za-z][\w+.-]{0,31}://[^:/@\s]{0,256}:)[^@\s/]{1,256}@"),
        r"\1***@",
    ),
    (re.compile(r"lq_[A-Za-z0-9_-]{8,}"), "lq_***"),  # API and kiosk tokens
    (re.compile(r"((?:token|password|secret)=)[^&\s]+", re.I), r"\1***"),
)
LOG_LINE_MAX = 16_000


def clip(message: str, limit: int = LOG_LINE_MAX) -> str:
    """A log line cut to ``limit`` characters, saying how much was cut."""
    if len(message) <= limit:
        return message
    return f"{message[:limit]}… ({len(message) - limit} more characters)"


def redact(message: str) -> str:
    for pattern, replacement in _SECRETS:
        message = pattern.sub(replacement, message)
    return message


class RedactingFilter(logging.Filter):
    """Masks passwords in URLs, tokens and ``password=``/``token=`` values in every record,
    its traceback included, and cuts each longer than ``LOG_LINE_MAX`` characters (masking
    first: a secret that straddles the cut is masked whole)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = clip(redact(message))
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:  # formatters use exc_text when it is set
            record.exc_text = clip(redact(_TRACEBACKS.formatException(record.exc_info)))
        return True


_TRACEBACKS = logging.Formatter()


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, process, message (and the exception)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            out["exc"] = record.exc_text or clip(redact(self.formatException(record.exc_info)))
        return json.dumps(out, ensure_ascii=False)


JsonFormatter.converter = time.gmtime
