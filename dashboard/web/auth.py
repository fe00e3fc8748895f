"""Authentication and authorization for the web app.

Three ways in, one principal, and exactly one per request:

* a **bearer token** (``Authorization: Bearer …``): API clients. When the header is there
  it is the request's only credential: an invalid or revoked token is 401 even if the
  browser also sends a valid session cookie, and a valid one acts as the token, the
  session ignored (not read, not changed). A bearer request needs no CSRF token: a
  browser never attaches the header to a request by itself, so no other site can make
  it send one. Any other ``Authorization`` scheme is 401.
* a **session cookie** from the login page (Flask-Login): the cookie carries a random
  secret whose hash is a row of ``web_sessions`` (dashboard/services/accounts.py); the
  row is checked on every request and socket connection, so logging out, a password
  change, a disable or a token's revocation ends the session on every web instance at
  once, copied cookies included. State-changing requests must carry the session's CSRF
  token.
* a **kiosk link** on the wall (``/wall?token=…``) with a token of role ``viewer``: it
  opens a 30-day session for that screen. Other roles get a 403 page (audited); a
  browser signed in as someone else is asked first (a page that POSTs, with CSRF, to
  ``/kiosk``), never switched silently.

Every request but the public ones (login, health, static files) needs a principal; each
page and API family needs a permission of its role. Principals are re-read from the
database on every request, so disabling a user or revoking a token cuts it off at once.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from urllib.parse import quote, urlencode, urlsplit

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    g,
    redirect,
    render_template_string,
    request,
    session,
)
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user
from flask_wtf.csrf import CSRFError, CSRFProtect, generate_csrf
from werkzeug.datastructures import MultiDict

from dashboard.api.errors import api_error
from dashboard.i18n import LOGIN_TEXT
from dashboard.runtime import Runtime
from dashboard.services import accounts
from dashboard.services.accounts import Principal
from dashboard.vocabulary import Role
from dashboard.web.context import current_runtime
from dashboard.web.security import (
    announce_revocation,
    login_blocked,
    login_failed,
    login_succeeded,
    note_token_use,
)

log = logging.getLogger(__name__)

# /metrics checks its own credentials (the metrics token or an admin: dashboard/web/ops.py).
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
WALL_PATHS = frozenset({"/", "/wall"})  # where a kiosk link (?token=) may be opened
KIOSK_ROLES = frozenset({Role.VIEWER})
CSRF_COOKIE = "_csrf_token"  # the name Dash's renderer reads to send X-CSRFToken
SESSION_KEY = "lq_sid"  # the session's secret in the signed cookie (its hash: web_sessions.id)
KIOSK_SESSION_DAYS = 30
SESSION_LIFETIME = timedelta(days=KIOSK_SESSION_DAYS)


class SessionPrincipal(UserMixin):
    """Flask-Login's view of a principal; the id carries what invalidates it."""

    def __init__(self, principal: Principal, session_id: str | None = None) -> None:
        self.principal = principal
        self.session_id = session_id  # the web_sessions row (None: a bearer token)

    def get_id(self) -> str:
        p = self.principal
        return f"u:{p.key}:{p.epoch}" if p.kind == "user" else f"t:{p.key}"


def current_principal() -> Principal | None:
    """The principal of the request (or socket event), if any."""
    user = current_user
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    principal: Principal = user.principal
    return principal


def current_session_id() -> str | None:
    """The ``web_sessions`` id the request is signed in with (None: a bearer or nobody)."""
    user = current_user
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    sid: str | None = getattr(user, "session_id", None)
    return sid


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


def authorization() -> str | None:
    """The Authorization header's value, or None when it is absent or blank."""
    header = request.headers.get("Authorization", "").strip()
    return header or None


def bearer_token() -> str | None:
    """The token of an ``Authorization: Bearer …`` header (None: absent or another scheme)."""
    header = authorization()
    if header is not None and header[:7].lower() == "bearer ":
        return header[7:].strip()
    return None


def _load(user_id: str) -> SessionPrincipal | None:
    """Flask-Login's loader for the session cookie: only a live ``web_sessions`` row counts."""
    secret = session.get(SESSION_KEY)
    if not isinstance(secret, str):
        return None  # a cookie from before server-side sessions, or a forged one
    rt = current_runtime()
    with rt.db.read() as db_session:
        principal = accounts.session_principal(db_session, secret=secret, now=rt.now())
    if principal is None:
        return None
    loaded = SessionPrincipal(principal, accounts.session_id(secret))
    return loaded if loaded.get_id() == user_id else None


def bearer_principal() -> Principal | None:
    """The principal of the request's bearer token (touched and audited), or None."""
    token = bearer_token()
    if token is None:
        return None
    rt = current_runtime()
    with rt.db.write() as db_session:
        principal = accounts.token_principal(db_session, plaintext=token)
        if principal is not None:
            accounts.touch_token(db_session, token_id=principal.key, now=rt.now())
            note_token_use(rt, db_session, principal, ip=client_ip(), path=request.path)
    return principal


def _wants_json(path: str) -> bool:
    return path.startswith(("/api/", "/_dash-", "/metrics", "/live/"))


def _without_token(path: str) -> str:
    """The request's path and query without ``token`` (a kiosk link's secret)."""
    query = MultiDict(request.args)
    query.poplist("token")
    return path + (f"?{urlencode(list(query.items(multi=True)))}" if query else "")


def _deny(status: int, reason: str, code: str | None = None) -> Response:
    path = request.path
    if _wants_json(path):  # the API's one error shape (dashboard/api/errors.py)
        return api_error(status, code, reason)
    if status == 401:
        target = quote(_without_token(path), safe="/?=&,;:@+")  # no raw CR/LF in Location
        return redirect(f"/login?next={target}")  # type: ignore[return-value]
    return Response(
        render_template_string(_FORBIDDEN, reason=reason, lang=_lang()),
        status=status,
        mimetype="text/html",
    )


def _start_session(principal: Principal, *, permanent: bool) -> None:
    """Sign this browser in as ``principal`` with a new server-side session (no fixation:
    whatever the cookie held before is dropped)."""
    rt = current_runtime()
    with rt.db.write() as db_session:
        secret, _ = accounts.open_session(
            db_session, principal, now=rt.now(), lifetime=SESSION_LIFETIME, ip=client_ip()
        )
    session.clear()
    login_user(SessionPrincipal(principal, accounts.session_id(secret)))
    session[SESSION_KEY] = secret
    session.permanent = permanent


def _end_session() -> None:
    """Delete this browser's session row and tell every web process to cut its sockets."""
    secret = session.get(SESSION_KEY)
    if isinstance(secret, str):
        rt = current_runtime()
        with rt.db.write() as db_session:
            accounts.end_session(db_session, secret=secret)
        try:
            announce_revocation(rt.redis, rt.keys)
        except Exception as exc:  # the row is gone; sockets are re-checked periodically too
            log.warning("logout not announced to open sockets: %s", exc.__class__.__name__)
    logout_user()
    session.clear()


def _kiosk(token: str) -> Response | None:
    """``/wall?token=…``: sign the screen in, ask first, or refuse (None: carry on)."""
    rt = current_runtime()
    with rt.db.write() as db_session:
        principal = accounts.token_principal(db_session, plaintext=token)
        if principal is not None:
            accounts.touch_token(db_session, token_id=principal.key, now=rt.now())
    if principal is None:
        return _deny(401, "the token is invalid or revoked")
    if request.path not in WALL_PATHS:
        return _refuse_kiosk(principal, "path")
    if principal.role not in KIOSK_ROLES:
        return _refuse_kiosk(principal, "role")
    current = current_principal()
    if current is not None and (current.kind, current.key) == (principal.kind, principal.key):
        return None  # this screen already holds this token's session
    if current is not None:
        return _kiosk_confirmation(current, principal, _lang())
    _open_kiosk(principal, replaced=None)
    return None


def _refuse_kiosk(principal: Principal, why: str) -> Response:
    """A 403 page for a kiosk link that may not open (audited as ``token.kiosk_refused``)."""
    rt = current_runtime()
    with rt.db.write() as db_session:
        accounts.audit(
            db_session, actor=principal.actor, action="token.kiosk_refused",
            target=request.path[:100], ip=client_ip(), detail={"why": why, "role": principal.role},
        )  # fmt: skip
    text = _TEXT[_lang()]
    reason = text["kiosk_path"] if why == "path" else text["kiosk_role"].format(role=principal.role)
    return _deny(403, reason)


def _open_kiosk(principal: Principal, *, replaced: Principal | None) -> None:
    rt = current_runtime()
    with rt.db.write() as db_session:
        accounts.audit(
            db_session, actor=principal.actor, action="token.kiosk", target=request.path[:100],
            ip=client_ip(), detail={"replaced": replaced.actor} if replaced else None,
        )  # fmt: skip
    if replaced is not None:
        _end_session()
    _start_session(principal, permanent=True)


def _kiosk_confirmation(current: Principal, kiosk: Principal, lang: str) -> Response:
    page = render_template_string(
        _KIOSK_CONFIRM, t=_TEXT[lang], lang=lang, csrf=generate_csrf(),
        current=current.name, current_role=current.role, screen=kiosk.name,
        token=request.args.get("token", ""), next=_without_token(request.path),
        stay=_without_token(request.path),
    )  # fmt: skip
    response = Response(page, status=200, mimetype="text/html")
    response.headers["Cache-Control"] = "no-store"  # the page holds the link's token
    return response


def guard() -> Response | None:
    """Before every request: who is asking (by exactly one credential), and may they?"""
    path = request.path
    if path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
        return None
    if authorization() is not None:
        if bearer_token() is None:
            return _deny(401, "only Authorization: Bearer <token> is accepted")
        principal = bearer_principal()
        if principal is None:
            return _deny(401, "the token is invalid or revoked")
        g._login_user = SessionPrincipal(principal)  # the session cookie, if any, is ignored
        g.lq_auth = "bearer"
    else:
        kiosk = request.args.get("token")
        if kiosk and request.method == "GET" and page_permission(path) is not None:
            answered = _kiosk(kiosk)
            if answered is not None:
                return answered
        found = current_principal()
        if found is None:
            return _deny(401, "authentication required")
        principal = found
        g.lq_auth = "session"
        if request.method not in ("GET", "HEAD", "OPTIONS"):
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
    if g.get("lq_auth") == "session" and request.method == "GET":
        settings = current_runtime().settings
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
        PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME,
        SESSION_COOKIE_SECURE=rt.settings.cookie_secure,
        REMEMBER_COOKIE_SECURE=rt.settings.cookie_secure,
        REMEMBER_COOKIE_HTTPONLY=True,
    )
    csrf = CSRFProtect(server)
    server.extensions["csrf"] = csrf
    manager = LoginManager(server)
    manager.user_loader(_load)  # no request_loader: bearer tokens are the guard's
    server.before_request(guard)
    server.after_request(set_csrf_cookie)
    server.register_blueprint(pages)

    @server.errorhandler(CSRFError)
    def _csrf_error(exc: CSRFError) -> Response:
        return _deny(400, f"CSRF check failed: {exc.description}", "csrf_failed")


# -- the login page ---------------------------------------------------------------------------
pages = Blueprint("auth_pages", __name__)

_TEXT = LOGIN_TEXT  # the sign-in and kiosk pages' strings: dashboard/data/i18n/*.json "login"

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


_KIOSK_CONFIRM = """<!doctype html>
<html lang="{{ lang }}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ t.title }} · {{ t.kiosk_title }}</title>
<link rel="stylesheet" href="/assets/login.css"></head>
<body class="lq-login-page"><main class="lq-login lq-kiosk-confirm">
<h1>{{ t.title }}</h1><h2>{{ t.kiosk_title }}</h2>
<p>{{ t.kiosk_signed_in.format(name=current, role=current_role) }}</p>
<p>{{ t.kiosk_question.format(screen=screen, name=current) }}</p>
<form method="post" action="/kiosk?lang={{ lang }}">
<input type="hidden" name="csrf_token" value="{{ csrf }}">
<input type="hidden" name="token" value="{{ token }}">
<input type="hidden" name="next" value="{{ next }}">
<button type="submit" id="lq-kiosk-switch">{{ t.kiosk_switch }}</button>
</form>
<a class="lq-login-lang" id="lq-kiosk-stay" href="{{ stay }}">{{ t.kiosk_stay }}</a>
</main></body></html>"""


def _lang() -> str:
    requested = request.args.get("lang")
    if requested in _TEXT:
        return requested
    return current_runtime().settings.language


def safe_next(target: str | None) -> str:
    """Only local paths: never redirect a signed-in user to another site. A backslash
    counts as a slash to browsers (``/\\evil.example``) and a control character could
    split the Location header: both are refused."""
    if not target or len(target) > 2000:
        return "/"
    if "\\" in target or any(ch < " " or ch == "\x7f" for ch in target):
        return "/"
    try:
        parts = urlsplit(target)
    except ValueError:  # e.g. "/[" reads as a broken IPv6 host
        return "/"
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
    rt = current_runtime()
    ip = client_ip()
    target = safe_next(request.form.get("next"))
    # Checked before the password: a blocked guesser learns nothing, even the right one.
    wait_s, scope = login_blocked(rt.redis, rt.keys, rt.settings, ip=ip, username=username)
    if wait_s:
        with rt.db.write() as db_session:
            accounts.audit(
                db_session, actor=f"user:{accounts.printable_name(username)}",
                action="login.limited", ip=ip, detail={"retry_after_s": wait_s, "scope": scope},
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
    if current_session_id() is not None:
        _end_session()  # signing in over another session ends that one
    _start_session(principal, permanent=False)
    return redirect(target)  # type: ignore[return-value]


@pages.post("/logout")
def logout() -> Response:
    """End this browser's session here and on every web instance (its sockets included)."""
    principal = current_principal()
    if principal is not None:
        rt = current_runtime()
        with rt.db.write() as db_session:
            accounts.audit(db_session, actor=principal.actor, action="logout", ip=client_ip())
    if g.get("lq_auth") == "session":
        _end_session()
    return redirect("/login")  # type: ignore[return-value]


@pages.post("/kiosk")
def kiosk_switch() -> Response:
    """The confirmation page's answer: switch this signed-in browser to a wall token."""
    target = safe_next(request.form.get("next"))
    if urlsplit(target).path not in WALL_PATHS:
        target = "/wall"
    rt = current_runtime()
    with rt.db.read() as db_session:
        principal = accounts.token_principal(db_session, plaintext=request.form.get("token", ""))
    if principal is None:
        return _deny(401, "the token is invalid or revoked")
    if principal.role not in KIOSK_ROLES:
        return _refuse_kiosk(principal, "role")
    _open_kiosk(principal, replaced=current_principal())
    return redirect(target)  # type: ignore[return-value]
