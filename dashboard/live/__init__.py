"""The live path: the delta log, the publisher, the outbox relay, push latencies, the snapshot
and the Socket.IO namespace ``/live``.

Only ``namespace`` imports Flask: a worker appends and publishes deltas, relays the outbox and
records latencies (``deltas``, ``publisher``, ``outbox``, ``latency``) without a web framework;
``snapshot`` builds and shares snapshots for the web side, also without one. ``namespace`` is
the web side: ``LiveNamespace`` (a Flask-SocketIO ``Namespace``) and ``GET /live/snapshot``.
The browser's side of the protocol below is assets/lianqin-sync.js.

The one live path: a worker commits a batch, appends one *delta* (the new state
of every case and unit the batch touched) to the delta log — a bounded Redis
stream whose entry ids are the browsers' cursors, numbered by a gap-free
sequence — and publishes it through Socket.IO's Redis message queue to every web
instance, which forwards it to its browsers.

The protocol, namespace ``/live``:

* client → ``sync`` ``{cursor, seq}`` (both null on first load), acknowledged with
  either ``{mode: "catchup", deltas: [...], seq, cursor}`` — everything after the
  cursor, when the log still holds it — or, small, ``{mode: "snapshot", seq, cursor,
  url, bytes, at, kpis}``: the snapshot the client is to load is at ``url``
  (``GET /live/snapshot?day=…&seq=…&cursor=…``, gzip), never in the acknowledgement —
  tens of megabytes in one Socket.IO message held the connection past its ping
  timeout. The client buffers the deltas that arrive meanwhile, applies those after
  the snapshot's ``seq`` and catches up from the log if there is a gap between.
* Snapshots are built once and shared (``SnapshotStore``): the JSON of the whole
  live state, gzip-compressed, kept in Redis under its version (local day, sequence
  number and cursor it reflects) for ``snapshot_reuse_s`` plus 45 s. A screen that
  asks gets the latest one while it is younger than ``snapshot_reuse_s`` and at most
  ``REUSE_BEHIND`` deltas behind the head with the log still reaching back to it;
  otherwise one process of one web instance builds a new one under a Redis lock
  (``SET NX``) while every other request, on every instance, waits for it.
* server → ``delta`` ``{seq, cursor, at, d}`` where ``d`` is the JSON body
  ``{cases: [...], units: [...]}``; a client that sees a sequence gap asks ``sync``
  with its cursor (no silent gaps).
* server → ``tick`` ``{seq, cursor, at}`` every couple of seconds, so an idle
  screen still knows the pipeline is alive and can spot a missed last delta.
* server → ``kpis`` ``{k}`` where ``k`` is the JSON of the wall's KPI summary
  (dashboard/services/kpis.py ``wall_summary``), pushed by a worker at most about
  once a second after a change and on its sweep tick. It replaces the previous
  one whole, so it is not numbered; snapshots carry the latest copy as ``kpis``.
"""
