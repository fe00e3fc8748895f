// The browser's side of the /live protocol (assets/lianqin-sync.js), without a browser:
// sequence numbers, gaps, catch-up, snapshots with the deltas that arrive meanwhile, a new
// epoch, a missed last delta, retries with backoff. Run: node --test tests/js/*.test.js
"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const path = require("node:path");

const { Sync, Backoff, fullJitter, BEHIND_MS } = require(
  path.join(__dirname, "..", "..", "assets", "lianqin-sync.js"),
);

// A page without a DOM: records what it was told to apply, answers `sync` and snapshot
// fetches when the test says so, and runs timers by hand.
function fakePage() {
  const page = {
    state: { seq: null, cursor: null },
    stats: { resyncs: 0 },
    applied: [],
    snapshots: [],
    asks: [],
    fetches: [],
    timers: [],
    connected: true,
    clock: 1000,
    failOn: null,
  };
  page.host = {
    state: page.state,
    stats: page.stats,
    applyDelta(msg) {
      if (page.failOn === msg.seq) throw new Error("cannot draw");
      page.applied.push(msg.seq);
    },
    loadSnapshot(snapshot) {
      page.snapshots.push(snapshot.seq);
    },
    ask(request, done) {
      page.asks.push({ request, done });
    },
    fetchSnapshot(url, done) {
      page.fetches.push({ url, done });
    },
    connected: () => page.connected,
    now: () => page.clock,
    random: () => 0.5,
    setTimeout(fn, ms) {
      page.timers.push({ fn, ms });
      return page.timers.length;
    },
    clearTimeout() {},
  };
  page.sync = new Sync(page.host);
  page.lastAsk = () => page.asks[page.asks.length - 1];
  page.runTimers = () => {
    const due = page.timers;
    page.timers = [];
    due.forEach((t) => t.fn());
  };
  return page;
}

const delta = (seq) => ({ seq, cursor: `${1000 + seq}-0`, at: 1000 + seq, d: "{}" });
const catchup = (from, to) => {
  const deltas = [];
  for (let s = from; s <= to; s++) deltas.push(delta(s));
  return { mode: "catchup", deltas, seq: to, cursor: `${1000 + to}-0` };
};
const snapshotAnswer = (seq) => ({ mode: "snapshot", seq, cursor: `${1000 + seq}-0`, url: `/live/snapshot?seq=${seq}`, at: 5 });

test("first load: a snapshot, then the deltas that arrived while it was fetched", () => {
  const page = fakePage();
  page.sync.onConnect();
  assert.deepEqual(page.lastAsk().request, { cursor: null, seq: null });
  page.sync.onDelta(delta(11)); // before we know where we are: held
  page.lastAsk().done(null, snapshotAnswer(10));
  assert.equal(page.fetches[0].url, "/live/snapshot?seq=10");
  page.sync.onDelta(delta(12)); // while the snapshot is fetched: held
  page.sync.onDelta(delta(10)); // already in the snapshot
  assert.deepEqual(page.applied, []);
  page.fetches[0].done(null, { seq: 10, cursor: "1010-0", cases: [], units: [] });
  assert.deepEqual(page.snapshots, [10]);
  assert.deepEqual(page.applied, [11, 12]);
  assert.equal(page.state.seq, 12);
  assert.equal(page.state.cursor, "1012-0");
  assert.equal(page.sync.syncing, false);
});

test("deltas in order are applied; replays are ignored", () => {
  const page = fakePage();
  page.state.seq = 5;
  page.state.cursor = "1005-0";
  page.sync.onDelta(delta(6));
  page.sync.onDelta(delta(6));
  page.sync.onDelta(delta(4));
  page.sync.onDelta(delta(7));
  assert.deepEqual(page.applied, [6, 7]);
  assert.equal(page.asks.length, 0);
});

test("a gap asks for the missing deltas from our cursor: never a silent hole", () => {
  const page = fakePage();
  page.state.seq = 5;
  page.state.cursor = "1005-0";
  page.sync.onDelta(delta(8)); // 6 and 7 were lost
  assert.deepEqual(page.lastAsk().request, { cursor: "1005-0", seq: 5 });
  page.sync.onDelta(delta(9)); // while catching up: held
  page.lastAsk().done(null, catchup(6, 8));
  assert.deepEqual(page.applied, [6, 7, 8, 9]);
  assert.equal(page.state.seq, 9);
  assert.equal(page.stats.resyncs, 1);
});

test("a gap left after a catch-up asks again", () => {
  const page = fakePage();
  page.state.seq = 1;
  page.state.cursor = "1001-0";
  page.sync.onDelta(delta(3));
  page.sync.onDelta(delta(6));
  page.lastAsk().done(null, catchup(2, 3)); // 4 and 5 still missing
  assert.deepEqual(page.applied, [2, 3]);
  assert.equal(page.asks.length, 2);
  assert.deepEqual(page.lastAsk().request, { cursor: "1003-0", seq: 3 });
  page.lastAsk().done(null, catchup(4, 6));
  assert.deepEqual(page.applied, [2, 3, 4, 5, 6]);
});

test("a delta that fails to apply leaves the sequence where it was", () => {
  const page = fakePage();
  page.state.seq = 1;
  page.state.cursor = "1001-0";
  page.failOn = 2;
  assert.throws(() => page.sync.onDelta(delta(2)));
  assert.equal(page.state.seq, 1);
  page.failOn = null;
  page.sync.onDelta(delta(3)); // now a gap: caught up from seq 1
  assert.deepEqual(page.lastAsk().request, { cursor: "1001-0", seq: 1 });
});

test("the server's sequence going backwards (a new epoch) starts over with a fresh snapshot", () => {
  const page = fakePage();
  page.state.seq = 500;
  page.state.cursor = "1500-0";
  page.sync.pending.push(delta(502));
  page.sync.onTick({ seq: 3, cursor: "9-0", at: 1 });
  assert.deepEqual(page.sync.pending, []);
  assert.deepEqual(page.lastAsk().request, { cursor: null, seq: null });
  page.lastAsk().done(null, snapshotAnswer(3));
  page.fetches[0].done(null, { seq: 3, cursor: "1003-0", cases: [], units: [] });
  assert.equal(page.state.seq, 3);
  page.sync.onDelta(delta(4));
  assert.deepEqual(page.applied, [4]);
});

test("a tick ahead of us catches up only if we stay behind", () => {
  const page = fakePage();
  page.state.seq = 7;
  page.state.cursor = "1007-0";
  page.sync.onTick({ seq: 8 }); // the delta may be in flight
  page.clock += BEHIND_MS;
  page.sync.onTick({ seq: 8 });
  assert.equal(page.asks.length, 0);
  page.sync.onDelta(delta(8)); // it was
  page.sync.onTick({ seq: 8 });
  assert.equal(page.sync.behindSince, null);
  page.sync.onTick({ seq: 9 }); // the last delta of a burst was lost
  page.clock += BEHIND_MS + 1;
  page.sync.onTick({ seq: 9 });
  assert.deepEqual(page.lastAsk().request, { cursor: "1008-0", seq: 8 });
});

test("ticks wait while a sync is under way or before the first one", () => {
  const page = fakePage();
  page.sync.onTick({ seq: 4 });
  assert.equal(page.asks.length, 0);
  page.sync.onConnect();
  page.sync.onTick({ seq: 0 });
  assert.equal(page.asks.length, 1);
});

test("a failed sync is retried after a backoff; a failed snapshot fetch too", () => {
  const page = fakePage();
  page.sync.onConnect();
  page.lastAsk().done(new Error("timeout"));
  assert.equal(page.sync.syncing, false);
  assert.equal(page.timers.length, 1);
  assert.equal(page.timers[0].ms, fullJitter(500, 30000, 0, () => 0.5));
  page.runTimers();
  assert.equal(page.asks.length, 2);
  page.lastAsk().done(null, { mode: "error", error: "the live state is unavailable" });
  assert.equal(page.timers[0].ms, fullJitter(500, 30000, 1, () => 0.5)); // longer
  page.runTimers();
  page.lastAsk().done(null, snapshotAnswer(2));
  page.fetches[0].done(new Error("HTTP 503"));
  page.runTimers();
  assert.deepEqual(page.lastAsk().request, { cursor: null, seq: null });
  page.lastAsk().done(null, snapshotAnswer(2));
  page.fetches[1].done(null, { seq: 2, cursor: "1002-0" });
  assert.equal(page.state.seq, 2);
  assert.equal(page.sync.retry.attempts, 0); // reset once synced
});

test("an answer to a sync of a socket that has since disconnected is ignored", () => {
  const page = fakePage();
  page.sync.onConnect();
  const stale = page.lastAsk();
  page.sync.onDisconnect();
  stale.done(null, snapshotAnswer(9));
  assert.equal(page.fetches.length, 0);
  page.sync.onConnect();
  assert.equal(page.asks.length, 2);
});

test("no sync while disconnected, and one at a time", () => {
  const page = fakePage();
  page.connected = false;
  page.sync.resync();
  assert.equal(page.asks.length, 0);
  page.connected = true;
  page.sync.resync();
  page.sync.resync();
  assert.equal(page.asks.length, 1);
});

test("full jitter stays within [0, min(max, min × 2^attempt)] and the backoff caps", () => {
  for (let attempt = 0; attempt < 10; attempt++) {
    const top = Math.min(30000, 500 * 2 ** attempt);
    assert.equal(fullJitter(500, 30000, attempt, () => 0), 0);
    assert.ok(fullJitter(500, 30000, attempt, () => 0.999999) < top);
  }
  const backoff = new Backoff(() => 0.999999);
  let last = 0;
  for (let i = 0; i < 40; i++) last = backoff.next();
  assert.ok(last <= 30000 && last > 29000);
  assert.equal(backoff.attempts, 32);
  backoff.reset();
  assert.ok(backoff.next() < 500);
});

test("as a browser script it attaches to window.lq", () => {
  const fs = require("node:fs");
  const vm = require("node:vm");
  const source = fs.readFileSync(path.join(__dirname, "..", "..", "assets", "lianqin-sync.js"), "utf8");
  const window = { lq: { live: {} } };
  window.self = window;
  vm.runInNewContext(source, { self: window, window, Math, Date });
  assert.equal(typeof window.lq.sync.Sync, "function");
  assert.deepEqual(Object.keys(window.lq.live), []); // what was there is kept
});
