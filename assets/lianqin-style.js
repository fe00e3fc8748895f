/* Styles of the static map layers (base map and grids), referenced from layouts via dash-leaflet. */
(function () {
  "use strict";
  var lq = (window.lq = window.lq || {});
  lq.style = lq.style || {};

  var BASEMAP = {
    outline: { color: "#3f6fb5", weight: 2.5, opacity: 0.9, fillColor: "#0d1830", fillOpacity: 0.6 },
    road: { color: "#33415c", weight: 2, opacity: 0.9 },
    arterial: { color: "#4a5f86", weight: 4, opacity: 0.9 },
    water: { color: "#1c3d6e", weight: 6, opacity: 0.8, fillColor: "#123257", fillOpacity: 0.7 },
  };

  lq.style.basemap = function (feature) {
    var kind = (feature && feature.properties && feature.properties.kind) || "road";
    return BASEMAP[kind] || BASEMAP.road;
  };

  lq.style.grid = function () {
    return { color: "#2c4a7a", weight: 0.8, opacity: 0.55, fill: false };
  };

  lq.style.micro = function () {
    return { color: "#2a3f66", weight: 0.5, opacity: 0.5, dashArray: "2 3", fill: false };
  };

  // Patrol zones (巡区): a dashed outline and their name, drawn as text (never as HTML).
  lq.style.zone = function () {
    return { color: "#8fa3e0", weight: 2.2, opacity: 0.75, dashArray: "10 7", fillOpacity: 0.02 };
  };

  lq.style.zoneLabel = function (feature, layer) {
    // dash-leaflet does not hand `interactive: false` on to the features: without this the
    // zone's polygon, drawn over the dots, would take the console's clicks on them.
    if (layer.options) layer.options.interactive = false;
    var name = feature && feature.properties && feature.properties.name;
    if (!name || !layer.bindTooltip) return;
    var el = document.createElement("span");
    el.textContent = String(name);
    // Above the zone's centre, where its patrol station stands: the icon never covers the name.
    layer.bindTooltip(el, { permanent: true, direction: "center", offset: [0, -26], className: "lq-zone-label", interactive: false });
  };

  // Open cases per grid, relative to the busiest grid (viridis steps from the theme).
  lq.style.density = function (feature) {
    var cfg = (lq.live && lq.live.config && lq.live.config()) || {};
    var steps = cfg.densityColors || ["#2D1E4F", "#3B528B", "#21918C", "#5EC962", "#FDE725"];
    var d = (lq.live && lq.live.density) || { counts: {}, max: 0 };
    var code = feature && feature.properties && feature.properties.code;
    var n = (code && d.counts[code]) || 0;
    if (!n) return { stroke: false, fill: true, fillOpacity: 0 }; // fill stays on: setStyle can't turn it on
    var top = Math.max(d.max, 5);
    var i = Math.min(steps.length - 1, Math.floor((n / top) * steps.length));
    return { stroke: false, fill: true, fillColor: steps[i], fillOpacity: 0.5 };
  };

  // Stations, cameras and sensors: distinct shapes (CSS), sized with the screen.
  lq.style.facility = function (feature, latlng) {
    var kind = String((feature && feature.properties && feature.properties.kind) || "other").replace(/[^a-z_]/g, "");
    var k = Math.max(1, (window.innerHeight || 1080) / 1080);
    var size = (kind === "station" ? 18 : 11) * k;
    return L.marker(latlng, {
      icon: L.divIcon({ className: "lq-fac lq-fac-" + kind, iconSize: [size, size] }),
      interactive: false,
      keyboard: false,
    });
  };
})();
