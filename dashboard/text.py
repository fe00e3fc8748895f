"""Bytes to text, the one helper for every Redis reply (redis-py hands back ``bytes``).

A leaf module: it imports nothing of Lianqin, so anything may use it.
"""

from __future__ import annotations

from typing import Any


def as_str(value: Any, errors: str = "strict") -> str:
    """``value`` as text: bytes decoded as UTF-8 (``errors`` as for ``bytes.decode``:
    ``"strict"`` raises on invalid bytes, ``"replace"`` puts U+FFFD in their place), anything
    else through ``str``."""
    return value.decode("utf-8", errors) if isinstance(value, bytes) else str(value)
