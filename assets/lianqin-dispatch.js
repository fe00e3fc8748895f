/*
 * Lianqin dispatch console (/dispatch): the case queue, the open case on the map, the
 * nearest units' lines, and the keyboard.
 *
 * The queue is fed from the same live state as the map (window.lianqin, kept by
 * lianqin-live.js from the pushed deltas): a delta becomes an AG Grid transaction that
 * adds, updates or removes only the rows it names, and a one-second tick moves the
 * countdowns and flips cases to overdue. The server is asked only when a case is opened
 * or the open case changes (the Dash store lq-case-open), never polled.
 *
 * Untrusted text (titles, names) reaches the DOM only as grid cell text or textContent.
 * On pages other than the console every function here returns at once.
 */
(function () {
  "use strict";

  var QUEUE = "lq-queue";
  var OPEN = "lq-case-open";
  var lq = (window.lq = window.lq || {});
  var D = (lq.dispatch = lq.dispatch || {});

  var st = {
    hooked: false,
    api: null,
    apiWaiting: null,
    filters: { status: [], category: [], grid: [], zone: [], department: [] },
    rows: {},
    open: null,
    nearest: [],
    caseState: null,
    focused: null, // the case the map last zoomed to
    layer: null,
    ring: null,
    lastRefresh: 0,
    refreshTimer: null,
    stats: { changedMs: [], tickMs: [] }, // main-thread cost of the queue's upkeep
  };

  function timed(list, fn) {
    return function (arg) {
      var started = performance.now();
      try {
        return fn(arg);
      } finally {
        list.push(performance.now() - started);
        if (list.length > 200) list.shift();
      }
    };
  }

  function onConsole() {
    return !!document.getElementById(QUEUE);
  }

  function cfg() {
    return (lq.live && lq.live.config && lq.live.config()) || {};
  }

  function labels() {
    return cfg().labels || {};
  }

  function cases() {
    return (window.lianqin && window.lianqin.cases) || {};
  }

  function units() {
    return (window.lianqin && window.lianqin.units) || {};
  }

  function now() {
    return lq.live && lq.live.serverNow ? lq.live.serverNow() : Date.now();
  }

  function setProps(id, props) {
    if (window.dash_clientside && window.dash_clientside.set_props) {
      window.dash_clientside.set_props(id, props);
    }
  }

  function hook() {
    if (st.hooked || !lq.live || !lq.live.on) return;
    st.hooked = true;
    lq.live.on("changed", timed(st.stats.changedMs, onChanged));
    lq.live.on("caseClick", function (id) {
      if (onConsole()) D.open(id);
    });
    setInterval(timed(st.stats.tickMs, tick), 1000);
    document.addEventListener("keydown", onKey);
  }

  // ---- the grid -------------------------------------------------------------------------
  function withApi(fn) {
    var api = st.api;
    if (api && !(api.isDestroyed && api.isDestroyed())) return fn(api);
    st.api = null;
    if (!window.dash_ag_grid || !window.dash_ag_grid.getApiAsync) {
      // The grid's bundle loads lazily: a snapshot can arrive before it. Whatever was
      // asked is rebuilt from the live state once the grid is there.
      retryRebuild();
      return undefined;
    }
    if (st.apiWaiting) {
      st.apiWaiting.push(fn);
      return undefined;
    }
    st.apiWaiting = [fn];
    window.dash_ag_grid.getApiAsync(QUEUE).then(
      function (ready) {
        var waiting = st.apiWaiting || [];
        st.apiWaiting = null;
        st.api = ready;
        wire(ready);
        rebuild();
        for (var i = 0; i < waiting.length; i++) waiting[i](ready);
      },
      function () {
        st.apiWaiting = null;
        retryRebuild();
      }
    );
    return undefined;
  }

  function retryRebuild() {
    if (st.retryTimer) return;
    st.retryTimer = setTimeout(function () {
      st.retryTimer = null;
      rebuild();
    }, 200);
  }

  function wire(api) {
    api.addEventListener("rowClicked", function (e) {
      var target = e.event && e.event.target;
      // A click on the tick box selects for a bulk action; it does not open the case.
      if (target && target.closest && target.closest(".ag-selection-checkbox, .ag-checkbox")) return;
      if (e.data) D.open(e.data.id);
    });
    api.addEventListener("selectionChanged", function () {
      var n = api.getSelectedRows().length;
      var el = document.getElementById("lq-bulk-count");
      if (el) el.textContent = String(n);
      setProps("lq-bulk-button", { disabled: n === 0 });
    });
  }

  function pad(n) {
    return (n < 10 ? "0" : "") + n;
  }

  // 45秒 · 4:05 · 2小时05分 · 3天: short enough for a narrow column, exact where it matters.
  function span(ms) {
    var L = labels();
    var s = Math.max(0, Math.floor(ms / 1000));
    if (s < 60) return s + (L.unit_s || "s");
    if (s < 3600) return Math.floor(s / 60) + ":" + pad(s % 60);
    if (s < 86400) return Math.floor(s / 3600) + (L.unit_h || "h") + pad(Math.floor((s % 3600) / 60)) + (L.unit_min || "min");
    return Math.floor(s / 86400) + (L.unit_d || "d");
  }

  function remaining(c, overdue) {
    if (c.deadline == null || (lq.live && lq.live.isTerminal && lq.live.isTerminal(c.status))) return "–";
    var left = c.deadline - now();
    if (overdue) return (labels().overdue_by || "late") + " " + span(-left);
    return span(left);
  }

  // Overdue first, then priority (1 urgent), then the nearest deadline: one sortable number.
  function urgency(c, overdue) {
    var group = (overdue ? 0 : 10) + (c.priority || 3);
    var deadline = c.deadline == null ? 9e12 : Math.min(Math.max(c.deadline, 0), 9e12);
    return group * 1e13 + deadline;
  }

  function isOverdue(c) {
    return lq.live && lq.live.isOverdue ? lq.live.isOverdue(c) : !!c.overdue;
  }

  // The distinguishing end of a long id (ids share prefixes such as HZ-20261202-): the
  // queue's narrow column shows "…OXGK000063", the tooltip and the search the whole id.
  var SHORT_ID = 12;
  function shortId(id) {
    id = String(id || "");
    return id.length <= SHORT_ID ? id : "\u2026" + id.slice(-(SHORT_ID - 2));
  }
  D.shortId = shortId;

  function toRow(c) {
    var L = labels();
    var overdue = isOverdue(c);
    return {
      id: c.id,
      shortId: shortId(c.id),
      status: c.status,
      statusLabel: (L.status || {})[c.status] || c.status,
      priority: c.priority || 3,
      category: c.category,
      categoryLabel: (L.category || {})[c.category] || c.category,
      title: c.title || "",
      unit: c.unit || "",
      grid: c.grid || "",
      department: c.department || "",
      deadline: c.deadline,
      overdue: overdue,
      remaining: remaining(c, overdue),
      urgency: urgency(c, overdue),
      version: c.version,
      open: c.id === st.open,
    };
  }

  function within(list, value) {
    return !list || !list.length || list.indexOf(value) >= 0;
  }

  function passes(c) {
    var f = st.filters;
    var statuses = f.status && f.status.length ? f.status : cfg().queueStatuses || [];
    if (statuses.indexOf(c.status) < 0) return false;
    var zone = (cfg().gridZone || {})[c.grid];
    return (
      within(f.category, c.category) &&
      within(f.grid, c.grid) &&
      within(f.zone, zone) &&
      within(f.department, c.department)
    );
  }

  function updateCount() {
    var el = document.getElementById("lq-queue-count");
    if (el) el.textContent = String(Object.keys(st.rows).length) + (labels().count_suffix || "");
  }

  function rebuild() {
    if (!onConsole()) return;
    withApi(function (api) {
      var all = cases();
      var rows = [];
      st.rows = {};
      Object.keys(all).forEach(function (id) {
        var c = all[id];
        if (!passes(c)) return;
        var row = toRow(c);
        st.rows[id] = row;
        rows.push(row);
      });
      api.setGridOption("rowData", rows);
      updateCount();
    });
  }

  // A delta: only the rows it names change (add, update, or leave the queue).
  function onChanged(info) {
    if (!onConsole()) return;
    if (!info || info.snapshot || !info.cases) {
      rebuild();
    } else {
      withApi(function (api) {
        var all = cases();
        var tx = { add: [], update: [], remove: [] };
        for (var i = 0; i < info.cases.length; i++) {
          var id = info.cases[i];
          var c = all[id];
          var had = st.rows[id];
          if (c && passes(c)) {
            var row = toRow(c);
            st.rows[id] = row;
            (had ? tx.update : tx.add).push(row);
          } else if (had) {
            delete st.rows[id];
            tx.remove.push({ id: id });
          }
        }
        if (tx.add.length || tx.update.length || tx.remove.length) api.applyTransaction(tx);
        updateCount();
      });
      if (st.open && info.cases.indexOf(st.open) >= 0) refreshIfNewer();
    }
    drawNearest();
  }

  // Every second: countdowns move, cases cross their deadline, the open case's clock ticks.
  function tick() {
    if (!onConsole()) return;
    var all = cases();
    var changed = [];
    Object.keys(st.rows).forEach(function (id) {
      var c = all[id];
      var row = st.rows[id];
      if (!c) return;
      var overdue = isOverdue(c);
      var text = remaining(c, overdue);
      if (text !== row.remaining || overdue !== row.overdue) {
        var next = toRow(c);
        st.rows[id] = next;
        changed.push(next);
      }
    });
    if (changed.length && st.api) st.api.applyTransaction({ update: changed });
    countdown();
  }

  function countdown() {
    var el = document.querySelector(".lq-countdown[data-deadline]");
    if (!el) return;
    var deadline = Number(el.getAttribute("data-deadline"));
    if (!deadline) {
      el.textContent = "";
      return;
    }
    var left = deadline - now();
    var L = labels();
    var text = left < 0 ? (L.overdue_by || "late") + " " + span(-left) : (cfg().text || {}).remaining_left + " " + span(left);
    if (el.textContent !== text) el.textContent = text;
    el.classList.toggle("lq-overdue-text", left < 0);
  }

  // ---- the open case --------------------------------------------------------------------
  function shownVersion() {
    var head = document.querySelector(".lq-case-head[data-version]");
    if (!head || head.getAttribute("data-case") !== st.open) return null;
    return Number(head.getAttribute("data-version"));
  }

  // The open case changed on the server (a producer, another lead): read it again, at most
  // twice a second however fast it changes.
  function refreshIfNewer() {
    var c = cases()[st.open];
    var shown = shownVersion();
    if (!c || shown === null || c.version <= shown) return;
    var wait = Math.max(0, 500 - (Date.now() - st.lastRefresh));
    clearTimeout(st.refreshTimer);
    st.refreshTimer = setTimeout(function () {
      st.lastRefresh = Date.now();
      if (st.open) setProps(OPEN, { data: { id: st.open, n: Date.now() } });
    }, wait);
  }

  function markOpen(id) {
    var prev = st.open;
    st.open = id;
    withApi(function (api) {
      var update = [];
      [prev, id].forEach(function (key) {
        var row = key && st.rows[key];
        if (!row) return;
        var next = Object.assign({}, row, { open: key === id });
        st.rows[key] = next;
        update.push(next);
      });
      if (update.length) api.applyTransaction({ update: update });
      var node = id && api.getRowNode(id);
      if (node && node.displayed !== false) api.ensureNodeVisible(node);
    });
  }

  D.open = function (id) {
    if (!id || !onConsole()) return;
    markOpen(id);
    st.lastRefresh = Date.now();
    setProps(OPEN, { data: { id: id, n: Date.now() } });
  };

  D.close = function () {
    markOpen(null);
    st.nearest = [];
    st.caseState = null;
    drawNearest();
    setProps(OPEN, { data: { id: null, n: Date.now() } });
  };

  // ---- the map: the open case and lines to its nearest units ------------------------------
  function display(lat, lon) {
    return cfg().displayCrs === "gcj02" && lq.geo ? lq.geo.wgs84ToGcj02(lat, lon) : [lat, lon];
  }

  function layer() {
    var map = lq.live && lq.live.map && lq.live.map();
    if (!map) return null;
    if (!st.layer || st.layer._map !== map) {
      if (!map.getPane("lqDispatch")) {
        var pane = map.createPane("lqDispatch");
        pane.style.zIndex = 640; // over the dots and units, under popups
        pane.style.pointerEvents = "none";
      }
      st.layer = L.layerGroup().addTo(map);
    }
    return st.layer;
  }

  function drawNearest() {
    var group = layer();
    if (!group) return;
    var map = lq.live.map();
    group.clearLayers();
    var cs = st.caseState;
    if (!cs || cs.lat == null) return;
    var live = cases()[cs.id];
    var at = display(live ? live.lat : cs.lat, live ? live.lon : cs.lon);
    var all = units();
    var colors = cfg().unitColors || {};
    for (var i = st.nearest.length - 1; i >= 0; i--) {
      var u = st.nearest[i];
      var pos = all[u.id] || u; // follow the unit as it moves
      var to = display(pos.lat, pos.lon);
      L.polyline([at, to], {
        pane: "lqDispatch",
        color: u.busy ? colors.busy || "#CC79A7" : "#39d98a",
        weight: i === 0 ? 3.5 : 2,
        opacity: i === 0 ? 0.95 : 0.7,
        dashArray: u.busy ? "6 6" : null,
        interactive: false,
        className: "lq-near-line",
      }).addTo(group);
      var badge = L.marker(around(map, at, to, i), {
        pane: "lqDispatch",
        interactive: false,
        keyboard: false,
        icon: L.divIcon({ className: "lq-near-badge" + (u.busy ? " lq-near-badge-busy" : ""), iconSize: [20, 20] }),
      }).addTo(group);
      var el = badge.getElement && badge.getElement();
      if (el) {
        el.textContent = String(i + 1);
        el.setAttribute("data-near", u.id);
      }
    }
    L.circleMarker(at, {
      pane: "lqDispatch",
      radius: 13,
      color: "#ffffff",
      weight: 2.5,
      dashArray: "5 4",
      fill: false,
      interactive: false,
      className: "lq-selected",
    }).addTo(group);
  }

  // A unit's numbered badge: on the unit, unless that is on top of the case (a unit at the
  // door) — then on a ring around the case, in the unit's direction (or by rank), so the
  // case and every number stay readable.
  var RING_PX = 26;
  function around(map, at, to, rank) {
    var c = map.latLngToLayerPoint(L.latLng(at));
    var u = map.latLngToLayerPoint(L.latLng(to));
    var dx = u.x - c.x;
    var dy = u.y - c.y;
    var d = Math.sqrt(dx * dx + dy * dy);
    if (d >= RING_PX) return to;
    var angle = d > 2 ? Math.atan2(dy, dx) : (rank * Math.PI) / 4 - Math.PI / 2;
    var p = L.point(c.x + Math.cos(angle) * RING_PX, c.y + Math.sin(angle) * RING_PX);
    return map.layerPointToLatLng(p);
  }

  // Opening a case zooms the map to it and its suggested units (so they spread around it,
  // numbered), close enough to read the street, never past street level.
  var FOCUS_MAX_ZOOM = 17;
  var FOCUS_MIN_ZOOM = 14;
  function focusCase(cs) {
    var map = lq.live && lq.live.map && lq.live.map();
    if (!map || !cs || cs.lat == null) return;
    var ll = L.latLng(display(cs.lat, cs.lon));
    var bounds = L.latLngBounds([ll, ll]);
    var all = units();
    for (var i = 0; i < st.nearest.length; i++) {
      var u = st.nearest[i];
      var pos = all[u.id] || u;
      if (pos.lat != null) bounds.extend(L.latLng(display(pos.lat, pos.lon)));
    }
    var zoom = map.getBoundsZoom(bounds.pad(0.15), false);
    zoom = Math.max(FOCUS_MIN_ZOOM, Math.min(FOCUS_MAX_ZOOM, zoom));
    map.setView(ll, zoom, { animate: false });
    st.focused = cs.id;
  }

  function watchZoom(map) {
    if (!map || map._lqDispatchZoom) return;
    map._lqDispatchZoom = true;
    map.on("zoomend", drawNearest); // badges on the ring depend on the zoom
  }

  // ---- keyboard -------------------------------------------------------------------------
  function typing(target) {
    if (!target) return false;
    var tag = (target.tagName || "").toLowerCase();
    return tag === "input" || tag === "textarea" || tag === "select" || target.isContentEditable;
  }

  function step(delta) {
    withApi(function (api) {
      var count = api.getDisplayedRowCount();
      if (!count) return;
      var node = st.open ? api.getRowNode(st.open) : null;
      var index = node && node.rowIndex != null ? node.rowIndex + delta : delta > 0 ? 0 : count - 1;
      index = Math.max(0, Math.min(count - 1, index));
      var next = api.getDisplayedRowAtIndex(index);
      if (next && next.data) D.open(next.data.id);
    });
  }

  D.pickFirst = function () {
    var first = st.nearest[0];
    if (!first) return false;
    setProps("lq-assign-unit", { value: first.id });
    var button = document.getElementById("lq-assign-button");
    if (button && button.offsetParent !== null) button.focus();
    return true;
  };

  function onKey(e) {
    if (!onConsole() || e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key === "Escape") {
      if (typing(e.target)) e.target.blur();
      D.close();
      return;
    }
    if (typing(e.target)) return;
    var key = e.key.toLowerCase();
    if (key === "j" || (key === "arrowdown" && !inGrid(e.target))) {
      e.preventDefault();
      step(1);
    } else if (key === "k" || (key === "arrowup" && !inGrid(e.target))) {
      e.preventDefault();
      step(-1);
    } else if (key === "a") {
      if (D.pickFirst()) e.preventDefault();
    } else if (key === "/") {
      var search = document.getElementById("lq-case-search");
      if (search) {
        e.preventDefault();
        search.focus();
      }
    }
  }

  function inGrid(target) {
    return !!(target && target.closest && target.closest(".ag-root-wrapper"));
  }

  // ---- clientside callbacks (callbacks/dispatch.py) ---------------------------------------
  var dc = (window.dash_clientside = window.dash_clientside || {});
  var noUpdate = function () {
    return dc.no_update;
  };

  dc.lq_dispatch = {
    filters: function (status, category, grid, zone, department) {
      hook();
      st.filters = {
        status: status || [],
        category: category || [],
        grid: grid || [],
        zone: zone || [],
        department: department || [],
      };
      rebuild();
      return st.filters;
    },
    nearest: function (list, caseState) {
      hook();
      st.nearest = list || [];
      var moved = !st.caseState || !caseState || st.caseState.id !== caseState.id;
      st.caseState = caseState || null;
      if (caseState && caseState.id !== st.open) markOpen(caseState.id);
      watchZoom(lq.live && lq.live.map && lq.live.map());
      if ((moved || st.focused !== (caseState && caseState.id)) && caseState) focusCase(caseState);
      drawNearest();
      countdown();
      return noUpdate();
    },
    // A suggested unit's button: select it in the assign dropdown. The dropdown's options
    // were read when the page loaded; a unit that first pinged since is added to them.
    pick: function (_clicks, options) {
      var skip = [dc.no_update, dc.no_update];
      var trig = (dc.callback_context && dc.callback_context.triggered) || [];
      if (!trig.length || !trig[0].value) return skip;
      var propId = trig[0].prop_id;
      var unit;
      try {
        unit = JSON.parse(propId.slice(0, propId.lastIndexOf("."))).unit;
      } catch (err) {
        return skip;
      }
      var list = options || [];
      for (var i = 0; i < list.length; i++) {
        if (list[i].value === unit) return [unit, dc.no_update];
      }
      var known = (st.nearest || []).filter(function (u) { return u.id === unit; })[0];
      var label = known && known.name && known.name !== unit ? unit + " " + known.name : unit;
      return [unit, list.concat([{ value: unit, label: String(label) }])];
    },
    bulk: function () {
      if (!st.api) return noUpdate();
      var all = cases();
      var picked = st.api.getSelectedRows().map(function (row) {
        var c = all[row.id];
        return { id: row.id, version: c ? c.version : row.version };
      });
      return picked.length ? { cases: picked, n: Date.now() } : noUpdate();
    },
    // The lead checked what someone else changed: open the case again, accepting the
    // version they saw (a newer one than that asks again).
    confirm: function (clicks, caseState) {
      if (!clicks || !caseState || caseState.latest == null) return noUpdate();
      return { id: caseState.id, n: Date.now(), accept: caseState.latest };
    },
    search: function (value) {
      var id = (value || "").trim();
      if (!id) return noUpdate();
      markOpen(id);
      return { id: id, n: Date.now() };
    },
  };

  D.state = st; // diagnostics and tests
  hook();
  window.addEventListener("load", hook);
})();
