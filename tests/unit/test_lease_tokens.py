"""The lease's pure parts: who a token names, and the settings that keep a lease alive."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from dashboard.config import Settings
from dashboard.worker.leases import holder_of


@given(
    name=st.text(min_size=1, max_size=60),
    suffix=st.text(alphabet="0123456789abcdef", min_size=8, max_size=8),
)
def test_a_token_names_its_consumer_whatever_the_name_holds(name: str, suffix: str) -> None:
    token = f"{name}/{suffix}"
    assert holder_of(token) == name
    assert holder_of(token.encode()) == name  # as Redis returns it


def test_no_token_no_holder() -> None:
    assert holder_of(None) is None


def test_a_lease_shorter_than_a_blocking_read_is_refused() -> None:
    with pytest.raises(ValidationError, match="LIANQIN_LEASE_MS"):
        Settings(lease_ms=500, worker_block_ms=500)
    assert Settings(lease_ms=600, worker_block_ms=500).lease_ms == 600
    assert Settings().lease_ms > Settings().worker_block_ms
