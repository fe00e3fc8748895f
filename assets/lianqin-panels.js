/*
 * Lianqin wall panels: KPI tiles with trend arrows, the ticker of the newest cases, the
 * overdue list, cases by category, hourly volume today vs yesterday, unit status.
 *
 * The figures come from the KPI summary a worker pushes over the same Socket.IO
 * connection (`kpis` events, a copy in every snapshot); the ticker and the overdue list
 * are read from the live state that lianqin-live.js keeps (window.lianqin.cases), so the
 * browser never polls and never re-queries history. Rendering is throttled and keyed by
 * id (rows are updated in place, so a flashing row does not restart its animation).
 *
 * Untrusted text (titles) only ever reaches the DOM through textContent.
 */
(function () {
  "use strict";

  var lq = (window.lq = window.lq || {});
  var live = lq.live;
  if (!live || !live.on) return;

  var THROTTLE_MS = 400;
  var MAX_ROWS = 12;
  var gridNames = {};
  var lastRender = 0;
  var timer = null;
  var hoursBuilt = false;

  function cfg() {
    return live.config() || {};
  }

  function label(key) {
    return (cfg().labels || {})[key] || key;
  }

  function labelOf(group, code) {
    var table = (cfg().labels || {})[group] || {};
    return table[code] || code || "";
  }

  function en() {
    return cfg().lang === "en";
  }

  function make(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function setText(node, text) {
    if (node && node.textContent !== text) node.textContent = text;
  }

  // ---- formats --------------------------------------------------------------------------
  function unit(n, key) {
    return n + label(key); // "2分5秒" / "2m 5s": short enough for a tile
  }

  function fmtDuration(s) {
    if (s === null || s === undefined) return "—";
    // Whole seconds first: rounding minutes and seconds apart gave "1分60秒" for 119.6 s.
    s = Math.max(0, Math.round(Number(s)));
    if (s < 60) return unit(s, "unit_s");
    if (s < 3600) {
      var m = Math.floor(s / 60);
      var rest = s - m * 60;
      return unit(m, "unit_min") + (rest ? (en() ? " " : "") + unit(rest, "unit_s") : "");
    }
    if (s < 2 * 86400) return unit((s / 3600).toFixed(1), "unit_h");
    return unit((s / 86400).toFixed(1), "unit_d");
  }

  function fmtValue(fmt, v) {
    if (v === null || v === undefined) return "—";
    if (fmt === "rate") return v >= 0.9995 ? "100%" : (v * 100).toFixed(1) + "%";
    if (fmt === "duration") return fmtDuration(v);
    if (fmt === "units") return String(v.total);
    return String(v);
  }

  function fmtAge(ms) {
    var s = Math.max(0, Math.round(ms / 1000));
    if (s < 10) return label("just_now");
    if (s < 60) return s + (en() ? " " : "") + label("seconds_ago");
    if (s < 3600) return Math.floor(s / 60) + (en() ? " " : "") + label("minutes_ago");
    return Math.floor(s / 3600) + (en() ? " " : "") + label("hours_ago");
  }

  function fmtLate(ms) {
    var text = fmtDuration(ms / 1000);
    return en() ? text + " " + label("overdue_by") : label("overdue_by") + " " + text;
  }

  // ---- KPI tiles ------------------------------------------------------------------------
  function trendOf(fmt, better, today, yesterday) {
    if (today === null || today === undefined || yesterday === null || yesterday === undefined) return null;
    var d = today - yesterday;
    var eps = fmt === "rate" ? 0.0005 : fmt === "duration" ? 0.5 : 0;
    if (Math.abs(d) <= eps) return { arrow: "＝", text: "", cls: "flat" };
    var cls = "flat";
    if (better === "up") cls = d > 0 ? "better" : "worse";
    if (better === "down") cls = d < 0 ? "better" : "worse";
    var size;
    if (fmt === "rate") size = (Math.abs(d) * 100).toFixed(1) + (en() ? " pt" : "个点");
    else if (fmt === "duration") size = fmtDuration(Math.abs(d));
    else size = String(Math.abs(d));
    return { arrow: d > 0 ? "▲" : "▼", text: size, cls: cls };
  }

  function renderKpis(summary) {
    var today = summary.today || {};
    var yesterday = summary.yesterday || {};
    var tiles = document.querySelectorAll("#lq-kpis .lq-kpi");
    for (var i = 0; i < tiles.length; i++) {
      var tile = tiles[i];
      var name = tile.getAttribute("data-kpi");
      var kpi = (cfg().kpis || {})[name] || {}; // how it reads: dashboard/vocabulary.py
      var fmt = kpi.format;
      var better = kpi.better;
      var sub = tile.getAttribute("data-sub");
      var value = today[name];
      setText(tile.querySelector(".lq-kpi-value"), fmtValue(fmt, value));
      var subText = "";
      if (sub) subText = label("p90") + " " + fmtDuration(today[sub]);
      else if (name === "units_online" && value) subText = labelOf("unitStatus", "available") + " " + value.available;
      else if (name === "coverage_5min") subText = "≤ 5" + (en() ? " min" : "分钟");
      setText(tile.querySelector(".lq-kpi-sub"), subText);
      var trendEl = tile.querySelector(".lq-kpi-trend");
      var trend = name in yesterday ? trendOf(fmt, better, value, yesterday[name]) : null;
      setText(trendEl, trend ? trend.arrow + (trend.text ? " " + trend.text : "") : "");
      trendEl.className = "lq-kpi-trend" + (trend ? " lq-trend-" + trend.cls : "");
      if (trend) trendEl.setAttribute("title", label("vs_yesterday") + ": " + fmtValue(fmt, yesterday[name]));
      var alarm = name === "overdue" && value > 0;
      tile.classList.toggle("lq-kpi-alarm", alarm);
      tile.setAttribute("data-value", value === null || value === undefined ? "" : JSON.stringify(value));
    }
    renderUnits(today.units_online);
    renderCategories(summary.by_category || {});
    renderHourly(summary);
  }

  // ---- unit status ----------------------------------------------------------------------
  function renderUnits(online) {
    var body = document.querySelector("#lq-units-panel .lq-units-body");
    if (!body) return;
    if (!body.firstChild) {
      var row = make("div", "lq-unit-counts");
      ["available", "busy", "off_duty"].forEach(function (status) {
        var cell = make("div", "lq-unit-count lq-unit-count-" + status);
        cell.setAttribute("data-status", status);
        var sw = make("span", "lq-swatch lq-swatch-unit");
        sw.style.backgroundColor = (cfg().unitColors || {})[status] || "#999";
        cell.appendChild(sw);
        cell.appendChild(make("span", "lq-unit-count-label", labelOf("unitStatus", status)));
        cell.appendChild(make("span", "lq-unit-count-value", "–"));
        row.appendChild(cell);
      });
      body.appendChild(row);
      body.appendChild(make("div", "lq-unit-kinds", ""));
    }
    if (online) {
      ["available", "busy", "off_duty"].forEach(function (status) {
        var cell = body.querySelector('[data-status="' + status + '"] .lq-unit-count-value');
        setText(cell, String(online[status] || 0));
      });
    }
  }

  function renderUnitKinds() {
    var node = document.querySelector("#lq-units-panel .lq-unit-kinds");
    if (!node) return;
    var units = (window.lianqin && window.lianqin.units) || {};
    var now = live.serverNow();
    var counts = {};
    Object.keys(units).forEach(function (id) {
      var u = units[id];
      if (!u || !u.ts || now - u.ts > 300000) return;
      var kind = u.kind || "unknown";
      counts[kind] = (counts[kind] || 0) + 1;
    });
    var parts = ["patrol", "grid_worker", "vehicle", "volunteer", "unknown"]
      .filter(function (k) {
        return counts[k];
      })
      .map(function (k) {
        return labelOf("unitKind", k) + " " + counts[k];
      });
    setText(node, parts.join(" · "));
  }

  // ---- cases by category ----------------------------------------------------------------
  function renderCategories(byCategory) {
    var list = document.querySelector("#lq-categories .lq-bars");
    if (!list) return;
    var entries = Object.keys(byCategory)
      .map(function (k) {
        return [k, byCategory[k]];
      })
      .sort(function (a, b) {
        return b[1] - a[1] || (a[0] < b[0] ? -1 : 1);
      });
    var max = entries.length ? entries[0][1] : 0;
    keyed(list, entries.slice(0, MAX_ROWS), function (e) {
      return e[0];
    }, function (li, e, fresh) {
      if (fresh) {
        li.className = "lq-bar-row";
        li.appendChild(make("span", "lq-bar-label"));
        var track = make("span", "lq-bar-track");
        track.appendChild(make("span", "lq-bar-fill"));
        li.appendChild(track);
        li.appendChild(make("span", "lq-bar-value"));
      }
      setText(li.children[0], labelOf("category", e[0]));
      li.children[1].firstChild.style.width = (max ? (100 * e[1]) / max : 0).toFixed(1) + "%";
      setText(li.children[2], String(e[1]));
    });
    emptyNote(list, entries.length === 0, label("no_cases"));
    fit(list);
  }

  // ---- hourly volume --------------------------------------------------------------------
  function renderHourly(summary) {
    var box = document.querySelector("#lq-hourly .lq-hours");
    if (!box || !summary.hourly) return;
    var today = summary.hourly.today || [];
    var yesterday = summary.hourly.yesterday || [];
    if (!hoursBuilt) {
      var legend = make("div", "lq-hours-legend");
      legend.appendChild(make("span", "lq-key lq-key-today"));
      legend.appendChild(make("span", "lq-hours-today", label("today")));
      legend.appendChild(make("span", "lq-key lq-key-yesterday"));
      legend.appendChild(make("span", "lq-hours-yesterday", label("yesterday")));
      legend.appendChild(make("span", "lq-hours-peak", ""));
      box.appendChild(legend);
      var chart = make("div", "lq-hours-chart");
      for (var h = 0; h < 24; h++) {
        var col = make("div", "lq-hour");
        col.setAttribute("data-hour", String(h));
        col.appendChild(make("span", "lq-hour-y"));
        col.appendChild(make("span", "lq-hour-t"));
        chart.appendChild(col);
      }
      box.appendChild(chart);
      var axis = make("div", "lq-hours-axis");
      for (var a = 0; a < 24; a += 3) axis.appendChild(make("span", "lq-hours-tick", String(a)));
      box.appendChild(axis);
      hoursBuilt = true;
    }
    var max = 1;
    for (var i = 0; i < 24; i++) max = Math.max(max, today[i] || 0, yesterday[i] || 0);
    var current = summary.day_start ? Math.floor((live.serverNow() - summary.day_start) / 3600000) : -1;
    var cols = box.querySelectorAll(".lq-hour");
    for (var j = 0; j < cols.length; j++) {
      cols[j].children[0].style.height = ((100 * (yesterday[j] || 0)) / max).toFixed(1) + "%";
      cols[j].children[1].style.height = ((100 * (today[j] || 0)) / max).toFixed(1) + "%";
      cols[j].classList.toggle("lq-hour-now", j === current);
      cols[j].setAttribute("data-today", String(today[j] || 0));
      cols[j].setAttribute("data-yesterday", String(yesterday[j] || 0));
    }
    var t = summary.today || {};
    var y = summary.yesterday || {};
    setText(box.querySelector(".lq-hours-today"), label("today") + " " + (t.reported == null ? "–" : t.reported));
    setText(
      box.querySelector(".lq-hours-yesterday"),
      label("yesterday") + (en() ? " (" + label("same_time") + ") " : "（" + label("same_time") + "）") + (y.reported == null ? "–" : y.reported)
    );
    setText(box.querySelector(".lq-hours-peak"), label("peak") + " " + max);
  }

  // ---- ticker and overdue list ----------------------------------------------------------
  function newest(cases, k) {
    var top = [];
    var ids = Object.keys(cases);
    for (var i = 0; i < ids.length; i++) {
      var c = cases[ids[i]];
      if (c.status === "cancelled" || !c.reported) continue;
      if (top.length < k || c.reported > top[top.length - 1].reported) {
        var at = top.length;
        while (at > 0 && top[at - 1].reported < c.reported) at--;
        top.splice(at, 0, c);
        if (top.length > k) top.pop();
      }
    }
    return top;
  }

  function gridName(code) {
    return (code && (gridNames[code] || code)) || "—";
  }

  function caseRow(li, c, fresh, lateText) {
    if (fresh) {
      var row1 = make("div", "lq-tk-row1");
      row1.appendChild(make("span", "lq-tk-dot"));
      row1.appendChild(make("span", "lq-tk-cat"));
      row1.appendChild(make("span", "lq-tk-title"));
      row1.appendChild(make("span", "lq-tk-age"));
      var row2 = make("div", "lq-tk-row2");
      row2.appendChild(make("span", "lq-tk-grid"));
      row2.appendChild(make("span", "lq-tk-meta"));
      li.appendChild(row1);
      li.appendChild(row2);
    }
    var colors = cfg().colors || {};
    var row1el = li.children[0];
    var row2el = li.children[1];
    row1el.children[0].style.backgroundColor = colors[c.status] || "#999";
    row1el.children[0].setAttribute("data-status", c.status);
    setText(row1el.children[1], labelOf("category", c.category));
    setText(row1el.children[2], c.title || "");
    setText(row1el.children[3], lateText);
    setText(row2el.children[0], gridName(c.grid));
    setText(
      row2el.children[1],
      lateText && li.classList.contains("lq-od") ? labelOf("status", c.status) : labelOf("source", c.source)
    );
    li.setAttribute("data-case", c.id);
  }

  var namesAsked = false;

  function renderTicker() {
    var list = document.querySelector("#lq-ticker .lq-ticker-list");
    if (!list) return;
    if (!namesAsked) {
      namesAsked = true; // only a wall asks (these scripts load on every page)
      loadGridNames();
    }
    var cases = (window.lianqin && window.lianqin.cases) || {};
    var now = live.serverNow();
    var rows = newest(cases, MAX_ROWS);
    keyed(list, rows, function (c) {
      return c.id;
    }, function (li, c, fresh) {
      if (fresh) li.className = "lq-item lq-tick";
      caseRow(li, c, fresh, fmtAge(now - c.reported));
    });
    emptyNote(list, rows.length === 0, label("no_cases"));
    fit(list);
  }

  function renderOverdue() {
    var list = document.querySelector("#lq-overdue-panel .lq-overdue-list");
    if (!list) return;
    var cases = (window.lianqin && window.lianqin.cases) || {};
    var now = live.serverNow();
    var due = [];
    var ids = Object.keys(cases);
    for (var i = 0; i < ids.length; i++) {
      var c = cases[ids[i]];
      if (c._overdue) due.push(c);
    }
    // The most urgent first, then the longest overdue.
    due.sort(function (a, b) {
      return (a.priority || 3) - (b.priority || 3) || (a.deadline || 0) - (b.deadline || 0);
    });
    keyed(list, due.slice(0, MAX_ROWS), function (c) {
      return c.id;
    }, function (li, c, fresh) {
      if (fresh) li.className = "lq-item lq-od";
      li.classList.toggle("lq-od-urgent", (c.priority || 3) === 1);
      caseRow(li, c, fresh, fmtLate(c.deadline ? now - c.deadline : 0));
    });
    emptyNote(list, due.length === 0, label("none_overdue"));
    moreNote(list, due.length);
    var title = document.querySelector("#lq-overdue-panel .lq-panel-title");
    if (title) {
      var badge = title.querySelector(".lq-panel-count");
      if (!badge) {
        badge = make("span", "lq-panel-count");
        title.appendChild(badge);
      }
      setText(badge, String(due.length));
      badge.classList.toggle("lq-panel-count-alarm", due.length > 0);
    }
  }

  // ---- helpers --------------------------------------------------------------------------
  // Update a list in place: rows keyed by id, created once, moved only when out of order.
  function keyed(list, items, keyOf, fill) {
    var existing = {};
    var i;
    for (i = 0; i < list.children.length; i++) {
      var child = list.children[i];
      var k = child.getAttribute("data-key");
      if (k !== null) existing[k] = child;
    }
    var keep = {};
    for (i = 0; i < items.length; i++) {
      var key = String(keyOf(items[i]));
      var li = existing[key];
      var fresh = !li;
      if (fresh) {
        li = document.createElement("li");
        li.setAttribute("data-key", key);
      }
      li.hidden = false;
      fill(li, items[i], fresh);
      if (list.children[i] !== li) list.insertBefore(li, list.children[i] || null);
      keep[key] = true;
    }
    Object.keys(existing).forEach(function (k) {
      if (!keep[k]) existing[k].remove();
    });
  }

  function emptyNote(list, empty, text) {
    var note = list.parentNode && list.parentNode.querySelector(".lq-tk-empty");
    if (empty && !note) {
      note = make("div", "lq-tk-empty", text);
      list.parentNode.appendChild(note);
    } else if (!empty && note) {
      note.remove();
    }
  }

  // Fit the rows, and say how many more there are when some do not fit ("还有 5 条"): the
  // count in the title is every overdue case, the rows only those that fit. The note takes
  // its line first, so the rows fit around it; no hidden row, no note.
  function moreNote(list, total) {
    var note = list.parentNode && list.parentNode.querySelector(".lq-more");
    if (!note) {
      fit(list);
      return;
    }
    note.hidden = false;
    fit(list);
    var shown = 0;
    for (var i = 0; i < list.children.length; i++) {
      if (!list.children[i].hidden && list.children[i].hasAttribute("data-key")) shown++;
    }
    var rest = total - shown;
    if (rest > 0) {
      setText(note, label("more_rows").replace("{n}", String(rest)));
      note.setAttribute("data-more", String(rest));
    } else {
      note.hidden = true;
      note.setAttribute("data-more", "0");
      fit(list);
    }
  }

  // Hide the rows that do not fit the panel: nothing is ever cut in half on the wall.
  function fit(list) {
    var rows = list.children;
    var i;
    for (i = 0; i < rows.length; i++) rows[i].hidden = false;
    var limit = list.clientHeight;
    for (i = 0; i < rows.length; i++) {
      var row = rows[i];
      row.hidden = row.offsetTop - list.offsetTop + row.offsetHeight > limit + 1;
    }
  }

  function renderLists() {
    lastRender = Date.now();
    renderTicker();
    renderOverdue();
    renderUnitKinds();
    var bars = document.querySelector("#lq-categories .lq-bars");
    if (bars) fit(bars); // fonts and panel sizes settle after the first render
  }

  function schedule() {
    if (timer) return;
    var wait = Math.max(0, THROTTLE_MS - (Date.now() - lastRender));
    timer = setTimeout(function () {
      timer = null;
      renderLists();
    }, wait);
  }

  function loadGridNames() {
    if (typeof fetch === "undefined") return;
    fetch("/api/v1/geo/grids", { credentials: "same-origin" })
      .then(function (r) {
        return r.ok ? r.json() : null;
      })
      .then(function (fc) {
        if (!fc || !fc.features) return;
        fc.features.forEach(function (f) {
          var p = f.properties || {};
          if (p.code) gridNames[p.code] = p.name || p.code;
        });
        renderLists();
      })
      .catch(function () {
        /* names are a nicety: codes are shown instead */
      });
  }

  live.on("changed", schedule);
  live.on("kpis", function (summary) {
    renderKpis(summary);
    schedule();
  });
  setInterval(function () {
    renderLists();
    var k = window.lianqin && window.lianqin.kpis;
    if (k) renderHourly(k); // the current hour moves with the clock
  }, 1000);
  window.addEventListener("resize", function () {
    renderLists();
  });

  lq.panels = { render: renderLists, fmtDuration: fmtDuration, fmtValue: fmtValue };
})();
