"""The wall's base-map tiles: none (offline), a preset, or any XYZ template from the settings.

With no tiles (the default: command centers often sit on isolated networks) the
map shows the district's own outline, roads and water on a dark background.

Display datum: Lianqin stores WGS-84. Tianditu (CGCS2000, within centimetres of
WGS-84), OSM and most local tile servers draw WGS-84; Amap draws GCJ-02. With a
GCJ-02 source every point is shifted for display only: the static layers
(base map, grids, zones, facilities) are converted by the server
(``/api/v1/geo/...?crs=gcj02``) and the live dots and units by the browser
(``lq.geo.wgs84ToGcj02`` in assets/lianqin-live.js, the same published forward
transform as dashboard/geo.py). Stored coordinates and the API never change.
"""

from __future__ import annotations

from dataclasses import dataclass

from dashboard.config import Settings


@dataclass(frozen=True, slots=True)
class TileSource:
    url: str
    attribution: str
    crs: str  # "wgs84" or "gcj02": the datum the tiles are drawn in
    subdomains: str = "abc"
    max_zoom: int = 18
    dark: bool = True
    # Tianditu draws labels as a second layer over the map.
    overlay_url: str | None = None


PRESETS: dict[str, TileSource] = {
    "osm": TileSource(
        url="https://tile.openstreetmap.org/{z}/{x}/{y}.png",
        attribution="© OpenStreetMap contributors",
        crs="wgs84",
        subdomains="",
        max_zoom=19,
    ),
    "tianditu": TileSource(
        url="https://t{s}.tianditu.gov.cn/DataServer?T=vec_w&x={x}&y={y}&l={z}&tk={key}",
        overlay_url="https://t{s}.tianditu.gov.cn/DataServer?T=cva_w&x={x}&y={y}&l={z}&tk={key}",
        attribution="© 天地图 Tianditu",
        crs="wgs84",
        subdomains="01234567",
        max_zoom=18,
    ),
    "amap": TileSource(
        url="https://webrd0{s}.is.autonavi.com/appmaptile?lang=zh_cn&size=1&scale=1&style=8&x={x}&y={y}&z={z}",
        attribution="© 高德地图 AutoNavi",
        crs="gcj02",
        subdomains="1234",
        max_zoom=18,
    ),
    "local": TileSource(
        url="/tiles/{z}/{x}/{y}.png",
        attribution="local tiles",
        crs="wgs84",
        subdomains="",
        max_zoom=18,
    ),
}


def tile_source(settings: Settings) -> TileSource | None:
    """The configured tiles, or None for the offline base map.

    ``LIANQIN_TILE_URL`` alone is a custom source; with a preset it replaces the
    preset's URL (e.g. ``local`` at another address). The other ``LIANQIN_TILE_*``
    settings override the preset's attribution, datum, subdomains and zoom.
    """
    preset = PRESETS.get(settings.tile_preset)
    if preset is None and not settings.tile_url:
        return None
    base = preset or TileSource(url="", attribution="", crs="wgs84", subdomains="abc")
    key = settings.tianditu_key.get_secret_value() if settings.tianditu_key else ""
    if settings.tile_preset == "tianditu" and not key and not settings.tile_url:
        raise ValueError("the tianditu preset needs LIANQIN_TIANDITU_KEY")

    def fill(url: str | None) -> str | None:
        return None if url is None else url.replace("{key}", key)

    return TileSource(
        url=fill(settings.tile_url or base.url) or "",
        attribution=settings.tile_attribution or base.attribution,
        crs=settings.tile_crs or base.crs,
        subdomains=(
            settings.tile_subdomains if settings.tile_subdomains is not None else base.subdomains
        ),
        max_zoom=settings.tile_max_zoom if settings.tile_url else base.max_zoom,
        dark=settings.tile_dark,
        overlay_url=None if settings.tile_url else fill(base.overlay_url),
    )
