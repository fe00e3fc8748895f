"""No request can make the web app answer 500 (issue 11, point 10): property-based tests over
every parameter of every endpoint — each GET of /api/v1/* (read from the OpenAPI description,
so a new parameter is fuzzed as soon as it is documented), the write API's bodies, /login,
the pages (/trends/print included) — and over every server callback of Dash, whose bodies are
crafted the way the renderer sends them but filled with extreme strings, numbers, nested
structures, wrong types and lone surrogates. A refusal must be a 4xx that says why.

Also the cases the issue names, as plain regression tests: times in year 1 and 9999 with
offsets, ``limit=²`` and a 5,000-digit limit, custom /trends ranges in year 1 or 9999, and
an export of ten years by hour.

Set LIANQIN_FUZZ_EXAMPLES (default 25; callbacks get twice as many) for a deeper run.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import types
import typing
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
import typing_extensions
from flask import Flask
from flask.testing import FlaskClient
from helpers import callback_body, make_token, seed_case
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine

from dashboard.config import Settings
from dashboard.models import Base
from dashboard.services import accounts
from dashboard.web.app import create_app, runtime_of
from layouts import ids

PASSWORD = "correct horse battery"
# Examples per test (callbacks: twice as many); LIANQIN_FUZZ_EXAMPLES=400 for a deeper run.
EXAMPLES = int(os.environ.get("LIANQIN_FUZZ_EXAMPLES", "25"))
FUZZ = settings(
    max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)

# -- hostile values -------------------------------------------------------------------------------
EXTREME_TIMES = [
    "0001-01-01", "9999-12-31", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00",
    "9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "1969-12-31T23:59:59-23:59",
    "2999-12-31T23:59:59-23:59", "1970-01-01T00:00:00+23:59", "2026-02-30", "2026-13-01",
    "٢٠٢٦-٠١-٠١", "2026-01-01T24:00:00", "99999999999999999", "0000000000", "1e308",
]  # fmt: skip
NASTY = [
    "", " ", "²", "٢٩.٣٧", "-1", "0", "1" * 5000, "9" * 4301, "\x00", "\ud800", "\udfff",
    "a\ud83d", "=1+1", "-7-1", "@SUM(A1)", "../../etc/passwd", "%00", "NaN", "Infinity",
    "' OR 1=1 --", "<script>alert(1)</script>", "\u202e", "\r\nSet-Cookie: x=1", "/[",
    "//evil.example", "/\\evil.example", "null", "[]", "{}", "x" * 70_000,
]  # fmt: skip
hostile_text = st.one_of(
    st.sampled_from(NASTY),
    st.sampled_from(EXTREME_TIMES),
    st.text(st.characters(codec=None, exclude_categories=()), max_size=40),  # surrogates too
)
# Text the boundary lets through (no lone surrogate, no NUL): what reaches the code behind it.
storable_text = st.one_of(
    st.sampled_from([t for t in NASTY if "\x00" not in t and not re.search("[\ud800-\udfff]", t)]),
    st.sampled_from(EXTREME_TIMES),
    st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=40),
)
json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.sampled_from([2**63, -(2**63) - 1, 10**4000]),
    st.floats(),  # NaN and ±Infinity too: Python's JSON reads them
    hostile_text,
)
json_values = st.recursive(
    json_leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(hostile_text, inner, max_size=4),
    max_leaves=12,
)
TREND_KEYS = [
    "period", "from", "to", "g", "category", "source", "grid_kind", "grid", "zone",
    "department", "replay", "shift", "lang", "layers", "token",
]  # fmt: skip
TREND_VALUES = [
    "custom", "hour", "day", "week", "month", "this_week", "last_month", "night", "en",
    "zh-CN", "2026-11-01", "2016-11-01", "1971-01-01", "2999-12-31",
]  # fmt: skip


def encode(value: str) -> str:
    """A query value as a client could send it (a lone surrogate as its UTF-8-ish bytes)."""
    return quote(value.encode("utf-8", "surrogatepass"), safe="")


trend_query = st.lists(
    st.tuples(
        st.sampled_from(TREND_KEYS),
        st.one_of(hostile_text, st.sampled_from(TREND_VALUES + EXTREME_TIMES)),
    ),
    max_size=6,
).map(lambda pairs: "?" + "&".join(f"{k}={encode(v)}" for k, v in pairs))


def assert_clear(response: Any, what: str) -> None:
    """Never a 500; a refusal is a 4xx that says why (JSON with an error, or a page)."""
    assert response.status_code < 500, (what, response.status_code, response.get_data()[:300])
    if 400 <= response.status_code < 500 and response.mimetype == "application/json":
        body = response.get_json()
        assert isinstance(body, dict) and body.get("error"), (what, body)


# -- the app ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fuzz_app(
    tmp_path_factory: pytest.TempPathFactory, redis_url: str, database_url: str
) -> Iterator[Flask]:
    """One app for the module (hypothesis runs many examples against it)."""
    clean_database(database_url)
    prefix = f"lqfuzz{secrets.token_hex(4)}"
    app = create_app(
        Settings(
            data_dir=tmp_path_factory.mktemp("data"),
            redis_url=redis_url,
            database_url=database_url,
            stream_prefix=prefix,
            secret_key="fuzz-" + prefix,
            claim_idle_ms=200,
            worker_block_ms=50,
            # The login fuzzer fails many sign-ins: exercise the check, not the limiter.
            login_max_attempts=1000,
            login_ip_max_attempts=100_000,
        )
    )
    rt = runtime_of(app)
    with rt.db.write() as session:
        accounts.create_user(session, username="root", role="admin", password=PASSWORD)
    for case_id in ("HZ-F-1", "HZ-F-2"):
        seed_case(rt, case_id)
    app.config["LQ_TOKEN"] = make_token(rt, "admin")
    yield app
    for key in rt.redis.scan_iter(match=f"{prefix}:*", count=1000):
        rt.redis.delete(key)
    rt.close()
    clean_database(database_url)


def clean_database(url: str) -> None:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.begin() as conn:
            for table in reversed(Base.metadata.sorted_tables):
                conn.execute(table.delete())
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def admin(fuzz_app: Flask) -> FlaskClient:
    client = fuzz_app.test_client()
    form = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert csrf is not None
    data = {"username": "root", "password": PASSWORD, "csrf_token": csrf.group(1)}
    assert client.post("/login", data=data).status_code == 302
    client.get("/wall")
    return client


def csrf(client: FlaskClient) -> dict[str, str]:
    cookie = client.get_cookie("_csrf_token")
    assert cookie is not None
    return {"X-CSRFToken": cookie.value}


# -- the cases the issue names --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("since=0001-01-01T00:00:00%2B14:00", "since"),
        ("since=9999-12-31T23:59:59-14:00", "since"),
        ("since=9999-12-31", "since"),
        ("since=0001-01-01", "since"),
        ("limit=%C2%B2", "limit"),  # "²": str.isdigit() is True
        ("limit=%D9%A2", "limit"),  # "٢"
        ("limit=" + "1" * 5000, "limit"),  # int() refuses more than 4300 digits
    ],
)
def test_extreme_case_list_parameters_are_a_400(fuzz_app: Flask, query: str, field: str) -> None:
    headers = {"Authorization": f"Bearer {fuzz_app.config['LQ_TOKEN']}"}
    response = fuzz_app.test_client().get(f"/api/v1/cases?{query}", headers=headers)
    assert response.status_code == 400
    assert field in response.json["fields"] and response.json["error"]


@pytest.mark.parametrize(
    "query",
    [
        "from=0001-01-01&to=9999-12-31",
        "from=9999-12-31",
        "to=9999-12-31",
        "from=0001-01-01T00:00:00%2B14:00",
        "from=2026-01-01&to=9999-12-31T23:59:59-14:00",
    ],
)
def test_extreme_kpi_periods_are_a_400(fuzz_app: Flask, query: str) -> None:
    headers = {"Authorization": f"Bearer {fuzz_app.config['LQ_TOKEN']}"}
    response = fuzz_app.test_client().get(f"/api/v1/kpis?{query}", headers=headers)
    assert response.status_code == 400 and set(response.json["fields"]) & {"from", "to"}


def dependency(client: FlaskClient, output_id: str) -> dict[str, Any]:
    deps = client.get("/_dash-dependencies").json
    return next(
        d for d in deps if output_id in d["output"] and d.get("clientside_function") is None
    )


def call(client: FlaskClient, dep: dict[str, Any], values: dict[str, Any],
         changed: list[str] | None = None) -> Any:  # fmt: skip
    body = callback_body(dep, values, changed)
    return client.post(
        "/_dash-update-component", data=json.dumps(body),
        headers={**csrf(client), "Content-Type": "application/json"},
    )  # fmt: skip


@pytest.mark.parametrize(
    "search",
    [
        "?period=custom&from=0001-01-01&to=0001-12-31",
        "?period=custom&from=9999-01-01&to=9999-12-31",
        "?period=custom&from=0001-01-01&to=9999-12-31",
        "?period=custom&from=2016-11-01&to=2026-10-31&g=hour",
    ],
)
def test_extreme_trends_ranges_say_why_on_the_page_the_print_view_and_the_exports(
    admin: FlaskClient, search: str
) -> None:
    refresh = dependency(admin, ids.TRENDS_PRINT_LINK)
    response = call(admin, refresh, {f"{ids.URL}.search": search, f"{ids.URL}.pathname": "/trends"})
    assert response.status_code == 200
    message = response.json["response"][ids.TRENDS_ERROR]["children"]
    assert "1971-01-01" in message or "coarser granularity" in message

    route = dependency(admin, ids.PAGE)
    page = call(admin, route, {f"{ids.URL}.pathname": "/trends/print", f"{ids.URL}.search": search})
    assert page.status_code == 200
    assert "1971-01-01" in page.get_data(as_text=True) or "coarser" in page.get_data(as_text=True)

    export = dependency(admin, ids.TRENDS_DOWNLOAD)
    for button in (ids.TRENDS_CSV_SERIES, ids.TRENDS_EXCEL):
        answer = call(admin, export, {f"{button}.n_clicks": 1, f"{ids.URL}.search": search},
                      changed=[f"{button}.n_clicks"])  # fmt: skip
        assert answer.status_code == 200
        said = answer.json["response"]
        assert ids.TRENDS_DOWNLOAD not in said  # no file
        assert said[ids.TRENDS_ERROR]["children"]


def test_replaying_a_day_in_year_1_or_9999_is_no_replay(admin: FlaskClient) -> None:
    replay = dependency(admin, ids.TRENDS_REPLAY_DATA)
    for day in ("0001-01-01", "9999-12-31"):
        response = call(admin, replay, {f"{ids.URL}.search": f"?replay={day}&shift=night",
                                        f"{ids.URL}.pathname": "/trends"})  # fmt: skip
        assert response.status_code == 200
        assert response.json["response"][ids.TRENDS_REPLAY_DATA]["data"] is None


# -- every parameter of every API endpoint ------------------------------------------------------
def api_operations(app: Flask) -> list[tuple[str, str, list[dict[str, Any]], dict[str, Any]]]:
    spec = app.test_client().get("/api/v1/openapi.json").json
    out = []
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            body = (operation.get("requestBody") or {}).get("content", {})
            schema = body.get("application/json", {}).get("schema", {})
            if "$ref" in schema:  # a component: #/components/schemas/<Model>
                schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
            out.append((method, path, operation.get("parameters", []), schema))
    return out


def test_every_api_operation_is_fuzzed(fuzz_app: Flask) -> None:
    """The list the fuzzers below read: every operation of the OpenAPI description."""
    assert len(api_operations(fuzz_app)) == 20  # 13 + the 7 responder actions (issue 13)


@FUZZ
@given(data=st.data())
def test_no_api_read_answers_500(fuzz_app: Flask, data: st.DataObject) -> None:
    headers = {"Authorization": f"Bearer {fuzz_app.config['LQ_TOKEN']}"}
    reads = [op for op in api_operations(fuzz_app) if op[0] == "get"]
    _, path, parameters, _ = data.draw(st.sampled_from(reads))
    query = []
    for parameter in parameters:
        if parameter["in"] == "path":
            value = data.draw(st.one_of(hostile_text, st.sampled_from(["HZ-F-1", "x"])))
            path = path.replace("{" + parameter["name"] + "}", encode(value) or "%20")
        elif data.draw(st.booleans()):
            for _ in range(data.draw(st.integers(1, 2))):
                query.append(f"{parameter['name']}={encode(data.draw(hostile_text))}")
    url = path + ("?" + "&".join(query) if query else "")
    assert_clear(fuzz_app.test_client().get(url, headers=headers), url)


@FUZZ
@given(data=st.data())
def test_no_api_write_answers_500(fuzz_app: Flask, data: st.DataObject) -> None:
    headers = {
        "Authorization": f"Bearer {fuzz_app.config['LQ_TOKEN']}",
        "Content-Type": "application/json",
    }
    writes = [op for op in api_operations(fuzz_app) if op[0] == "post"]
    _, path, _, schema = data.draw(st.sampled_from(writes))
    fields = list(schema.get("properties", {}))
    body = data.draw(
        st.one_of(
            json_values,
            st.dictionaries(st.sampled_from(fields), json_values, max_size=len(fields)),
            st.fixed_dictionaries(
                {"version": st.sampled_from([1, 2, 1.0, True, "1", 2**70])},
                optional={
                    f: st.one_of(hostile_text, json_values) for f in fields if f != "version"
                },
            ),
        )
    )
    case_id = data.draw(st.sampled_from(["HZ-F-1", "HZ-F-2", "nope"]))
    url = path.replace("{id}", case_id)
    response = fuzz_app.test_client().post(url, data=json.dumps(body), headers=headers)
    assert_clear(response, f"{url} {body!r:.200}")


# -- /login and the pages -----------------------------------------------------------------------
@FUZZ
@given(
    username=hostile_text, password=hostile_text, next_=hostile_text,
    lang=st.one_of(hostile_text, st.sampled_from(["en", "zh-CN"])),
)  # fmt: skip
def test_no_login_answers_500(
    fuzz_app: Flask, username: str, password: str, next_: str, lang: str
) -> None:
    client = fuzz_app.test_client()
    page = client.get(f"/login?lang={encode(lang)}&next={encode(next_)}")
    assert_clear(page, "GET /login")
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True))
    assert found is not None
    form = "&".join(
        f"{k}={encode(v)}"
        for k, v in (("username", username), ("password", password), ("next", next_),
                     ("csrf_token", found.group(1)))
    )  # fmt: skip
    response = client.post(
        f"/login?lang={encode(lang)}", data=form,
        content_type="application/x-www-form-urlencoded",
    )  # fmt: skip
    assert_clear(response, f"POST /login {username!r:.80}")
    assert response.status_code in (200, 302, 401, 429)
    if response.status_code == 302:
        location = response.headers["Location"]
        assert location.startswith("/") and not location.startswith("//") and "\\" not in location


@FUZZ
@given(
    path=st.sampled_from(["/", "/wall", "/dispatch", "/trends", "/trends/print", "/nowhere"]),
    query=trend_query,
)
def test_no_page_answers_500(admin: FlaskClient, path: str, query: str) -> None:
    assert_clear(admin.get(path + query), path + query)


# -- every server callback ----------------------------------------------------------------------
def typed(hint: Any, name: str) -> st.SearchStrategy[Any]:
    """Values of the right type for a callback parameter, with hostile but storable content:
    what gets past the boundary and the type check, into the code behind them."""
    if name == "search":
        return trend_query
    if name == "pathname":
        return st.one_of(
            st.just("/trends"),
            st.sampled_from(["/", "/wall", "/dispatch", "/trends/print", "/x", "/trends/"]),
        )
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is type(None):
        return st.none()
    if origin is typing.Literal:
        return st.sampled_from(args)
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*[typed(a, name) for a in args])
    if hint is str:
        return st.one_of(storable_text, st.sampled_from(["HZ-F-1", "P-1", "police", "en"]))
    if hint is int:
        return st.one_of(st.integers(-(10**30), 10**30), st.sampled_from([0, 1, 2, 5]))
    if origin is list:
        return st.lists(typed(args[0], name), max_size=5)
    if origin is dict:
        values = typed(args[1], name) if args[1] is not Any else json_values
        return st.dictionaries(storable_text, values, max_size=4)
    if typing_extensions.is_typeddict(hint):
        hints = typing.get_type_hints(hint)
        fields = {k: typed(v, k) for k, v in hints.items()}
        if "id" in fields:
            fields["id"] = st.one_of(fields["id"], st.sampled_from(["HZ-F-1", "HZ-F-2"]))
        required = getattr(hint, "__required_keys__", frozenset())
        return st.fixed_dictionaries(
            {k: s for k, s in fields.items() if k in required},
            optional={k: s for k, s in fields.items() if k not in required},
        )
    return json_values


def server_callbacks(app: Flask) -> list[tuple[str, dict[str, Any]]]:
    dash_app = app.extensions["dash"]
    return [(key, cb) for key, cb in dash_app.callback_map.items() if "callback" in cb]


def test_every_server_callback_is_fuzzed(fuzz_app: Flask) -> None:
    assert len(server_callbacks(fuzz_app)) == 10  # + the briefing conclusions (issue 15)


@pytest.mark.parametrize("index", range(10))
@settings(FUZZ, max_examples=2 * EXAMPLES)
@given(data=st.data())
def test_no_callback_answers_500(
    fuzz_app: Flask, admin: FlaskClient, index: int, data: st.DataObject
) -> None:
    key, callback = server_callbacks(fuzz_app)[index]
    function = callback["callback"]
    while hasattr(function, "__wrapped__"):
        function = function.__wrapped__
    hints = typing.get_type_hints(function)
    names = [n for n in hints if n != "return"]
    deps = callback["inputs"] + callback["state"]
    assert len(names) == len(deps), key
    # Half the examples have every argument of its type (they reach the services behind the
    # callback); the others may have any JSON anywhere (the type check must answer 400).
    anything = data.draw(st.booleans(), label="any types")
    values = {}
    for name, dep in zip(names, deps, strict=True):
        strategy = typed(hints[name], name)
        if anything:
            strategy = st.one_of(strategy, json_values)
        values[f"{dep['id']}.{dep['property']}"] = data.draw(strategy, label=name)
    trigger = data.draw(st.sampled_from(callback["inputs"]), label="trigger")
    dependency = {"output": key, "inputs": callback["inputs"], "state": callback["state"]}
    body = callback_body(dependency, values, [f"{trigger['id']}.{trigger['property']}"])
    response = admin.post(
        "/_dash-update-component", data=json.dumps(body),
        headers={**csrf(admin), "Content-Type": "application/json"},
    )  # fmt: skip
    assert_clear(response, f"{key} {values!r:.300}")
