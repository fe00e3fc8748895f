"""Unknown paths answer 404, not the wall's HTML page with a 200.

Dash serves its index page on every path (``/<path:path>``) and routes pages in the browser
(callbacks/router.py). Before anything else looks at a request that landed there:

* a path under ``/api/`` (or ``/live/``, ``/_dash-``) answers a JSON 404 in the API's one
  error shape (dashboard/api/errors.py) — or a 405 when the path exists for another
  method — so that an integrator's typo (``/api/v1/case/…``) fails where it is made, not on
  "not JSON" later;
* any other path that is not one of the router's pages answers a 404 page in the
  configured language (``?lang=en`` or ``LIANQIN_LANGUAGE``) with a link back to the wall.

It runs before the sign-in guard: which paths exist is no secret (the OpenAPI document is
public), and an unknown page should not send anyone through the login form first.
"""

from __future__ import annotations

from flask import Flask, Response, current_app, render_template_string, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound

from dashboard.api.errors import api_error

# The paths the router renders (callbacks/router.py: PAGES); every other path of Dash's
# catch-all is unknown.
DASH_CATCH_ALL = frozenset({"/", "/<path:path>"})
# Paths for programs, not people: an unknown one answers in JSON (as the guard's refusals do).
JSON_PREFIXES = ("/api/", "/live/", "/_dash-")

_TEXT = {
    "zh-CN": {
        "title": "页面不存在",
        "body": "没有这个页面：",
        "back": "返回大屏",
        "other": "English",
        "other_lang": "en",
    },
    "en": {
        "title": "Page not found",
        "body": "There is no page at",
        "back": "Back to the wall",
        "other": "中文",
        "other_lang": "zh-CN",
    },
}

_PAGE = """<!doctype html>
<html lang="{{ lang }}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>404 · {{ t.title }}</title>
<link rel="stylesheet" href="/assets/login.css"></head>
<body class="lq-login-page"><main class="lq-login lq-not-found">
<h1>404</h1><h2>{{ t.title }}</h2>
<p>{{ t.body }} <code>{{ path }}</code></p>
<p><a id="lq-not-found-back" href="/wall?lang={{ lang }}">{{ t.back }}</a></p>
<a class="lq-login-lang" href="{{ path }}?lang={{ t.other_lang }}">{{ t.other }}</a>
</main></body></html>"""


def _language(default: str) -> str:
    requested = request.args.get("lang")
    return requested if requested in _TEXT else (default if default in _TEXT else "zh-CN")


def _other_methods(path: str) -> list[str]:
    """The methods for which a route other than Dash's catch-all serves ``path``."""
    adapter = current_app.url_map.bind_to_environ(request.environ)
    found = []
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        try:
            rule, _ = adapter.match(path, method=method, return_rule=True)
        except HTTPException:
            continue
        if rule.rule not in DASH_CATCH_ALL:
            found.append(method)
    return found


def install_not_found(server: Flask, pages: frozenset[str], language: str) -> None:
    """Answer unknown ``/api/`` paths and unknown pages with a 404 (see the module's doc)."""

    def not_found() -> Response | None:
        rule = request.url_rule
        routed = rule is not None and rule.rule not in DASH_CATCH_ALL
        if routed:
            return None
        failed = request.routing_exception
        path = request.path
        if path == "/api" or path.startswith(JSON_PREFIXES):
            if rule is None and not isinstance(failed, NotFound | MethodNotAllowed):
                return None  # a redirect (strict slashes) and the like: as routed
            allowed = _other_methods(path)
            if allowed:
                methods = ", ".join(allowed)
                response = api_error(405, None, f"{request.method} {path}: use {methods}")
                response.headers["Allow"] = methods
                return response
            return api_error(404, "not_found", f"no API endpoint {path} (see /api/v1/openapi.json)")
        if rule is None or path in pages:
            return None  # not Dash's catch-all (static files, 405s…), or one of its pages
        lang = _language(language)
        page = render_template_string(_PAGE, t=_TEXT[lang], lang=lang, path=path)
        return Response(page, status=404, mimetype="text/html")

    server.before_request(not_found)
