"""Tile presets, the display datum, and the wall layout built from them (pure functions)."""

from __future__ import annotations

import json
from typing import Any

import dash_leaflet as dl
import pytest
from pydantic import SecretStr

from dashboard.config import Settings
from dashboard.services.geo import MapView, for_display
from dashboard.tiles import tile_source
from layouts import ids
from layouts.wall import DEFAULT_LAYERS, create_wall_layout, pick_layers

VIEW = MapView(center=(29.37, 106.26), bounds=((29.34, 106.22), (29.40, 106.30)))


def walk(component: Any) -> list[Any]:
    out = [component]
    children = getattr(component, "children", None)
    if isinstance(children, list | tuple):
        for child in children:
            out += walk(child)
    elif children is not None and not isinstance(children, str | int | float):
        out += walk(children)
    return out


def test_no_tiles_by_default_and_presets() -> None:
    assert tile_source(Settings()) is None
    osm = tile_source(Settings(tile_preset="osm"))
    assert osm is not None and osm.crs == "wgs84" and "{z}/{x}/{y}" in osm.url
    amap = tile_source(Settings(tile_preset="amap"))
    assert amap is not None and amap.crs == "gcj02" and amap.subdomains == "1234"
    with pytest.raises(ValueError, match="TIANDITU_KEY"):
        tile_source(Settings(tile_preset="tianditu"))
    tdt = tile_source(Settings(tile_preset="tianditu", tianditu_key=SecretStr("k123")))
    assert (
        tdt is not None
        and "tk=k123" in tdt.url
        and tdt.overlay_url
        and "tk=k123" in tdt.overlay_url
    )
    local = tile_source(
        Settings(
            tile_url="http://10.0.0.5/t/{z}/{x}/{y}.png", tile_attribution="本地", tile_crs="gcj02"
        )
    )
    assert local is not None
    assert (local.url, local.attribution, local.crs) == (
        "http://10.0.0.5/t/{z}/{x}/{y}.png",
        "本地",
        "gcj02",
    )


def test_the_layout_with_gcj02_tiles_shifts_its_layers() -> None:
    tiles = tile_source(Settings(tile_preset="amap"))
    page = create_wall_layout(VIEW, lang="zh-CN", tz="Asia/Shanghai", tiles=tiles)
    parts = walk(page)
    assert any(isinstance(p, dl.TileLayer) for p in parts)
    urls = [p.url for p in parts if isinstance(p, dl.GeoJSON)]
    assert urls and all("crs=gcj02" in u for u in urls)
    config = next(p for p in parts if getattr(p, "id", None) == ids.LIVE_CONFIG)
    data = json.loads(config.to_plotly_json()["props"]["data-config"])
    assert data["displayCrs"] == "gcj02" and data["bounds"] == [[29.34, 106.22], [29.40, 106.30]]


def test_the_offline_layout_and_its_panels() -> None:
    page = create_wall_layout(VIEW, lang="zh-CN", tz="Asia/Shanghai")
    parts = walk(page)
    assert not any(isinstance(p, dl.TileLayer) for p in parts)
    assert all("crs=" not in p.url for p in parts if isinstance(p, dl.GeoJSON))
    found = {getattr(p, "id", None) for p in parts}
    panels = (ids.KPIS, ids.TICKER, ids.OVERDUE_PANEL, ids.CATEGORIES, ids.HOURLY)
    panels += (ids.UNITS_PANEL, ids.CLOCK, ids.CONNECTION, ids.LEGEND, ids.LAYERS_CONTROL)
    for panel in panels:
        assert panel in found, panel
    overlays = {p.name: p.checked for p in parts if isinstance(p, dl.Overlay)}
    assert overlays["案件"] and overlays["网格"] and not overlays["视频监控"]


def test_a_screen_picks_its_layers() -> None:
    assert pick_layers(None) == DEFAULT_LAYERS
    assert pick_layers("cases,units,cameras,bogus") == {"cases", "units", "cameras"}
    assert pick_layers("bogus") == DEFAULT_LAYERS


def test_display_shift_is_for_display_only() -> None:
    fc = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [106.26, 29.37]},
                "properties": {"station_lat": 29.37, "station_lon": 106.26},
            }
        ],
    }
    assert for_display(fc, "wgs84") is fc
    shifted = for_display(fc, "gcj02")
    lon, lat = shifted["features"][0]["geometry"]["coordinates"]
    assert 0.001 < abs(lon - 106.26) < 0.01 and 0.001 < abs(lat - 29.37) < 0.01
    assert shifted["features"][0]["properties"]["station_lat"] == lat
    assert fc["features"][0]["geometry"]["coordinates"] == [106.26, 29.37]  # untouched


def test_the_centers_own_name_heads_the_pages() -> None:
    from dash import html

    from dashboard.i18n import titled

    assert titled("zh-CN", "wall_title") == "联勤指挥中心 · 实时态势"
    assert titled("zh-CN", "wall_title", "西湖区联勤指挥中心") == "西湖区联勤指挥中心 · 实时态势"
    assert titled("en", "dispatch_title", "Xihu Center") == "Xihu Center · Dispatch console"
    page = create_wall_layout(VIEW, lang="zh-CN", tz="Asia/Shanghai", center="西湖区联勤指挥中心")
    titles = [p.children for p in walk(page) if isinstance(p, html.H1)]
    assert titles == ["西湖区联勤指挥中心 · 实时态势"]
