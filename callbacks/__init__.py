"""Dash callbacks, one module per page or feature, each exposing ``register(app)``."""

from __future__ import annotations

from dash import Dash


def register_all(app: Dash) -> None:
    from callbacks import dispatch, router, trends

    router.register(app)
    dispatch.register(app)
    trends.register(app)
