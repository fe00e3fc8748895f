/*
 * Lianqin live sync: the client side of the /live protocol, without the DOM (the protocol:
 * dashboard/live/__init__.py). It keeps the page's sequence number and cursor, holds the
 * deltas that arrive while a sync is under way, applies them in order, sees gaps, the
 * server's sequence going backwards (a new epoch: Redis was reset) and a missed last delta
 * (a tick ahead of us), and asks `sync` again — backing off with full jitter when a sync
 * fails. What "apply", "ask" and "fetch" mean is the page's business (assets/lianqin-live.js
 * draws markers); tests/js/sync.test.js drives it with fakes under Node
 * (`node --test tests/js/*.test.js`).
 *
 * Loaded as a browser script it sets window.lq.sync; under Node it is a CommonJS module.
 * Dash loads assets in alphabetical order, after lianqin-live.js: that file looks it up only
 * when it connects, once every script has run.
 */
(function (root, factory) {
  "use strict";
  var api = factory();
  if (typeof module === "object" && module.exports) {
    module.exports = api;
  } else {
    root.lq = root.lq || {};
    root.lq.sync = api;
  }
})(typeof self !== "undefined" ? self : this, function () {
  "use strict";

  // Reconnect and resync delays: a random delay in [0, min(30 s, 0.5 s × 2^attempt)].
  var BACKOFF_MIN = 500;
  var BACKOFF_MAX = 30000;
  // A tick ahead of our sequence may race the delta in flight: only if we stay behind this
  // long do we catch up.
  var BEHIND_MS = 1500;

  // "Full jitter": uniform in [0, min(max, min × 2^attempt)]. Socket.IO's own jitter keeps
  // each delay within ±k of the exponential step, and at the cap they all bunch at 30 s.
  function fullJitter(min, max, attempt, random) {
    return Math.floor((random || Math.random)() * Math.min(max, min * Math.pow(2, attempt)));
  }

  function Backoff(random) {
    this.attempts = 0;
    this.random = random || Math.random;
  }
  Backoff.prototype.next = function () {
    var delay = fullJitter(BACKOFF_MIN, BACKOFF_MAX, this.attempts, this.random);
    if (this.attempts < 32) this.attempts += 1;
    return delay;
  };
  Backoff.prototype.reset = function () {
    this.attempts = 0;
  };

  /*
   * host = {
   *   state: {seq, cursor},           // written here (window.lianqin on the page)
   *   stats: {resyncs},               // optional: counted here
   *   applyDelta(msg),                // a delta {seq, cursor, at, d}: its body, drawn
   *   loadSnapshot(snapshot),         // a snapshot (GET /live/snapshot's body), drawn
   *   ask(request, done(err, reply)), // emit `sync` (with a timeout)
   *   snapshotAnswer(reply),          // optional: a `sync` answered "snapshot" (clock, KPIs)
   *   fetchSnapshot(url, done(err, snapshot)),
   *   connected() -> bool,
   *   now(), setTimeout(fn, ms), clearTimeout(timer), random(), warn(text)  // optional
   * }
   * The sequence number and cursor move only after applyDelta / loadSnapshot returned: a
   * delta that fails to apply leaves a gap, which is then caught up, never a silent hole.
   */
  function Sync(host) {
    this.host = host;
    this.state = host.state;
    this.syncing = false;
    this.gen = 0; // bumped by each sync and each disconnect: late answers are ignored
    this.pending = [];
    this.behindSince = null;
    this.retry = new Backoff(host.random);
    this.retryTimer = null;
  }

  Sync.prototype._now = function () {
    return this.host.now ? this.host.now() : Date.now();
  };

  Sync.prototype.apply = function (msg) {
    this.host.applyDelta(msg);
    this.state.seq = msg.seq;
    this.state.cursor = msg.cursor;
  };

  Sync.prototype.loadSnapshot = function (snapshot) {
    this.host.loadSnapshot(snapshot);
    this.state.seq = snapshot.seq;
    this.state.cursor = snapshot.cursor;
  };

  Sync.prototype.onConnect = function () {
    this.resync();
  };

  Sync.prototype.onDisconnect = function () {
    this.syncing = false;
    this.gen += 1; // an answer to the old socket's sync is not awaited any more
  };

  Sync.prototype.onDelta = function (msg) {
    var state = this.state;
    if (this.syncing || state.seq === null) {
      this.pending.push(msg);
      return;
    }
    if (msg.seq <= state.seq) return; // already applied (a replay)
    if (msg.seq !== state.seq + 1) {
      this.pending.push(msg);
      this.resync();
      return;
    }
    this.apply(msg);
  };

  // The heartbeat's part in the protocol (the page shows "degraded" ticks itself and does
  // not pass them here).
  Sync.prototype.onTick = function (tick) {
    var state = this.state;
    if (this.syncing || state.seq === null) return;
    if (tick.seq < state.seq) {
      // The server's sequence went backwards: a new epoch (Redis reset). Start over.
      this.pending = [];
      this.resync(true);
      return;
    }
    if (tick.seq > state.seq) {
      // A delta may still be in flight; only if we stay behind do we catch up.
      if (this.behindSince === null) this.behindSince = this._now();
      else if (this._now() - this.behindSince > BEHIND_MS) {
        this.behindSince = null;
        this.resync();
      }
    } else {
      this.behindSince = null;
    }
  };

  Sync.prototype.flushPending = function () {
    var state = this.state;
    var list = this.pending.sort(function (a, b) {
      return a.seq - b.seq;
    });
    this.pending = [];
    for (var i = 0; i < list.length; i++) {
      var m = list[i];
      if (state.seq !== null && m.seq <= state.seq) continue;
      if (state.seq === null || m.seq === state.seq + 1) {
        this.apply(m);
      } else {
        this.pending = list.slice(i);
        this.resync();
        return;
      }
    }
  };

  Sync.prototype.retrySync = function (fresh) {
    var self = this;
    var host = this.host;
    this.syncing = false;
    (host.clearTimeout || clearTimeout)(this.retryTimer);
    this.retryTimer = (host.setTimeout || setTimeout)(function () {
      self.resync(fresh);
    }, this.retry.next());
  };

  // Ask `sync` with our cursor (or, ``fresh``, with none: a new epoch), then apply the
  // deltas we missed or fetch the snapshot it names; deltas arriving meanwhile wait.
  Sync.prototype.resync = function (fresh) {
    var self = this;
    var host = this.host;
    var state = this.state;
    if (!host.connected()) return;
    if (this.syncing) return;
    this.syncing = true;
    if (host.stats) host.stats.resyncs += 1;
    var gen = (this.gen += 1);
    var ask = fresh ? { cursor: null, seq: null } : { cursor: state.cursor, seq: state.seq };
    host.ask(ask, function (err, reply) {
      if (gen !== self.gen) return; // a reconnect or a newer sync took over
      if (err || !reply || (reply.mode !== "snapshot" && reply.mode !== "catchup")) {
        self.retrySync(fresh);
        return;
      }
      if (reply.mode === "snapshot") {
        if (host.snapshotAnswer) host.snapshotAnswer(reply);
        self.fetchSnapshot(reply.url, gen, fresh); // deltas keep arriving into `pending`
        return;
      }
      self.syncing = false;
      self.retry.reset();
      for (var i = 0; i < reply.deltas.length; i++) {
        var m = reply.deltas[i];
        if (m.seq === state.seq + 1) self.apply(m);
      }
      self.flushPending();
    });
  };

  // ``done`` may be called a second time with an error when loading the snapshot threw
  // (a promise's catch after its then): then the sync is retried.
  Sync.prototype.fetchSnapshot = function (url, gen, fresh) {
    var self = this;
    var host = this.host;
    host.fetchSnapshot(url, function (err, snapshot) {
      if (gen !== self.gen) return;
      if (err) {
        if (host.warn) host.warn("live snapshot: " + (err && err.message));
        self.retrySync(fresh);
        return;
      }
      self.syncing = false;
      self.retry.reset();
      self.loadSnapshot(snapshot);
      self.flushPending(); // the deltas after the snapshot's number, or a catch-up from its cursor
    });
  };

  return {
    Sync: Sync,
    Backoff: Backoff,
    fullJitter: fullJitter,
    BACKOFF_MIN: BACKOFF_MIN,
    BACKOFF_MAX: BACKOFF_MAX,
    BEHIND_MS: BEHIND_MS,
  };
});
