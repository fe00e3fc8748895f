/* The briefing view (/trends): the grid choropleth's style and the replay of a shift.
 *
 * The replay plays the stored history the server sent (cases with their stage times, the
 * units' tracks thinned to a position per time step) on the map: cases appear when they
 * were reported and change color as they moved through the lifecycle, units move along
 * their tracks. Play / pause, a time slider and a speed (1×–1440×) control it; everything
 * runs here, in the browser, with no server round trip. Case ids are drawn as text only.
 */
(function () {
  "use strict";
  var lq = (window.lq = window.lq || {});
  var tr = (lq.trends = lq.trends || {});
  var IDS = {
    play: "lq-trends-replay-play",
    slider: "lq-trends-replay-slider",
    clock: "lq-trends-replay-clock",
    info: "lq-trends-replay-info",
  };
  var FRAME_MS = 100; // redraw at most ten times a second
  var SLIDER_MS = 250; // and move the slider four times a second

  var replay = {
    layer: null,
    map: null,
    data: null,
    t: 0,
    playing: false,
    speed: 60,
    last: 0,
    drawn: 0,
    slid: 0,
    sliderValue: -1,
    caseMarkers: {},
    unitMarkers: {},
    raf: null,
  };
  tr.replay = replay; // for diagnostics and the browser test

  function setProps(id, props) {
    if (window.dash_clientside && window.dash_clientside.set_props) {
      window.dash_clientside.set_props(id, props);
    }
  }

  // -- the grid choropleth ---------------------------------------------------------------
  // Cases per grid arrive in a store (callbacks/trends.py); the grid layers are restyled
  // in place, so a new period recolors the map without reloading its polygons.
  tr.choroplethData = { counts: {}, max: 0, colors: null };
  tr.gridLayers = {};

  tr.gridStyle = function (feature) {
    var h = tr.choroplethData;
    var steps = h.colors || ["#2D1E4F", "#3B528B", "#21918C", "#5EC962", "#FDE725"];
    var code = feature && feature.properties && feature.properties.code;
    var n = (h.counts && code && h.counts[code]) || 0;
    var base = { color: "#2c4a7a", weight: 0.8, opacity: 0.7, fill: true };
    if (!n || !h.max) {
      base.fillOpacity = 0; // fill stays on: setStyle cannot turn it on later
      return base;
    }
    var i = Math.min(steps.length - 1, Math.floor((n / h.max) * steps.length));
    base.fillColor = steps[i];
    base.fillOpacity = 0.62;
    return base;
  };

  tr.gridFeature = function (feature, layer) {
    var p = (feature && feature.properties) || {};
    if (p.code) tr.gridLayers[p.code] = layer;
    layer.bindTooltip(
      function () {
        var el = document.createElement("span");
        var n = (tr.choroplethData.counts && tr.choroplethData.counts[p.code]) || 0;
        el.textContent = String(p.name || "") + " · " + String(p.code || "") + ": " + n;
        return el;
      },
      { sticky: true, className: "lq-tr-tip" }
    );
  };

  function restyleGrids() {
    Object.keys(tr.gridLayers).forEach(function (code) {
      var layer = tr.gridLayers[code];
      if (layer._map) layer.setStyle(tr.gridStyle(layer.feature));
    });
  }

  // -- the replay ------------------------------------------------------------------------
  tr.bindReplay = function (e, ctx) {
    replay.layer = e.target;
    replay.map = (ctx && ctx.map) || e.target._map;
    if (replay.data) draw(true);
  };

  // The stages in lifecycle order and the hollow (terminal) ones come with the replay's data
  // (callbacks/trends.py, from dashboard/vocabulary.py).
  function stageAt(c, t, stages) {
    var current = null;
    for (var i = 0; i < stages.length; i++) {
      var at = c.t[stages[i]];
      if (at !== undefined && at <= t) {
        if (current === null || at >= c.t[current]) current = stages[i];
      }
    }
    return current;
  }

  function positionAt(track, t) {
    if (!track.length) return null;
    // Positions are averaged per time step and placed at its middle: a unit seen in the
    // first step is shown from the step's start.
    var lead = ((replay.data && replay.data.step_s) || 0) * 1000;
    if (t < track[0][0] - lead) return null;
    if (t < track[0][0]) return [track[0][1], track[0][2]];
    var lo = 0;
    var hi = track.length - 1;
    if (t >= track[hi][0]) return [track[hi][1], track[hi][2]];
    while (hi - lo > 1) {
      var mid = (lo + hi) >> 1;
      if (track[mid][0] <= t) lo = mid;
      else hi = mid;
    }
    var a = track[lo];
    var b = track[hi];
    var f = (t - a[0]) / Math.max(1, b[0] - a[0]);
    return [a[1] + (b[1] - a[1]) * f, a[2] + (b[2] - a[2]) * f];
  }

  function clearMarkers() {
    [replay.caseMarkers, replay.unitMarkers].forEach(function (markers) {
      Object.keys(markers).forEach(function (id) {
        markers[id].remove();
      });
    });
    replay.caseMarkers = {};
    replay.unitMarkers = {};
  }

  function fmtClock(ms) {
    var d = replay.data;
    try {
      return new Intl.DateTimeFormat("zh-CN", {
        timeZone: (d && d.tz) || undefined,
        month: "2-digit",
        day: "2-digit",
        hour: "2-digit",
        minute: "2-digit",
        hour12: false,
      }).format(new Date(ms));
    } catch (err) {
      return new Date(ms).toISOString().slice(5, 16).replace("T", " ");
    }
  }

  function draw(force) {
    var d = replay.data;
    if (!d || !replay.layer) return;
    var colors = d.colors || {};
    var stages = (d.statuses && d.statuses.order) || [];
    var hollow = {};
    ((d.statuses && d.statuses.terminal) || []).forEach(function (s) {
      hollow[s] = true;
    });
    var shown = 0;
    d.cases.forEach(function (c) {
      var stage = stageAt(c, replay.t, stages);
      var marker = replay.caseMarkers[c.id];
      if (!stage) {
        if (marker) marker.remove();
        return;
      }
      shown += 1;
      var color = colors[stage] || "#ffffff";
      var style = {
        radius: 5,
        color: color,
        weight: hollow[stage] ? 2 : 1,
        fillColor: color,
        fillOpacity: hollow[stage] ? 0 : 0.9,
      };
      if (!marker) {
        marker = L.circleMarker([c.lat, c.lon], style);
        marker.stage = stage;
        replay.caseMarkers[c.id] = marker;
      } else if (marker.stage !== stage || force) {
        marker.setStyle(style);
        marker.stage = stage;
      }
      if (!marker._map) marker.addTo(replay.layer);
    });
    var moving = 0;
    Object.keys(d.units).forEach(function (id) {
      var at = positionAt(d.units[id], replay.t);
      var marker = replay.unitMarkers[id];
      if (!at) {
        if (marker) marker.remove();
        return;
      }
      moving += 1;
      if (!marker) {
        // Units are squares (cases are dots), as on the wall and in the legend below the map.
        marker = L.marker(at, {
          icon: L.divIcon({ className: "lq-tr-unit", iconSize: [9, 9] }),
          interactive: false,
          keyboard: false,
        });
        replay.unitMarkers[id] = marker;
      } else {
        marker.setLatLng(at);
      }
      if (!marker._map) marker.addTo(replay.layer);
    });
    var labels = d.labels || {};
    var clock = document.getElementById(IDS.clock);
    if (clock) clock.textContent = fmtClock(replay.t);
    var info = document.getElementById(IDS.info);
    if (info) {
      info.textContent =
        shown + " " + (labels.cases || "") + " · " + moving + " " + (labels.units || "") +
        (d.note ? " · " + d.note : "");
    }
    replay.shown = shown;
  }

  function moveSlider() {
    var d = replay.data;
    if (!d) return;
    var value = Math.round(((replay.t - d.start) / Math.max(1, d.end - d.start)) * 1000);
    if (value !== replay.sliderValue) {
      replay.sliderValue = value;
      setProps(IDS.slider, { value: value });
    }
  }

  function playLabel(playing) {
    var button = document.getElementById(IDS.play);
    if (!button) return playing ? "❚❚" : "▶";
    return (playing ? "❚❚ " : "▶ ") + button.getAttribute(playing ? "data-pause" : "data-play");
  }

  function stop() {
    replay.playing = false;
    if (replay.raf) cancelAnimationFrame(replay.raf);
    replay.raf = null;
    setProps(IDS.play, { children: playLabel(false) });
  }

  function frame(now) {
    if (!replay.playing || !replay.data) return;
    var dt = replay.last ? now - replay.last : 0;
    replay.last = now;
    replay.t = Math.min(replay.data.end, replay.t + dt * replay.speed);
    if (now - replay.drawn >= FRAME_MS) {
      replay.drawn = now;
      draw(false);
    }
    if (now - replay.slid >= SLIDER_MS) {
      replay.slid = now;
      moveSlider();
    }
    if (replay.t >= replay.data.end) {
      draw(false);
      moveSlider();
      stop();
      return;
    }
    replay.raf = requestAnimationFrame(frame);
  }

  var dc = (window.dash_clientside = window.dash_clientside || {});
  dc.lqTrends = {
    choropleth: function (data) {
      tr.choroplethData = data || { counts: {}, max: 0, colors: null };
      restyleGrids(); // polygons that load later are styled from the data when created
      return "lq-tr-choropleth";
    },
    load: function (data) {
      if (replay.playing) stop();
      clearMarkers();
      replay.data = data || null;
      replay.t = data ? data.start : 0;
      replay.sliderValue = -1;
      setProps(IDS.play, { disabled: !data, children: playLabel(false) });
      if (data) {
        draw(true);
        moveSlider();
      } else {
        var clock = document.getElementById(IDS.clock);
        if (clock) clock.textContent = "--:--";
        var info = document.getElementById(IDS.info);
        if (info) info.textContent = "";
      }
      return data ? data.cases.length : 0;
    },
    toggle: function () {
      if (!replay.data) return playLabel(false);
      if (replay.playing) {
        stop();
        return playLabel(false);
      }
      if (replay.t >= replay.data.end) replay.t = replay.data.start; // play again from the start
      replay.playing = true;
      replay.last = 0;
      replay.raf = requestAnimationFrame(frame);
      return playLabel(true);
    },
    speed: function (value) {
      replay.speed = Math.max(1, Math.min(1440, Number(value) || 1));
      return "lq-tr-speed";
    },
    seek: function (value) {
      var d = replay.data;
      if (!d || value === replay.sliderValue) return "lq-tr-replay-clock"; // our own move
      replay.sliderValue = value;
      replay.t = d.start + ((d.end - d.start) * Number(value)) / 1000;
      draw(false);
      return "lq-tr-replay-clock";
    },
    print: function () {
      window.print();
      return "lq-trp-print";
    },
  };
})();
