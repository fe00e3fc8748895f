"""The WSGI entry point of a production web instance.

    gunicorn -w 1 --threads 100 -b 127.0.0.1:8050 dashboard.wsgi:app

One worker per instance: Flask-SocketIO keeps each browser's Socket.IO session in
the process that accepted it (threading mode, WebSocket through simple-websocket).
Scale out with more instances behind a proxy with sticky sessions; they share live
updates through Socket.IO's Redis message queue (README, "Deployment").

Building the app here, at import, is the point of this module: the server imports it
once per worker. Settings come from the environment (``REDIS_URL`` is required: a
production instance never starts an embedded Redis; ``DATABASE_URL``,
``LIANQIN_SECRET_KEY`` — see the README's configuration table).
"""

from __future__ import annotations

from dashboard.config import load_settings
from dashboard.web.app import create_app

_settings = load_settings()
if _settings.secret_key is None:
    # Every instance must sign sessions with the same key, and keep it across restarts.
    raise RuntimeError("LIANQIN_SECRET_KEY is not set (see the README, Deployment)")
app = create_app(_settings)
