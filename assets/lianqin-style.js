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
})();
