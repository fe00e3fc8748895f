"""Dash layout builders: pure functions of their inputs (no DB, no Redis, no callbacks)."""
