"""The dead-letter stream `lq:dead`: read, re-drive and purge (``lianqin dead …``).

A dead letter (``dead_letter_fields``) holds where it came from
(``stream``, ``entry``), why (``code``, ``reason``, ``field``), who (``consumer``),
when (``at``) and the original fields byte for byte as ``f:<name>``. Retrying adds
those original fields again, unchanged, to their source stream (a new entry, so the
workers validate it afresh) and removes the dead letter, in one MULTI.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import redis

from dashboard.config import Settings
from dashboard.streams import Keys, now_utc
from dashboard.text import as_str

_META = ("stream", "entry", "code", "reason", "field", "consumer", "at")


def _raw(value: Any) -> bytes:
    """A field name or value for a dead letter: bytes as they are; text as UTF-8, with a lone
    surrogate kept as its (invalid) bytes rather than failing the whole dead letter."""
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8", "surrogatepass")


def dead_letter_fields(
    *,
    stream: str,
    entry_id: str,
    code: str,
    reason: str,
    field: str | None,
    raw: Mapping[bytes, bytes],
    consumer: str,
) -> dict[bytes | str, bytes | str]:
    """A dead letter: why, where from, and the original fields byte for byte (``f:<name>``)."""
    out: dict[bytes | str, bytes | str] = {
        "stream": stream,
        "entry": entry_id,
        "code": code,
        "reason": reason,
        "field": field or "",
        "consumer": consumer,
        "at": now_utc().isoformat(timespec="milliseconds"),
    }
    for name, value in raw.items():
        out[b"f:" + _raw(name)] = _raw(value)
    return out


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: str
    meta: dict[str, str]
    fields: dict[bytes, bytes]  # the original entry, byte for byte

    @property
    def stream(self) -> str:
        return self.meta.get("stream", "")

    @property
    def code(self) -> str:
        return self.meta.get("code", "")

    def fields_text(self) -> dict[str, str]:
        """The original fields for people: text where it is UTF-8, escaped bytes where not."""
        out = {}
        for name, value in self.fields.items():
            try:
                text = value.decode("utf-8")
            except UnicodeDecodeError:
                text = repr(value)
            out[as_str(name, "backslashreplace")] = text
        return out

    def to_json(self, *, full: bool = True, limit: int = 200) -> dict[str, Any]:
        fields = self.fields_text()
        if not full:
            fields = {k: v if len(v) <= limit else v[:limit] + "…" for k, v in fields.items()}
        return {"id": self.id, **self.meta, "fields": fields}


def parse(entry_id: Any, raw: dict[bytes, bytes]) -> DeadLetter:
    meta: dict[str, str] = {}
    fields: dict[bytes, bytes] = {}
    for name, value in raw.items():
        if name.startswith(b"f:"):
            fields[name[2:]] = value
        else:
            meta[as_str(name, "replace")] = as_str(value, "replace")
    return DeadLetter(as_str(entry_id, "replace"), meta, fields)


def iterate(
    client: redis.Redis,
    keys: Keys,
    *,
    stream: str | None = None,
    code: str | None = None,
    batch: int = 500,
) -> Iterator[DeadLetter]:
    """Every dead letter, oldest first, optionally of one source stream and/or code."""
    start = "-"
    while True:
        chunk: Any = client.xrange(keys.dead, min=start, count=batch)
        if not chunk:
            return
        for entry_id, raw in chunk:
            letter = parse(entry_id, raw)
            if stream and letter.stream not in (stream, f"{keys.prefix}:{stream}"):
                continue
            if code and letter.code != code:
                continue
            yield letter
        start = "(" + as_str(chunk[-1][0], "replace")


def get(client: redis.Redis, keys: Keys, dead_id: str) -> DeadLetter | None:
    try:
        found: Any = client.xrange(keys.dead, min=dead_id, max=dead_id)
    except redis.ResponseError:
        return None  # not a stream id
    return parse(*found[0]) if found else None


class RetryError(ValueError):
    pass


def retry(client: redis.Redis, keys: Keys, settings: Settings, letter: DeadLetter) -> str:
    """Add the original fields again to their source stream; drop the dead letter."""
    maxlen = {
        keys.incidents: settings.stream_maxlen,
        keys.pings: settings.ping_stream_maxlen,
        keys.changes: settings.changes_maxlen,
    }
    if letter.stream not in maxlen:
        raise RetryError(f"{letter.id}: unknown source stream {letter.stream!r}")
    if not letter.fields:
        raise RetryError(f"{letter.id}: the dead letter holds no original fields")
    pipe = client.pipeline(transaction=True)
    pipe.xadd(letter.stream, letter.fields, maxlen=maxlen[letter.stream], approximate=True)  # type: ignore[arg-type]
    pipe.xdel(keys.dead, letter.id)
    new_id, _ = pipe.execute()
    return as_str(new_id, "replace")


def purge(client: redis.Redis, keys: Keys, ids: list[str]) -> int:
    if not ids:
        return 0
    return int(client.xdel(keys.dead, *ids))


META_FIELDS = _META
