"""Lianqin (联勤): the engine — config, database, stream contract, live path, worker, services,
web, API, CLI (the layout: README, "Layout")."""
