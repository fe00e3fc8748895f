"""Authentication and authorization for the web app.

Three ways in, one principal: a session cookie from the login page (Flask-Login),
a bearer token on an API request (``Authorization: Bearer …``, no session), and a
kiosk token on a page URL (``/wall?token=…``, which opens a long session for that
screen). Every request but the public ones (login, health, static files) needs a
principal; each page and API family needs a permission of its role. Principals are
re-read from the database on every request, so disabling a user or revoking a
token cuts it off at once.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    jsonify,
    redirect,
    render_template_string,
    request,
    session,
)
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user
from flask_wtf.csrf import CSRFError, CSRFProtect, generate_csrf

from dashboard.runtime import Runtime
from dashboard.security import login_blocked, login_failed, login_succeeded, note_token_use
from dashboard.services import accounts
from dashboard.services.accounts import Principal

log = logging.getLogger(__name__)

# /metrics checks its own credentials (the metrics token or an admin: dashboard/ops.py).
PUBLIC_PREFIXES = (
    "/assets/", "/_dash-component-suites/", "/_favicon.ico", "/healthz", "/readyz", "/metrics",
)  # fmt: skip
PUBLIC_PATHS = frozenset({"/login", "/api/v1/openapi.json"})
PAGE_PERMISSIONS: dict[str, str] = {
    "/": "view_wall",
    "/wall": "view_wall",
    "/dispatch": "view_dispatch",
    "/trends": "view_trends",
}
CSRF_COOKIE = "_csrf_token"  # the name Dash's renderer reads to send X-CSRFToken
KIOSK_SESSION_DAYS = 30


class SessionPrincipal(UserMixin):
    """Flask-Login's view of a principal; the id carries what invalidates it."""

    def __init__(self, principal: Principal) -> None:
        self.principal = principal

    def get_id(self) -> str:
        p = self.principal
        return f"u:{p.key}:{p.epoch}" if p.kind == "user" else f"t:{p.key}"


def runtime() -> Runtime:
    rt: Runtime = current_app.extensions["lianqin"]
    return rt


def current_principal() -> Principal | None:
    """The principal of the request (or socket event), if any."""
    user = current_user
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    principal: Principal = user.principal
    return principal


def page_permission(path: str) -> str | None:
    """The permission a page path needs (None: not a page we know)."""
    if path in PAGE_PERMISSIONS:
        return PAGE_PERMISSIONS[path]
    for prefix, permission in PAGE_PERMISSIONS.items():
        if prefix != "/" and path.startswith(prefix + "/"):
            return permission
    return None


def client_ip() -> str | None:
    return request.remote_addr


def _bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip()
    return None


def _load(user_id: str) -> SessionPrincipal | None:
    rt = runtime()
    try:
        kind, _, rest = user_id.partition(":")
        with rt.db.read() as db_session:
            if kind == "u":
                key, _, epoch = rest.partition(":")
                principal = accounts.load_user_principal(
                    db_session, user_id=int(key), epoch=int(epoch)
                )
            elif kind == "t":
                principal = accounts.load_token_principal(db_session, token_id=int(rest))
            else:
                return None
    except ValueError:
        return None
    return SessionPrincipal(principal) if principal else None


def _from_bearer(req: Any) -> SessionPrincipal | None:
    token = _bearer()
    if token is None:
        return None
    rt = runtime()
    with rt.db.write() as db_session:
        principal = accounts.token_principal(db_session, plaintext=token)
        if principal is not None:
            accounts.touch_token(db_session, token_id=principal.key, now=rt.now())
            note_token_use(rt, db_session, principal, ip=client_ip(), path=request.path)
    return SessionPrincipal(principal) if principal else None


def _wants_json(path: str) -> bool:
    return path.startswith(("/api/", "/_dash-", "/metrics", "/live/"))


def _deny(status: int, reason: str) -> Response:
    path = request.path
    if _wants_json(path):
        response = jsonify({"error": reason})
        response.status_code = status
        return response
    if status == 401:
        target = request.full_path if request.query_string else request.path
        return redirect(f"/login?next={target}")  # type: ignore[return-value]
    return Response(
        render_template_string(_FORBIDDEN, reason=reason, lang=_lang()),
        status=status,
        mimetype="text/html",
    )


def _kiosk_login(token: str) -> Response | None:
    """``/wall?token=…``: sign the screen in for a long session, or refuse."""
    rt = runtime()
    with rt.db.write() as db_session:
        principal = accounts.token_principal(db_session, plaintext=token)
        if principal is not None:
            accounts.touch_token(db_session, token_id=principal.key, now=rt.now())
            accounts.audit(
                db_session,
                actor=principal.actor,
                action="token.kiosk",
                target=request.path,
                ip=client_ip(),
            )
    if principal is None:
        return _deny(401, "the token is invalid or revoked")
    login_user(SessionPrincipal(principal))
    session.permanent = True
    return None


def guard() -> Response | None:
    """Before every request: who is asking, and may they?"""
    path = request.path
    if path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
        return None
    kiosk = request.args.get("token")
    if kiosk and request.method == "GET" and page_permission(path) is not None:
        denied = _kiosk_login(kiosk)
        if denied is not None:
            return denied
    principal = current_principal()
    if principal is None:
        return _deny(401, "authentication required")
    if request.method not in ("GET", "HEAD", "OPTIONS") and _bearer() is None:
        csrf: CSRFProtect = current_app.extensions["csrf"]
        csrf.protect()
    permission = page_permission(path)
    if permission is None and path.startswith("/api/"):
        permission = "read_api"
    if permission is not None and not principal.can(permission):
        return _deny(403, f"the role {principal.role!r} may not open {path}")
    return None


def set_csrf_cookie(response: Response) -> Response:
    """Give browser sessions the CSRF token Dash sends back as X-CSRFToken."""
    path = request.path
    if path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
        return response
    if current_principal() is not None and _bearer() is None and request.method == "GET":
        settings = runtime().settings
        response.set_cookie(
            CSRF_COOKIE,
            generate_csrf(),
            samesite="Lax",
            secure=settings.cookie_secure,
            httponly=False,
        )
    return response


def init_auth(server: Flask, rt: Runtime) -> None:
    """Wire Flask-Login, CSRF protection, the guard and the login pages into ``server``."""
    server.config.update(
        WTF_CSRF_CHECK_DEFAULT=False,  # the guard decides (bearer-token clients are exempt)
        WTF_CSRF_TIME_LIMIT=None,  # a wall runs for weeks; the token lives with the session
        WTF_CSRF_HEADERS=["X-CSRFToken", "X-CSRF-Token"],
        PERMANENT_SESSION_LIFETIME=timedelta(days=KIOSK_SESSION_DAYS),
        SESSION_COOKIE_SECURE=rt.settings.cookie_secure,
        REMEMBER_COOKIE_SECURE=rt.settings.cookie_secure,
        REMEMBER_COOKIE_HTTPONLY=True,
    )
    csrf = CSRFProtect(server)
    server.extensions["csrf"] = csrf
    manager = LoginManager(server)
    manager.user_loader(_load)
    manager.request_loader(_from_bearer)
    server.before_request(guard)
    server.after_request(set_csrf_cookie)
    server.register_blueprint(pages)

    @server.errorhandler(CSRFError)
    def _csrf_error(exc: CSRFError) -> Response:
        return _deny(400, f"CSRF check failed: {exc.description}")


# -- the login page ---------------------------------------------------------------------------
pages = Blueprint("auth_pages", __name__)

_TEXT = {
    "zh-CN": {
        "title": "联勤指挥中心",
        "subtitle": "登录",
        "username": "用户名",
        "password": "密码",
        "submit": "登录",
        "failed": "用户名或密码错误，或账号已停用。",
        "limited": "登录失败次数过多，请 {minutes} 分钟后再试。",
        "forbidden": "无权访问",
        "back": "返回",
        "other": "English",
        "other_lang": "en",
    },
    "en": {
        "title": "Lianqin Command Center",
        "subtitle": "Sign in",
        "username": "Username",
        "password": "Password",
        "submit": "Sign in",
        "failed": "Wrong username or password, or the account is disabled.",
        "limited": "Too many failed sign-ins. Try again in {minutes} min.",
        "forbidden": "Not allowed",
        "back": "Back",
        "other": "中文",
        "other_lang": "zh-CN",
    },
}

_LOGIN = """<!doctype html>
<html lang="{{ lang }}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ t.title }} · {{ t.subtitle }}</title>
<link rel="stylesheet" href="/assets/login.css"></head>
<body class="lq-login-page"><main class="lq-login">
<h1>{{ t.title }}</h1><h2>{{ t.subtitle }}</h2>
{% if failed %}<p class="lq-login-error" role="alert">{{ t.failed }}</p>{% endif %}
{% if limited %}<p class="lq-login-error lq-login-limited" role="alert">{{ limited }}</p>{% endif %}
<form method="post" action="/login?lang={{ lang }}">
<input type="hidden" name="csrf_token" value="{{ csrf }}">
<input type="hidden" name="next" value="{{ next }}">
<label>{{ t.username }}
<input name="username" autocomplete="username" required autofocus value="{{ username }}"></label>
<label>{{ t.password }}
<input name="password" type="password" autocomplete="current-password" required></label>
<button type="submit">{{ t.submit }}</button>
</form>
<a class="lq-login-lang"
 href="/login?lang={{ t.other_lang }}&amp;next={{ next|urlencode }}">{{ t.other }}</a>
</main></body></html>"""

_FORBIDDEN = """<!doctype html>
<html lang="{{ lang }}"><head><meta charset="utf-8"><title>403</title>
<link rel="stylesheet" href="/assets/login.css"></head>
<body class="lq-login-page"><main class="lq-login"><h1>403</h1>
<p class="lq-login-error">{{ reason }}</p>
<a href="/login">{{ "登录" if lang == "zh-CN" else "Sign in" }}</a>
</main></body></html>"""


def _lang() -> str:
    requested = request.args.get("lang")
    if requested in _TEXT:
        return requested
    return runtime().settings.language


def safe_next(target: str | None) -> str:
    """Only local paths: never redirect a signed-in user to another site."""
    if not target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


@pages.get("/login")
def login_form() -> str:
    lang = _lang()
    target = safe_next(request.args.get("next"))
    return render_template_string(
        _LOGIN, t=_TEXT[lang], lang=lang, csrf=generate_csrf(), next=target,
        failed=False, username="",
    )  # fmt: skip


@pages.post("/login")
def login_submit() -> Response | tuple[str, int]:
    csrf: CSRFProtect = current_app.extensions["csrf"]
    csrf.protect()
    lang = _lang()
    username = request.form.get("username", "")[:64]
    password = request.form.get("password", "")[:1024]
    rt = runtime()
    ip = client_ip()
    target = safe_next(request.form.get("next"))
    # Checked before the password: a blocked guesser learns nothing, even the right one.
    wait_s = login_blocked(rt.redis, rt.keys, rt.settings, ip=ip, username=username)
    if wait_s:
        with rt.db.write() as db_session:
            accounts.audit(
                db_session, actor=f"user:{username}", action="login.limited", ip=ip,
                detail={"retry_after_s": wait_s},
            )  # fmt: skip
        page = render_template_string(
            _LOGIN, t=_TEXT[lang], lang=lang, csrf=generate_csrf(), next=target, failed=False,
            limited=_TEXT[lang]["limited"].format(minutes=max(1, -(-wait_s // 60))),
            username=username,
        )  # fmt: skip
        return page, 429
    with rt.db.write() as db_session:
        principal = accounts.authenticate(
            db_session, username=username, password=password, ip=ip, now=rt.now()
        )
    if principal is None:
        login_failed(rt.redis, rt.keys, rt.settings, ip=ip, username=username)
        page = render_template_string(
            _LOGIN, t=_TEXT[lang], lang=lang, csrf=generate_csrf(), next=target, failed=True,
            username=username,
        )  # fmt: skip
        return page, 401
    login_succeeded(rt.redis, rt.keys, ip=ip, username=username)
    session.clear()  # no fixation: a fresh session for the signed-in user
    login_user(SessionPrincipal(principal))
    return redirect(target)  # type: ignore[return-value]


@pages.post("/logout")
def logout() -> Response:
    principal = current_principal()
    if principal is not None:
        rt = runtime()
        with rt.db.write() as db_session:
            accounts.audit(db_session, actor=principal.actor, action="logout", ip=client_ip())
    logout_user()
    session.clear()
    return redirect("/login")  # type: ignore[return-value]
