/*
 * Lianqin live map: keeps window.lianqin in step with the server over Socket.IO and
 * restyles or moves only the markers that changed (dash-leaflet's GeoJSON would
 * redraw every layer on each update, far too slow at city scale).
 *
 * Protocol (namespace /live, see dashboard/realtime.py): on connect the page asks
 * `sync` with its cursor and gets either the deltas it missed or a snapshot; then
 * numbered `delta` messages arrive; a gap in the numbers triggers a catch-up sync,
 * never a silent hole. `tick` messages prove the pipeline is alive when idle.
 *
 * Untrusted text (titles, names) only ever reaches the DOM through textContent.
 */
(function () {
  "use strict";

  var TERMINAL = { closed: true, cancelled: true };
  var STALE_MS = 10000;

  // Marker sizes are designed for a 1080-pixel-high wall and grow with bigger screens.
  function scale() {
    return Math.max(1, (window.innerHeight || 1080) / 1080);
  }

  var state = (window.lianqin = {
    cases: {},
    units: {},
    cursor: null,
    lastUpdate: null,
    seq: null,
    connected: false,
    lastTick: null,
  });

  var live = {
    map: null,
    casesLayer: null,
    unitsLayer: null,
    socket: null,
    caseMarkers: {},
    unitMarkers: {},
    syncing: false,
    pending: [],
    config: null,
    clockOffset: 0,
    dayStart: null,
    retryTimer: null,
    behindSince: null,
    stats: { deltas: 0, resyncs: 0, snapshots: 0, latencies: [] },
  };

  var lq = (window.lq = window.lq || {});
  lq.live = lq.live || {};
  lq.live.stats = live.stats;

  function config() {
    if (!live.config) {
      var el = document.getElementById("lq-live-config");
      live.config = el ? JSON.parse(el.getAttribute("data-config")) : { colors: {}, labels: {} };
    }
    return live.config;
  }

  function serverNow() {
    return Date.now() + live.clockOffset;
  }

  function isOverdue(c) {
    if (TERMINAL[c.status]) return false;
    if (c.overdue) return true;
    return c.deadline != null && serverNow() > c.deadline;
  }

  // ---- markers ------------------------------------------------------------------------
  function caseStyle(c) {
    var cfg = config();
    var k = scale();
    var fill = cfg.colors[c.status] || "#999999";
    var done = TERMINAL[c.status] === true;
    if (c._overdue) {
      return { radius: 8 * k, color: cfg.overdueColor, weight: 3 * k, opacity: 1, fillColor: fill, fillOpacity: 1 };
    }
    if (done) {
      return { radius: 4.5 * k, color: fill, weight: 1.5 * k, opacity: 0.8, fillColor: fill, fillOpacity: 0.12 };
    }
    return { radius: 6.5 * k, color: "#0b1220", weight: 1 * k, opacity: 0.9, fillColor: fill, fillOpacity: 0.95 };
  }

  function tagElement(marker, attr, id) {
    var el = marker.getElement && marker.getElement();
    if (el) el.setAttribute(attr, id);
  }

  function drawCase(c) {
    var marker = live.caseMarkers[c.id];
    if (!live.casesLayer) return;
    if (!marker) {
      marker = L.circleMarker([c.lat, c.lon], caseStyle(c));
      marker.lqId = c.id;
      marker.addTo(live.casesLayer);
      live.caseMarkers[c.id] = marker;
      tagElement(marker, "data-case", c.id);
    } else {
      var ll = marker.getLatLng();
      if (ll.lat !== c.lat || ll.lng !== c.lon) marker.setLatLng([c.lat, c.lon]);
      marker.setStyle(caseStyle(c));
    }
    var el = marker.getElement && marker.getElement();
    if (el) {
      el.setAttribute("data-status", c.status);
      el.classList.toggle("lq-overdue", c._overdue === true);
      if (c._overdue && el.parentNode && el.parentNode.lastChild !== el) marker.bringToFront();
    }
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

  function drawUnit(u) {
    if (!live.unitsLayer) return;
    var marker = live.unitMarkers[u.id];
    if (!marker) {
      marker = L.marker([u.lat, u.lon], {
        icon: L.divIcon({ className: unitClass(u), html: unitHtml(u), iconSize: [14 * scale(), 14 * scale()] }),
        keyboard: false,
        interactive: false,
      });
      marker.lqId = u.id;
      marker.addTo(live.unitsLayer);
      live.unitMarkers[u.id] = marker;
      tagElement(marker, "data-unit", u.id);
    } else {
      marker.setLatLng([u.lat, u.lon]);
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

  function applyMessage(msg) {
    var started = performance.now();
    applyBody(JSON.parse(msg.d));
    state.seq = msg.seq;
    state.cursor = msg.cursor;
    state.lastUpdate = Date.now();
    live.stats.deltas += 1;
    var lat = serverNow() - msg.at;
    live.stats.latencies.push(lat);
    if (live.stats.latencies.length > 1000) live.stats.latencies.shift();
    live.stats.lastApplyMs = performance.now() - started;
    updateCount();
  }

  function loadSnapshot(reply) {
    live.stats.snapshots += 1;
    live.clockOffset = reply.at - Date.now();
    live.dayStart = reply.day_start;
    var keep = {};
    var i;
    for (i = 0; i < reply.cases.length; i++) keep[reply.cases[i].id] = true;
    Object.keys(state.cases).forEach(function (id) {
      if (!keep[id]) removeCase(id);
    });
    for (i = 0; i < reply.cases.length; i++) {
      var c = reply.cases[i];
      var prev = state.cases[c.id];
      if (prev && prev.version > c.version) continue;
      c._overdue = isOverdue(c);
      c.overdue = c._overdue;
      state.cases[c.id] = c;
      drawCase(c);
    }
    for (i = 0; i < reply.units.length; i++) upsertUnit(reply.units[i]);
    state.seq = reply.seq;
    state.cursor = reply.cursor;
    state.lastUpdate = Date.now();
    updateCount();
  }

  function flushPending() {
    var list = live.pending.sort(function (a, b) {
      return a.seq - b.seq;
    });
    live.pending = [];
    for (var i = 0; i < list.length; i++) {
      var m = list[i];
      if (state.seq !== null && m.seq <= state.seq) continue;
      if (state.seq === null || m.seq === state.seq + 1) {
        applyMessage(m);
      } else {
        live.pending = list.slice(i);
        resync();
        return;
      }
    }
  }

  function resync(fresh) {
    if (!live.socket || !live.socket.connected) return;
    if (live.syncing) return;
    live.syncing = true;
    live.stats.resyncs += 1;
    var ask = fresh ? { cursor: null, seq: null } : { cursor: state.cursor, seq: state.seq };
    live.socket.timeout(15000).emit("sync", ask, function (err, reply) {
      live.syncing = false;
      if (err || !reply || (reply.mode !== "snapshot" && reply.mode !== "catchup")) {
        clearTimeout(live.retryTimer);
        live.retryTimer = setTimeout(function () {
          resync(fresh);
        }, 2000);
        return;
      }
      if (reply.mode === "snapshot") {
        loadSnapshot(reply);
      } else {
        for (var i = 0; i < reply.deltas.length; i++) {
          var m = reply.deltas[i];
          if (m.seq === state.seq + 1) applyMessage(m);
        }
      }
      flushPending();
    });
  }

  function onDelta(msg) {
    if (live.syncing || state.seq === null) {
      live.pending.push(msg);
      return;
    }
    if (msg.seq <= state.seq) return; // already applied (a replay)
    if (msg.seq !== state.seq + 1) {
      live.pending.push(msg);
      resync();
      return;
    }
    applyMessage(msg);
  }

  function onTick(tick) {
    state.lastTick = Date.now();
    live.clockOffset = tick.at - Date.now();
    if (live.syncing || state.seq === null) return;
    if (tick.seq < state.seq) {
      // The server's sequence went backwards: a new epoch (Redis reset). Start over.
      live.pending = [];
      resync(true);
      return;
    }
    if (tick.seq > state.seq) {
      // A delta may still be in flight; only if we stay behind do we catch up.
      if (live.behindSince === null) live.behindSince = Date.now();
      else if (Date.now() - live.behindSince > 1500) {
        live.behindSince = null;
        resync();
      }
    } else {
      live.behindSince = null;
    }
  }

  // ---- connection ---------------------------------------------------------------------
  function connect() {
    if (live.socket || typeof io === "undefined") return;
    var socket = io(config().namespace || "/live", {
      transports: ["websocket", "polling"],
      reconnectionDelay: 500,
      reconnectionDelayMax: 5000,
    });
    live.socket = socket;
    socket.on("connect", function () {
      state.connected = true;
      resync();
      renderStatus();
    });
    socket.on("disconnect", function () {
      state.connected = false;
      live.syncing = false;
      renderStatus();
    });
    socket.on("delta", onDelta);
    socket.on("tick", onTick);
  }

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
    live.map = (ctx && ctx.map) || live.map;
    rebind(live.caseMarkers, live.casesLayer);
    maybeStart();
  };

  lq.live.bindUnits = function (e, ctx) {
    live.unitsLayer = e.target;
    live.map = (ctx && ctx.map) || live.map;
    rebind(live.unitMarkers, live.unitsLayer);
    maybeStart();
  };

  lq.live.resync = resync;
  lq.live.socket = function () {
    return live.socket;
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
    if (!state.connected) {
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

  function everySecond() {
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
