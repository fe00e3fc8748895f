/* The peer's map styling, and (for bench/e2e.py only) when each change was painted. */
(function () {
  "use strict";
  var peer = (window.peer = window.peer || {});
  var UNIT = { available: "#2ECC71", busy: "#F39C12", off_duty: "#7F8C8D" };

  peer.caseToLayer = function (feature, latlng, context) {
    var colors = (context.hideout && context.hideout.colors) || {};
    var p = feature.properties;
    return L.circleMarker(latlng, { radius: 5, weight: 1, color: "#0b1220", fillColor: colors[p.status] || "#999", fillOpacity: 0.95 });
  };

  peer.unitToLayer = function (feature, latlng) {
    var p = feature.properties;
    return L.circleMarker(latlng, { radius: 4, weight: 2, color: UNIT[p.status] || "#2ECC71", fillOpacity: 1 });
  };

  // Latency of each change, XADD (the unit's ts / the case title's "bench:<ms>") to paint.
  var seen = { units: {}, cases: {} };
  var bench = (window.__bench = window.__bench || { units: [], cases: [], updates: 0, start: 0 });

  function afterPaint(fn) {
    requestAnimationFrame(function () { setTimeout(fn, 0); });
  }

  window.dash_clientside = window.dash_clientside || {};
  window.dash_clientside.peer = {
    painted: function (units, cases) {
      afterPaint(function () {
        var now = Date.now();
        bench.updates += 1;
        var i, f, p, m;
        var uf = (units && units.features) || [];
        for (i = 0; i < uf.length; i++) {
          p = uf[i].properties;
          if (seen.units[p.id] !== p.ts) {
            if (seen.units[p.id] !== undefined && p.ts >= bench.start && bench.start) bench.units.push(now - p.ts);
            seen.units[p.id] = p.ts;
          }
        }
        var cf = (cases && cases.features) || [];
        for (i = 0; i < cf.length; i++) {
          p = cf[i].properties;
          if (seen.cases[p.id] !== p.version) {
            m = /^bench:(\d+)$/.exec(p.title || "");
            if (m && seen.cases[p.id] !== undefined && bench.start && +m[1] >= bench.start) bench.cases.push(now - +m[1]);
            seen.cases[p.id] = p.version;
          }
        }
      });
      return null;
    },
  };
})();
