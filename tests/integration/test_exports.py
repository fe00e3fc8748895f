"""Spreadsheet formula injection in the briefing view's exports (issue 11, point 11): a
producer's grid id ``-7-1`` or a department id ``=cmd`` must reach a CSV or an Excel file as
text that no spreadsheet runs, while numbers — negative ones included — stay numbers."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
import time

import pytest
from flask import Flask
from helpers import callback_body, drain
from openpyxl import load_workbook

from dashboard.runtime import Runtime
from dashboard.services import accounts
from dashboard.services.trends import safe_cell, to_csv, to_xlsx
from dashboard.streams import Producer
from dashboard.worker.loop import Worker
from layouts import ids

PASSWORD = "correct horse battery"
HOSTILE = ["=1+1", "+1", "-7-1", "@SUM(A1)", "\tx", "\rx", '=HYPERLINK("http://evil","x")']


@pytest.mark.parametrize("text", HOSTILE)
def test_text_that_a_spreadsheet_would_run_gets_a_leading_quote(text: str) -> None:
    assert safe_cell(text) == "'" + text


@pytest.mark.parametrize("value", [-5, -0.5, 0, 3, 0.97, None, "", "东区", "P-1", "2026-11-01"])
def test_numbers_and_harmless_text_are_left_as_they_are(value: object) -> None:
    assert safe_cell(value) == value


def test_the_csv_and_the_workbook_escape_text_and_keep_numbers() -> None:
    table = [["grid", "reported", "rate"], *[[t, -3, -0.25] for t in HOSTILE], ["G-1", 4, 0.5]]
    rows = list(csv.reader(io.StringIO(to_csv(table).lstrip("\ufeff"))))
    assert [r[0] for r in rows[1:-1]] == ["'" + t for t in HOSTILE]
    assert all(r[1:] == ["-3", "-0.25"] for r in rows[1:-1])  # numbers: no quote
    assert rows[-1] == ["G-1", "4", "0.5"]

    sheet = load_workbook(io.BytesIO(to_xlsx({"grids": table})))["grids"]
    cells = list(sheet.iter_rows(min_row=2, values_only=False))
    for row, text in zip(cells, HOSTILE, strict=False):
        # (XML reads a stored CR back as LF)
        assert row[0].value == "'" + text.replace("\r", "\n") and row[0].data_type == "s"
        assert row[1].value == -3 and row[1].data_type == "n"
        assert row[2].value == -0.25 and row[2].data_type == "n"
    formulas = [c for row in sheet.iter_rows() for c in row if c.data_type == "f"]
    assert formulas == []


def test_a_producers_hostile_ids_reach_the_exports_escaped(app: Flask, rt: Runtime) -> None:
    """End to end: cases whose grid and department are ``-7-1`` and ``=cmd`` (valid ids by
    the contract), through the worker, out of the page's export buttons."""
    producer = Producer(rt.redis, rt.settings)
    now = int(time.time() * 1000)
    for i in range(3):
        producer.incident(
            id=f"HZ-X-{i}", status="reported", ts=now - 60_000 * (i + 1), lat=29.37,
            lon=106.26, category="dispute", grid="-7-1", department="-cmd",
        )  # fmt: skip
    worker = Worker(rt, None, consumer="exports")
    worker.prepare()
    drain(worker)
    with rt.db.write() as session:
        accounts.create_user(session, username="leader1", role="leader", password=PASSWORD)
    client = app.test_client()
    form = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert token is not None
    client.post("/login", data={"username": "leader1", "password": PASSWORD,
                                "csrf_token": token.group(1)})  # fmt: skip
    client.get("/trends")
    cookie = client.get_cookie("_csrf_token")
    assert cookie is not None
    deps = client.get("/_dash-dependencies").json
    export = next(d for d in deps if ids.TRENDS_DOWNLOAD in d["output"])

    def download(button: str, search: str = "?period=today") -> dict[str, object]:
        body = callback_body(
            export,
            {f"{button}.n_clicks": 1, f"{ids.URL}.search": search},
            changed=[f"{button}.n_clicks"],
        )
        response = client.post(
            "/_dash-update-component", data=json.dumps(body),
            headers={"X-CSRFToken": cookie.value, "Content-Type": "application/json"},
        )  # fmt: skip
        assert response.status_code == 200
        data: dict[str, object] = response.json["response"][ids.TRENDS_DOWNLOAD]["data"]
        return data

    departments = download(ids.TRENDS_CSV_DEPARTMENTS)
    rows = list(csv.reader(io.StringIO(str(departments["content"]).lstrip("\ufeff"))))
    assert ["'-cmd", "3"] == rows[1][:2]

    workbook = download(ids.TRENDS_EXCEL)
    book = load_workbook(io.BytesIO(base64.b64decode(str(workbook["content"]))))
    grids = [[c.value for c in row] for row in book["grids"].iter_rows(min_row=2)]
    assert ["'-7-1", 3] in grids
    assert all(c.data_type != "f" for sheet in book for row in sheet.iter_rows() for c in row)

    # Issue 15: the file is named by the period's LOCAL first day (a week starting Monday
    # 00:00 +08:00 starts on Sunday 16:00 UTC), and a report-ready Chinese workbook sits beside
    # the machine-readable ones.
    week = "?period=custom&from=2026-11-23&to=2026-11-29&category=dispute"
    assert download(ids.TRENDS_CSV_SERIES, week)["filename"] == "lianqin-series-2026-11-23_day.csv"
    assert download(ids.TRENDS_EXCEL, week)["filename"] == "lianqin-trends-2026-11-23_day.xlsx"
    today = rt.now().astimezone(rt.settings.zone).date()
    report = download(ids.TRENDS_REPORT)
    assert report["filename"] == f"联勤研判报表-{today:%Y-%m-%d}_hour.xlsx"
    book = load_workbook(io.BytesIO(base64.b64decode(str(report["content"]))))
    assert book.sheetnames[:3] == ["核心指标", "趋势", "部门排名"]
    kpis = book["核心指标"]
    head = [kpis.cell(row=r, column=1).value for r in range(1, 5)]
    assert head[0] == "联勤指挥中心 趋势研判报表"
    assert str(head[1]).startswith("统计周期：") and f"{today:%Y-%m-%d}" in str(head[1])
    assert head[2] == "筛选条件：全部案件"
    assert str(head[3]).startswith("生成时间：") and rt.settings.tz in str(head[3])
    rows = {r[0].value: r for r in kpis.iter_rows(min_row=6)}
    assert [c.value for c in kpis[6]] == ["指标", "本期", "上期", "去年同期"]
    rate = next(r for k, r in rows.items() if str(k).endswith("（%）"))
    assert rate[1].number_format == "0.0%" or rate[1].value is None
    assert any(str(k).endswith("（分钟）") for k in rows)
    assert rows["上报量"][1].value == 3
    league = [[c.value for c in row] for row in book["部门排名"].iter_rows(min_row=6)]
    assert league[0][:2] == ["名次", "部门"] and league[1][:3] == [1, "'-cmd", 3]
    categories = book["类别"]
    assert [c.value for c in categories[6]][:2] == ["时段起点", "矛盾纠纷"]
    assert categories._charts, "the categories sheet has its chart"
    fill = categories._charts[0].series[0].graphicalProperties.solidFill
    assert "CC79A7" in str(fill.srgbClr)
    assert all(c.data_type != "f" for sheet in book for row in sheet.iter_rows() for c in row)
