"""What a server callback may be given: its arguments, checked before it runs.

The page's renderer only ever sends what its components hold, but anyone signed in can
POST anything to ``/_dash-update-component``. dashboard/web/bodies.py checks the request's
envelope (a known callback, its inputs and states in order, JSON that is not too deep
and holds no unstorable text); :func:`checked` then validates each argument strictly
against the callback's type hints (pydantic, no coercion: ``"1"`` is not ``1``, ``true``
is not a number). A mismatch is a 400 naming the parameter, never a 500 from deep inside
a service.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar, get_type_hints

from pydantic import TypeAdapter, ValidationError
from typing_extensions import TypedDict  # pydantic needs it on Python 3.11
from werkzeug.exceptions import BadRequest

from dashboard.vocabulary import Lang

F = TypeVar("F", bound=Callable[..., Any])


class CallbackInputError(BadRequest):
    """A callback argument of the wrong shape (answered 400 in the API's error shape)."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"callback input {name}: {problem}")
        self.field = name


class ConsoleContext(TypedDict):
    """The dispatch console's fixed context (layouts/dispatch.py ``DISPATCH_LANG``). The
    callbacks take the time zone from the settings, never from this client-held copy."""

    lang: Lang
    tz: str
    departments: dict[str, str]


class CaseRequest(TypedDict, total=False):
    """Which case to open (assets/lianqin-dispatch.js writes ``{id, n}``). ``accept`` is the
    version the lead has seen and accepted: the result of their own action, or the version
    they confirmed after someone else changed the case (callbacks/dispatch.py)."""

    id: str | None
    accept: int


class CaseState(TypedDict, total=False):
    """The open case as the lead last accepted it: ``version`` is the one their actions are
    based on; ``latest`` is set while a newer version (someone else's change) waits for their
    confirmation."""

    id: str
    version: int
    status: str
    unit: str | None
    department: str | None
    priority: int
    lat: float | None
    lon: float | None
    latest: int


class BulkRequest(TypedDict, total=False):
    """The ticked rows for a bulk action: ``{cases: [{id, version}], n}``."""

    cases: list[dict[str, Any]]


def _problem(exc: ValidationError) -> str:
    first = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(p) for p in first.get("loc", ()))
    return f"{where + ': ' if where else ''}{first.get('msg', 'invalid')}"[:200]


def checked(func: F) -> F:
    """Validate a callback's arguments against its annotations before it runs."""
    hints = get_type_hints(func)
    names = list(inspect.signature(func).parameters)
    for name in names:
        if hints.get(name, Any) is Any:
            raise TypeError(f"{func.__name__}: give {name} a type, not Any")
    adapters: list[TypeAdapter[Any]] = [TypeAdapter(hints[name]) for name in names]

    @functools.wraps(func)
    def wrapper(*args: Any) -> Any:
        if len(args) != len(adapters):
            raise CallbackInputError("arguments", f"{len(adapters)} expected, got {len(args)}")
        values = []
        for name, adapter, value in zip(names, adapters, args, strict=True):
            try:
                values.append(adapter.validate_python(value, strict=True))
            except ValidationError as exc:
                raise CallbackInputError(name, _problem(exc)) from None
        return func(*values)

    return wrapper  # type: ignore[return-value]
