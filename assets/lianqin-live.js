/*
 * Lianqin live map: keeps window.lianqin in step with the server over Socket.IO and
 * restyles or moves only the markers that changed (dash-leaflet's GeoJSON would
 * redraw every layer on each update, far too slow at city scale).
 *
 * Protocol (namespace /live, see dashboard/live/__init__.py): on connect the page asks
 * `sync` with its cursor and gets either the deltas it missed or where to fetch a
 * snapshot (GET /live/snapshot?…, shared by every screen: built once per cursor); the
 * deltas that arrive while it is fetched wait in `pending` and those after the
 * snapshot's number are applied on top. Then numbered `delta` messages arrive; a gap
 * in the numbers triggers a catch-up sync, never a silent hole. `tick` messages prove
 * the pipeline is alive when idle. Reconnects and failed syncs back off with full
 * jitter (0.5 s doubling to 30 s), so that screens that lost the server together do
 * not come back together. That protocol — numbers, gaps, resyncs, epochs — is in
 * assets/lianqin-sync.js (no DOM, unit-tested under Node); this file draws.
 *
 * Untrusted text (titles, names) only ever reaches the DOM through textContent.
 */
(function () {
  "use strict";

  // Status sets from the page config (dashboard/vocabulary.py), filled in when it is read:
  // closed or cancelled (drawn hollow, never overdue), and open (not yet disposed).
  var TERMINAL = {};
  var OPEN = {};
  var STALE_MS = 10000;
  // Up to this many cases each dot is an SVG path (crisp, CSS-animatable, easy to inspect);
  // past it the dots move to one shared canvas, which paints 50,000 of them in one frame.
  var SVG_MAX = 3000;
  // Overdue cases get a pulsing SVG ring on top of their dot (the dot itself keeps a
  // vermilion outline, so an overdue case stays marked even past this many rings).
  var MAX_RINGS = 500;
  // Past this many units they move to a canvas of their own too: every DOM marker is a
  // composited layer, and 10,000 of them kept the main thread busy even on an idle wall.
  // bench/e2e.py at 1,000 units and 1,000 pings/s: DOM markers p50 162 ms XADD → painted
  // (main thread 88 % busy), the canvas 34 ms. A district's few hundred stay in the DOM.
  var UNIT_DOM_MAX = 400;
  // The server may wait for another process's snapshot build before it answers `sync`.
  var SYNC_TIMEOUT = 30000;

  // Marker sizes are designed for a 1080-pixel-high wall and grow with bigger screens.
  function scale() {
    return Math.max(1, (window.innerHeight || 1080) / 1080);
  }

  var state = (window.lianqin = {
    cases: {},
    units: {},
    kpis: null,
    render: "svg",
    cursor: null,
    lastUpdate: null,
    seq: null,
    connected: false,
    lastTick: null,
    degraded: null, // what a worker reports out ("database"), while it lasts
  });

  var live = {
    map: null,
    casesLayer: null,
    unitsLayer: null,
    socket: null,
    caseMarkers: {},
    unitMarkers: {},
    sync: null, // the protocol (assets/lianqin-sync.js), from the first connection
    config: null,
    clockOffset: 0,
    dayStart: null,
    canvas: null,
    mode: "svg",
    ringMarkers: {},
    ringCount: 0,
    hooks: { changed: [], kpis: [] },
    densityPolygons: [],
    stats: { deltas: 0, resyncs: 0, snapshots: 0, latencies: [] },
  };

  var lq = (window.lq = window.lq || {});
  lq.live = lq.live || {};
  lq.live.stats = live.stats;

  function asSet(list) {
    var out = {};
    for (var i = 0; list && i < list.length; i++) out[list[i]] = true;
    return out;
  }

  function config() {
    if (!live.config) {
      var el = document.getElementById("lq-live-config");
      // Not cached until the page is there (the router renders it after the scripts run).
      if (!el) return { colors: {}, labels: {} };
      live.config = JSON.parse(el.getAttribute("data-config"));
      var statuses = live.config.statuses || {};
      TERMINAL = asSet(statuses.terminal);
      OPEN = asSet(statuses.open);
    }
    return live.config;
  }

  function serverNow() {
    return Date.now() + live.clockOffset;
  }

  // ---- display datum ------------------------------------------------------------------
  // Stored points are WGS-84; GCJ-02 tiles (Amap) need them shifted for display. The
  // published forward transform, as in dashboard/geo.py (the server shifts static layers).
  var GCJ_A = 6378245.0;
  var GCJ_EE = 0.00669342162296594323;
  function gcjLat(x, y) {
    var r = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * Math.sqrt(Math.abs(x));
    r += ((20.0 * Math.sin(6.0 * x * Math.PI) + 20.0 * Math.sin(2.0 * x * Math.PI)) * 2.0) / 3.0;
    r += ((20.0 * Math.sin(y * Math.PI) + 40.0 * Math.sin((y / 3.0) * Math.PI)) * 2.0) / 3.0;
    r += ((160.0 * Math.sin((y / 12.0) * Math.PI) + 320 * Math.sin((y * Math.PI) / 30.0)) * 2.0) / 3.0;
    return r;
  }
  function gcjLon(x, y) {
    var r = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * Math.sqrt(Math.abs(x));
    r += ((20.0 * Math.sin(6.0 * x * Math.PI) + 20.0 * Math.sin(2.0 * x * Math.PI)) * 2.0) / 3.0;
    r += ((20.0 * Math.sin(x * Math.PI) + 40.0 * Math.sin((x / 3.0) * Math.PI)) * 2.0) / 3.0;
    r += ((150.0 * Math.sin((x / 12.0) * Math.PI) + 300.0 * Math.sin((x / 30.0) * Math.PI)) * 2.0) / 3.0;
    return r;
  }
  function wgs84ToGcj02(lat, lon) {
    if (!(lon >= 72.004 && lon <= 137.8347 && lat >= 0.8293 && lat <= 55.8271)) return [lat, lon];
    var dlat = gcjLat(lon - 105.0, lat - 35.0);
    var dlon = gcjLon(lon - 105.0, lat - 35.0);
    var radlat = (lat / 180.0) * Math.PI;
    var magic = Math.sin(radlat);
    magic = 1 - GCJ_EE * magic * magic;
    var sqrtmagic = Math.sqrt(magic);
    dlat = (dlat * 180.0) / (((GCJ_A * (1 - GCJ_EE)) / (magic * sqrtmagic)) * Math.PI);
    dlon = (dlon * 180.0) / ((GCJ_A / sqrtmagic) * Math.cos(radlat) * Math.PI);
    return [lat + dlat, lon + dlon];
  }
  lq.geo = { wgs84ToGcj02: wgs84ToGcj02 };

  function displayLatLng(lat, lon) {
    return config().displayCrs === "gcj02" ? wgs84ToGcj02(lat, lon) : [lat, lon];
  }

  // ---- backoff ------------------------------------------------------------------------
  // Socket.IO's manager computes its reconnect delays with `backoff.duration()` (the
  // vendored 4.8 client): the same full jitter, on its own attempt count (it resets it
  // once connected).
  function jitterReconnects(socket) {
    var backoff = socket.io && socket.io.backoff;
    if (!backoff || typeof backoff.duration !== "function") return;
    backoff.duration = function () {
      var delay = lq.sync.fullJitter(this.ms, this.max, this.attempts);
      if (this.attempts < 32) this.attempts += 1;
      return delay;
    };
  }

  function notify(name, arg) {
    var list = live.hooks[name] || [];
    for (var i = 0; i < list.length; i++) {
      try {
        list[i](arg);
      } catch (e) {
        if (window.console) console.error(e); // a panel's bug must not stop the map
      }
    }
  }

  // A click on a dot (interactive pages only): listeners get the case id.
  function onCaseClick(e) {
    notify("caseClick", e.target.lqId);
  }

  function isOverdue(c) {
    if (TERMINAL[c.status]) return false;
    if (c.overdue) return true;
    return c.deadline != null && serverNow() > c.deadline;
  }

  // ---- markers ------------------------------------------------------------------------
  function caseStyle(c) {
    var cfg = config();
    // Dense screens (canvas mode) get smaller dots so that hot spots stay readable.
    var k = scale() * (live.mode === "canvas" ? 0.62 : 1);
    var fill = cfg.colors[c.status] || "#999999";
    var done = TERMINAL[c.status] === true;
    if (c._overdue) {
      return { radius: 7 * k, color: cfg.overdueColor, weight: 2.5 * k, opacity: 1, fillColor: fill, fillOpacity: 1 };
    }
    if (done) {
      return { radius: 4.5 * k, color: fill, weight: 1.5 * k, opacity: 0.8, fillColor: fill, fillOpacity: 0.12 };
    }
    return { radius: 6.5 * k, color: "#0b1220", weight: 1 * k, opacity: 0.9, fillColor: fill, fillOpacity: 0.95 };
  }

  function ringStyle() {
    var k = scale() * (live.mode === "canvas" ? 0.75 : 1);
    return {
      pane: "lqAlarm",
      radius: 10 * k,
      color: config().overdueColor,
      weight: 3 * k,
      opacity: 1,
      fill: false,
      interactive: false,
      className: "lq-overdue lq-ring",
    };
  }

  function drawRing(c, ll) {
    var ring = live.ringMarkers[c.id];
    var want = c._overdue === true && live.casesLayer !== null;
    if (want && !ring && live.ringCount < MAX_RINGS) {
      ring = L.circleMarker(ll, ringStyle());
      ring.addTo(live.casesLayer);
      live.ringMarkers[c.id] = ring;
      live.ringCount += 1;
      tagElement(ring, "data-ring", c.id);
    } else if (want && ring) {
      var at = ring.getLatLng();
      if (at.lat !== ll[0] || at.lng !== ll[1]) ring.setLatLng(ll);
    } else if (!want && ring) {
      ring.remove();
      delete live.ringMarkers[c.id];
      live.ringCount -= 1;
    }
  }

  // Switch every dot to the shared canvas once the map holds more cases than SVG handles well.
  function maybeCanvas() {
    if (live.mode === "canvas" || !live.casesLayer) return;
    if (Object.keys(state.cases).length <= SVG_MAX) return;
    live.mode = "canvas";
    state.render = "canvas";
    if (!live.canvas) live.canvas = L.canvas({ padding: 0.1, pane: "lqCases" });
    Object.keys(live.caseMarkers).forEach(function (id) {
      live.caseMarkers[id].remove();
      delete live.caseMarkers[id];
    });
    Object.keys(live.ringMarkers).forEach(function (id) {
      live.ringMarkers[id].setStyle(ringStyle());
    });
    Object.keys(state.cases).forEach(function (id) {
      drawCase(state.cases[id]);
    });
  }

  function tagElement(marker, attr, id) {
    var el = marker.getElement && marker.getElement();
    if (el) el.setAttribute(attr, id);
    if (marker.lqTagged) return;
    // A layer switched off and on again gets new elements: tag them again (and the case's
    // status and overdue mark), or a re-enabled layer's dots would lose their attributes
    // until the next delta.
    marker.lqTagged = true;
    marker.on("add", function () {
      var again = marker.getElement && marker.getElement();
      if (!again) return;
      again.setAttribute(attr, id);
      var c = attr === "data-case" && state.cases[id];
      if (c) {
        again.setAttribute("data-status", c.status);
        again.classList.toggle("lq-overdue", c._overdue === true);
      }
    });
  }

  function drawCase(c) {
    var marker = live.caseMarkers[c.id];
    if (!live.casesLayer) return;
    var at = displayLatLng(c.lat, c.lon);
    if (!marker) {
      var style = caseStyle(c);
      style.pane = "lqCases";
      // Dots are clickable only where a page asks for it (the dispatch console), not on the wall.
      style.interactive = config().interactive === true;
      if (live.mode === "canvas") style.renderer = live.canvas;
      marker = L.circleMarker(at, style);
      marker.lqId = c.id;
      marker.addTo(live.casesLayer);
      live.caseMarkers[c.id] = marker;
      tagElement(marker, "data-case", c.id);
      if (style.interactive) marker.on("click", onCaseClick);
    } else {
      var ll = marker.getLatLng();
      if (ll.lat !== at[0] || ll.lng !== at[1]) marker.setLatLng(at);
      marker.setStyle(caseStyle(c));
    }
    var el = marker.getElement && marker.getElement();
    if (el) {
      el.setAttribute("data-status", c.status);
      el.classList.toggle("lq-overdue", c._overdue === true);
    }
    drawRing(c, at);
  }

  function unitHtml(u) {
    // The body's pointed corner is its top-left (-45°): turn it to the heading.
    var arrow = u.heading == null ? "" : ' style="transform: rotate(' + (Number(u.heading) + 45) + 'deg)"';
    return '<div class="lq-unit-body"' + arrow + '></div>';
  }

  function unitClass(u) {
    return "lq-unit lq-unit-" + String(u.status).replace(/[^a-z_]/g, "") +
      " lq-kind-" + String(u.kind || "unknown").replace(/[^a-z_]/g, "") +
      (u.heading == null ? "" : " lq-unit-heading");
  }

  // ---- units on a canvas (city scale) ------------------------------------------------------
  // The same shapes as the DOM markers' CSS (wall.css, "Units"), drawn on the canvas:
  // a rounded square in the status color, an arrow when the heading is known, grid
  // workers round, vehicles larger, volunteer teams diamonds.
  var UnitDot = null;

  function unitDotClass() {
    if (UnitDot) return UnitDot;
    UnitDot = L.CircleMarker.extend({
      _updatePath: function () {
        var r = this._renderer;
        if (!r._drawing || this._empty()) return;
        var ctx = r._ctx;
        var o = this.options;
        var k = o.size;
        var s = 6 * k;
        var h = o.heading;
        ctx.save();
        ctx.translate(this._point.x, this._point.y);
        ctx.beginPath();
        if (h != null) {
          ctx.rotate(((Number(h) + 45) * Math.PI) / 180);
          ctx.moveTo(-s, -s); // the pointed corner, turned to the heading
          ctx.lineTo(0, -s);
          ctx.arc(0, 0, s, -Math.PI / 2, Math.PI, false);
          ctx.closePath();
        } else if (o.kind === "grid_worker") {
          ctx.arc(0, 0, s * 0.8, 0, Math.PI * 2);
        } else if (o.kind === "volunteer") {
          s *= 0.9;
          ctx.moveTo(0, -s * 1.3);
          ctx.lineTo(s * 1.3, 0);
          ctx.lineTo(0, s * 1.3);
          ctx.lineTo(-s * 1.3, 0);
          ctx.closePath();
        } else {
          if (o.kind === "vehicle") s *= 1.3;
          var c = Math.min(3 * k, s);
          ctx.moveTo(-s + c, -s);
          ctx.arcTo(s, -s, s, s, c);
          ctx.arcTo(s, s, -s, s, c);
          ctx.arcTo(-s, s, -s, -s, c);
          ctx.arcTo(-s, -s, s, -s, c);
          ctx.closePath();
        }
        ctx.restore();
        r._fillStroke(ctx, this);
      },
    });
    return UnitDot;
  }

  function unitDotOptions(u) {
    var colors = config().unitColors || {};
    return {
      renderer: live.unitCanvas,
      interactive: false,
      radius: 8 * scale(), // the extent Leaflet redraws around the dot
      size: scale(),
      heading: u.heading == null ? null : Number(u.heading),
      kind: u.kind || "unknown",
      fillColor: colors[u.status] || "#ffffff",
      fillOpacity: 1,
      color: "#070d1a",
      weight: 2 * scale(),
      opacity: 1,
    };
  }

  function unitsToCanvas() {
    if (live.unitMode === "canvas") return;
    live.unitMode = "canvas";
    if (!live.unitCanvas) live.unitCanvas = L.canvas({ padding: 0.1, pane: "markerPane" });
    Object.keys(live.unitMarkers).forEach(function (id) {
      live.unitMarkers[id].remove();
      delete live.unitMarkers[id];
    });
  }

  function maybeCanvasUnits(count) {
    if (live.unitMode !== "canvas" && live.unitsLayer && count > UNIT_DOM_MAX) {
      unitsToCanvas();
      Object.keys(state.units).forEach(function (id) {
        drawUnit(state.units[id]);
      });
    }
  }

  function drawUnit(u) {
    if (!live.unitsLayer) return;
    var marker = live.unitMarkers[u.id];
    var at = displayLatLng(u.lat, u.lon);
    if (live.unitMode === "canvas") {
      if (!marker) {
        marker = new (unitDotClass())(at, unitDotOptions(u));
        marker.lqId = u.id;
        marker.addTo(live.unitsLayer);
        live.unitMarkers[u.id] = marker;
      } else {
        L.setOptions(marker, unitDotOptions(u));
        marker.setLatLng(at); // redraws the old and the new place
      }
      return;
    }
    if (!marker) {
      marker = L.marker(at, {
        icon: L.divIcon({ className: unitClass(u), html: unitHtml(u), iconSize: [14 * scale(), 14 * scale()] }),
        keyboard: false,
        interactive: false,
      });
      marker.lqId = u.id;
      marker.addTo(live.unitsLayer);
      live.unitMarkers[u.id] = marker;
      tagElement(marker, "data-unit", u.id);
    } else {
      marker.setLatLng(at);
      var el = marker.getElement();
      if (el) {
        el.className = el.className.replace(/lq-unit[^ ]*|lq-kind-[^ ]*/g, "").trim() + " " + unitClass(u);
        var body = el.firstChild;
        if (body) body.style.transform = u.heading == null ? "" : "rotate(" + (Number(u.heading) + 45) + "deg)";
      }
    }
    var e = marker.getElement && marker.getElement();
    if (e) e.setAttribute("data-status", u.status);
  }

  function removeCase(id) {
    var marker = live.caseMarkers[id];
    if (marker) {
      marker.remove();
      delete live.caseMarkers[id];
    }
    var ring = live.ringMarkers[id];
    if (ring) {
      ring.remove();
      delete live.ringMarkers[id];
      live.ringCount -= 1;
    }
    delete state.cases[id];
  }

  // ---- state --------------------------------------------------------------------------
  function upsertCase(c) {
    var prev = state.cases[c.id];
    if (prev && prev.version > c.version) return; // an older view of the case
    c._overdue = isOverdue(c);
    c.overdue = c._overdue;
    state.cases[c.id] = c;
    drawCase(c);
  }

  function upsertUnit(u) {
    var prev = state.units[u.id];
    if (prev && prev.ts > u.ts) return;
    state.units[u.id] = u;
    drawUnit(u);
  }

  function applyBody(body) {
    var i;
    var cases = body.cases || [];
    var units = body.units || [];
    for (i = 0; i < cases.length; i++) upsertCase(cases[i]);
    for (i = 0; i < units.length; i++) upsertUnit(units[i]);
  }

  // Runs ``fn`` once the frame after now has been painted (rAF fires just before paint).
  function afterPaint(fn) {
    requestAnimationFrame(function () {
      setTimeout(fn, 0);
    });
  }

  function pushBounded(list, value) {
    list.push(value);
    if (list.length > 1000) list.shift();
  }

  function applyMessage(msg) {
    var started = performance.now();
    var body = JSON.parse(msg.d);
    applyBody(body); // the sequence number and cursor move after (assets/lianqin-sync.js)
    state.lastUpdate = Date.now();
    state.degraded = null;
    live.stats.deltas += 1;
    pushBounded(live.stats.latencies, serverNow() - msg.at);
    maybeCanvas();
    if (live.unitMode !== "canvas") maybeCanvasUnits(Object.keys(state.units).length);
    live.stats.lastApplyMs = performance.now() - started;
    updateCount();
    notify("changed", { cases: (body.cases || []).map(function (c) { return c.id; }) });
    // Delta cost on the main thread (with the panels' hooks) and delta-to-paint latency:
    // the figures of bench/e2e.py and bench/load.py, also handy on a live wall.
    live.stats.lastTaskMs = performance.now() - started;
    pushBounded((live.stats.taskMs = live.stats.taskMs || []), live.stats.lastTaskMs);
    afterPaint(function () {
      var painted = Date.now();
      pushBounded((live.stats.paintLatencies = live.stats.paintLatencies || []), serverNow() - msg.at);
      if (live.hooks.painted) notify("painted", { seq: msg.seq, at: msg.at, body: body, painted: painted });
    });
  }

  // A snapshot (the body of GET /live/snapshot); the clock comes from the sync answer,
  // fresher than the snapshot, which may have been built a few seconds before.
  function loadSnapshot(reply) {
    var started = performance.now();
    live.stats.snapshots += 1;
    live.dayStart = reply.day_start;
    var keep = {};
    var i;
    for (i = 0; i < reply.cases.length; i++) keep[reply.cases[i].id] = true;
    Object.keys(state.cases).forEach(function (id) {
      if (!keep[id]) removeCase(id);
    });
    if (reply.cases.length > SVG_MAX && live.mode !== "canvas") {
      // Straight to the canvas: never build thousands of SVG paths only to drop them.
      live.mode = "canvas";
      state.render = "canvas";
      if (!live.canvas) live.canvas = L.canvas({ padding: 0.1, pane: "lqCases" });
      Object.keys(live.caseMarkers).forEach(function (id) {
        live.caseMarkers[id].remove();
        delete live.caseMarkers[id];
      });
    }
    for (i = 0; i < reply.cases.length; i++) {
      var c = reply.cases[i];
      var prev = state.cases[c.id];
      if (prev && prev.version > c.version) continue;
      c._overdue = isOverdue(c);
      c.overdue = c._overdue;
      state.cases[c.id] = c;
      drawCase(c);
    }
    if (reply.units.length > UNIT_DOM_MAX && live.unitsLayer) unitsToCanvas();
    for (i = 0; i < reply.units.length; i++) upsertUnit(reply.units[i]);
    state.lastUpdate = Date.now();
    live.stats.snapshotApplyMs = performance.now() - started;
    afterPaint(function () {
      live.stats.snapshotPaintedAt = performance.now(); // ms since the page was opened
    });
    updateCount();
    if (reply.kpis) onKpis({ k: reply.kpis });
    if (live.densityPolygons.length) lq.live.restyleDensity();
    notify("changed", { snapshot: true });
  }

  // The wall's KPI summary, pushed by a worker (whole, not numbered: the newest wins).
  function onKpis(msg) {
    var summary;
    try {
      summary = typeof msg.k === "string" ? JSON.parse(msg.k) : msg.k;
    } catch (e) {
      return;
    }
    if (!summary || (state.kpis && state.kpis.at > summary.at)) return;
    state.kpis = summary;
    notify("kpis", summary);
  }

  // The snapshot over HTTP (same origin, the session's cookie): gzip on the wire, shared by
  // every screen, and never in the socket, whose pings must keep flowing meanwhile.
  // ``done`` is called again with the error if loading it throws (then the sync is retried).
  function fetchSnapshot(url, done) {
    var started = performance.now();
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok || response.redirected) throw new Error("snapshot: HTTP " + response.status);
        return response.json();
      })
      .then(function (snapshot) {
        live.stats.snapshotFetchMs = performance.now() - started;
        done(null, snapshot);
      })
      .catch(function (e) {
        done(e || new Error("snapshot failed"));
      });
  }

  // The protocol's side of the page: what applying, asking and fetching mean here.
  function makeSync(socket) {
    return new lq.sync.Sync({
      state: state,
      stats: live.stats,
      applyDelta: applyMessage,
      loadSnapshot: loadSnapshot,
      ask: function (request, done) {
        socket.timeout(SYNC_TIMEOUT).emit("sync", request, done);
      },
      snapshotAnswer: function (reply) {
        live.clockOffset = reply.at - Date.now();
        if (reply.kpis) onKpis({ k: reply.kpis });
      },
      fetchSnapshot: fetchSnapshot,
      connected: function () {
        return socket.connected;
      },
      warn: function (text) {
        if (window.console) console.warn(text);
      },
    });
  }

  function resync(fresh) {
    if (live.sync) live.sync.resync(fresh);
  }

  function onTick(tick) {
    // A worker waiting for the database says so: the screen shows the outage and how old
    // its data is, instead of numbers that silently stopped moving.
    if (tick.degraded) {
      if (!state.degraded) state.degradedSince = Date.now();
      state.degraded = String(tick.degraded);
      state.degradedAt = Date.now();
      renderStatus();
      return;
    }
    state.degraded = null;
    state.lastTick = Date.now();
    live.clockOffset = tick.at - Date.now();
    live.sync.onTick(tick); // a new epoch, or a missed last delta
  }

  // ---- connection ---------------------------------------------------------------------
  function connect() {
    // Dash loads assets/ in alphabetical order: lianqin-sync.js comes after this file, and
    // is looked up here, once every script has run (everySecond tries again otherwise).
    if (live.socket || typeof io === "undefined" || !lq.sync) return;
    var socket = io(config().namespace || "/live", {
      transports: ["websocket", "polling"],
      reconnectionDelay: lq.sync.BACKOFF_MIN,
      reconnectionDelayMax: lq.sync.BACKOFF_MAX,
      randomizationFactor: 1, // replaced by full jitter just below
    });
    jitterReconnects(socket);
    live.socket = socket;
    var sync = (live.sync = makeSync(socket));
    socket.on("connect", function () {
      state.connected = true;
      sync.onConnect();
      renderStatus();
    });
    socket.on("disconnect", function () {
      state.connected = false;
      sync.onDisconnect();
      renderStatus();
    });
    socket.on("delta", function (msg) {
      sync.onDelta(msg);
    });
    socket.on("tick", onTick);
    socket.on("kpis", onKpis);
  }

  // Live as soon as the map has its case and unit layers; a screen showing neither (a
  // `?layers=` choice) still connects a moment later, for its panels.
  function maybeStart() {
    if (live.casesLayer && live.unitsLayer) connect();
  }

  function rebind(markers, layer) {
    Object.keys(markers).forEach(function (id) {
      markers[id].addTo(layer);
    });
  }

  lq.live.bindCases = function (e, ctx) {
    live.casesLayer = e.target;
    live.map = (ctx && ctx.map) || live.map || e.target._map;
    if (live.map && !live.map.getPane("lqCases")) {
      // The dots get their own pane over the static layers (overlay pane, 400), whatever
      // order those load in: a district polygon must never cover or take a dot's click.
      live.map.createPane("lqCases").style.zIndex = 420;
    }
    if (live.map && !live.map.getPane("lqAlarm")) {
      var pane = live.map.createPane("lqAlarm");
      pane.style.zIndex = 450; // above the dots, below the units (markers)
      pane.style.pointerEvents = "none";
    }
    rebind(live.caseMarkers, live.casesLayer);
    rebind(live.ringMarkers, live.casesLayer);
    Object.keys(state.cases).forEach(function (id) {
      if (!live.caseMarkers[id]) drawCase(state.cases[id]); // arrived while the layer was off
    });
    fitAboveLegend();
    maybeStart();
  };

  // Fit the district once into the part of the map the legend does not cover (its size
  // follows the screen, so this cannot be a fixed padding in the layout).
  var fitted = false;
  function fitAboveLegend() {
    var map = live.map;
    var legend = document.getElementById("lq-legend");
    var bounds = config().bounds;
    if (fitted || !map || !legend || !bounds) return;
    fitted = true;
    var k = scale();
    if (config().displayCrs === "gcj02") {
      bounds = [wgs84ToGcj02(bounds[0][0], bounds[0][1]), wgs84ToGcj02(bounds[1][0], bounds[1][1])];
    }
    map.fitBounds(bounds, {
      paddingTopLeft: [20 * k, 20 * k],
      paddingBottomRight: [20 * k, legend.offsetHeight + 20 * k],
      animate: false,
    });
  }

  // The optional grid density layer (open cases per grid): its polygons, collected as
  // dash-leaflet creates them, are restyled from the live state every few seconds.

  lq.live.densityFeature = function (feature, layer) {
    if (layer.options) layer.options.interactive = false; // never take clicks meant for dots
    live.densityPolygons.push(layer);
    setTimeout(lq.live.restyleDensity, 0);
  };

  lq.live.density = { counts: {}, max: 0 };
  lq.live.restyleDensity = function () {
    var counts = {};
    var max = 0;
    var ids = Object.keys(state.cases);
    for (var i = 0; i < ids.length; i++) {
      var c = state.cases[ids[i]];
      if (!c.grid || !OPEN[c.status]) continue;
      counts[c.grid] = (counts[c.grid] || 0) + 1;
      if (counts[c.grid] > max) max = counts[c.grid];
    }
    lq.live.density = { counts: counts, max: max };
    if (!lq.style || !lq.style.density) return;
    for (var j = 0; j < live.densityPolygons.length; j++) {
      var poly = live.densityPolygons[j];
      if (poly._map) poly.setStyle(lq.style.density(poly.feature));
    }
  };

  lq.live.bindUnits = function (e, ctx) {
    live.unitsLayer = e.target;
    live.map = (ctx && ctx.map) || live.map;
    rebind(live.unitMarkers, live.unitsLayer);
    if (live.unitMode !== "canvas" && Object.keys(state.units).length > UNIT_DOM_MAX) unitsToCanvas();
    Object.keys(state.units).forEach(function (id) {
      if (!live.unitMarkers[id]) drawUnit(state.units[id]);
    });
    maybeStart();
  };

  lq.live.resync = resync;
  lq.live.fullJitter = function (min, max, attempt) {
    return lq.sync.fullJitter(min, max, attempt);
  };
  lq.live.on = function (name, fn) {
    (live.hooks[name] = live.hooks[name] || []).push(fn);
  };
  lq.live.config = config;
  lq.live.serverNow = serverNow;
  lq.live.isOverdue = isOverdue;
  lq.live.isTerminal = function (status) {
    config();
    return TERMINAL[status] === true;
  };
  lq.live.caseStyle = function (id) {
    var m = live.caseMarkers[id];
    return m ? { fill: m.options.fillColor, stroke: m.options.color, renderer: live.mode, ring: !!live.ringMarkers[id] } : null;
  };
  lq.live.socket = function () {
    return live.socket;
  };
  lq.live.map = function () {
    return live.map;
  };

  // ---- the clock, the data-age indicator, overdue by the clock, the day's rollover -----
  var clockFormat = null;

  // The wall shows the center's time zone (settings), whatever the display machine's is.
  function clockText(date) {
    if (!clockFormat) {
      try {
        clockFormat = new Intl.DateTimeFormat("en-GB", {
          timeZone: config().tz || undefined,
          hour: "2-digit",
          minute: "2-digit",
          second: "2-digit",
          hourCycle: "h23",
        });
      } catch (e) {
        clockFormat = new Intl.DateTimeFormat("en-GB", { hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" });
      }
    }
    return clockFormat.format(date);
  }

  function updateCount() {
    var el = document.getElementById("lq-case-count");
    if (el) el.textContent = String(Object.keys(state.cases).length);
  }

  function renderStatus() {
    var el = document.getElementById("lq-connection");
    if (!el) return;
    var labels = config().labels || {};
    var cls;
    var text;
    var seen = Math.max(state.lastUpdate || 0, state.lastTick || 0);
    var age = seen ? Math.max(0, Math.round((Date.now() - seen) / 1000)) : null;
    if (state.degraded && Date.now() - state.degradedAt > 60000) state.degraded = null;
    if (state.connected && state.degraded) {
      // The age of the data: since the last delta or healthy tick before the outage.
      cls = "degraded";
      text = labels.degraded || "degraded";
    } else if (!state.connected) {
      cls = seen ? "offline" : "connecting";
      text = seen ? (labels.offline || "offline") : (labels.connecting || "connecting");
    } else if (age === null || Date.now() - seen > STALE_MS) {
      cls = "stale";
      text = labels.stale || "stale";
    } else {
      cls = "live";
      text = labels.live || "live";
    }
    if (age !== null) text += " · " + age + (labels.secondsAgo || "s ago");
    el.textContent = text;
    el.className = "lq-connection lq-connection-" + cls;
    el.setAttribute("data-state", cls);
    el.setAttribute("data-age", age === null ? "" : String(age));
  }

  var densityTick = 0;

  function everySecond() {
    densityTick += 1;
    if (!live.socket && densityTick > 3 && document.getElementById("lq-live-config")) connect();
    if (live.densityPolygons.length && densityTick % 5 === 0) lq.live.restyleDensity();
    var clock = document.getElementById("lq-clock");
    if (clock) clock.textContent = clockText(new Date(serverNow()));
    renderStatus();
    var ids = Object.keys(state.cases);
    for (var i = 0; i < ids.length; i++) {
      var c = state.cases[ids[i]];
      var due = isOverdue(c);
      if (due !== c._overdue) {
        c._overdue = due;
        c.overdue = due;
        drawCase(c);
      }
    }
    if (live.dayStart !== null && serverNow() >= live.dayStart + 86400000) {
      live.dayStart += 86400000;
      for (var j = 0; j < ids.length; j++) {
        var k = state.cases[ids[j]];
        if (k && TERMINAL[k.status] && k.reported < live.dayStart) removeCase(k.id);
      }
      updateCount();
    }
  }

  document.documentElement.style.setProperty("--lq-marker-scale", String(scale()));
  setInterval(everySecond, 1000);
})();
