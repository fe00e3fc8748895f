"""The delta log: the bounded, numbered Redis stream of deltas the browsers catch up from
(the protocol: dashboard/live/__init__.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import redis

from dashboard.streams import Keys
from dashboard.text import as_str

MAX_CATCHUP = 500

_APPEND_LUA = """
local seq = redis.call('INCR', KEYS[2])
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'seq', seq, 'd', ARGV[1])
return {seq, id}
"""


@dataclass(frozen=True, slots=True)
class Head:
    seq: int
    cursor: str | None


class DeltaLog:
    """The bounded, numbered log of deltas in Redis."""

    def __init__(self, client: redis.Redis, keys: Keys, maxlen: int) -> None:
        self.client = client
        self.keys = keys
        self.maxlen = maxlen
        self._append = client.register_script(_APPEND_LUA)

    def append(self, body_json: str, pipe: Any = None) -> Any:
        """Append a delta; returns (seq, cursor), or queues it on ``pipe`` (a MULTI pipeline)."""
        args: list[Any] = [body_json, self.maxlen]
        keys = [self.keys.deltas, self.keys.delta_seq]
        if pipe is not None:
            return self._append(keys=keys, args=args, client=pipe)
        seq, entry_id = self._append(keys=keys, args=args)
        return int(seq), as_str(entry_id)

    def head(self) -> Head:
        last: Any = self.client.xrevrange(self.keys.deltas, count=1)
        if not last:
            seq = self.client.get(self.keys.delta_seq)
            return Head(int(seq or 0), None)
        entry_id, fields = last[0]
        return Head(int(fields[b"seq"]), as_str(entry_id))

    def since(self, cursor: str, seq: int) -> list[dict[str, Any]] | None:
        """Deltas after ``cursor``, or None when the log no longer holds them all."""
        try:
            entries: Any = self.client.xrange(
                self.keys.deltas, min=f"({cursor}", count=MAX_CATCHUP + 1
            )
        except redis.ResponseError:
            return None  # a malformed cursor: answer with a snapshot
        if len(entries) > MAX_CATCHUP:
            return None
        out = [to_message(e) for e in entries]
        if out and out[0]["seq"] != seq + 1:
            return None  # trimmed past the client's position, or from another epoch
        if not out and self.head().seq != seq:
            return None
        return out


def to_message(entry: tuple[bytes, dict[bytes, bytes]]) -> dict[str, Any]:
    entry_id, fields = entry
    cursor = as_str(entry_id)
    return {
        "seq": int(fields[b"seq"]),
        "cursor": cursor,
        "at": int(cursor.split("-", 1)[0]),
        "d": as_str(fields[b"d"]),
    }


def body(cases: list[dict[str, Any]], units: list[dict[str, Any]]) -> str:
    return json.dumps({"cases": cases, "units": units}, ensure_ascii=False, separators=(",", ":"))


def body_encoded(cases_json: list[str], units_json: list[str]) -> str:
    """``body`` with the cases and units already encoded one by one (compact,
    ``ensure_ascii=False``): the same JSON text. The worker encodes them inside its database
    transaction, so that a value that cannot be encoded fails before the commit."""
    return '{"cases":[' + ",".join(cases_json) + '],"units":[' + ",".join(units_json) + "]}"
