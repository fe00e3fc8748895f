"""Lianqin (联勤): the engine — config, database, streams, services, realtime, CLI."""
