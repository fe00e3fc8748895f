"""Alembic migrations (the schema is managed by Alembic from the first table)."""
