"""Accounts, roles, API tokens and the audit trail (services with an explicit session).

Roles: ``viewer``, ``operator``, ``lead``, ``leader``, ``admin``; what each may do is the one
table of dashboard/policy.py.

Passwords are hashed with scrypt (werkzeug); tokens are random 256-bit strings of
which only a SHA-256 is stored, so a database leak reveals neither.

Browser sessions are rows (``web_sessions``, keyed by the SHA-256 of the secret in the
cookie), checked on every request: logging out deletes the row, a password change, a
disable or a token's revocation deletes every row of that principal, and the cookie
stops working on every web instance at once.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from dashboard.models import ApiToken, AuditEvent, User, WebSession
from dashboard.policy import PERMISSIONS as PERMISSIONS  # the one table: dashboard/policy.py
from dashboard.policy import ROLES as ROLES
from dashboard.policy import allowed as allowed
from dashboard.vocabulary import Role

MIN_PASSWORD = 10
_USERNAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


class AccountError(ValueError):
    """A refused account operation, with a reason for people and the field it concerns."""

    def __init__(self, reason: str, field: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking: a signed-in user or a token, with its role."""

    kind: str  # "user" | "token"
    key: int
    name: str
    role: str
    epoch: int = 0

    @property
    def actor(self) -> str:
        """How the audit trail and lq:changes name this principal."""
        return f"{self.kind}:{self.name}"

    def can(self, permission: str) -> bool:
        return allowed(self.role, permission)


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r} (one of: {', '.join(ROLES)})", "role")


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"the password needs at least {MIN_PASSWORD} characters", "password")


def _check_name(name: str, field: str) -> None:
    if not 1 <= len(name) <= 64 or not set(name) <= _USERNAME_CHARS:
        raise AccountError(f"{field} must be 1-64 characters of A-Z a-z 0-9 . _ -", field)


def valid_name(name: str) -> bool:
    return 1 <= len(name) <= 64 and set(name) <= _USERNAME_CHARS


def printable_name(name: str) -> str:
    """A typed username as the audit trail may store it: a valid name as it is, anything
    else escaped to ASCII (a NUL, a control character or a lone surrogate could not be
    stored, or would forge a line in a log)."""
    if valid_name(name):
        return name
    return name[:64].encode("unicode_escape").decode("ascii")[:64]


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def generate_password() -> str:
    return secrets.token_urlsafe(12)


# -- users ----------------------------------------------------------------------------------
def create_user(
    session: Session,
    *,
    username: str,
    role: str,
    password: str,
    display_name: str = "",
    actor: str = "system",
) -> User:
    _check_name(username, "username")
    _check_role(role)
    _check_password(password)
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise AccountError(f"user {username!r} already exists", "username")
    user = User(
        username=username,
        display_name=display_name or username,
        role=role,
        password_hash=generate_password_hash(password, method="scrypt"),
        disabled=False,
        session_epoch=1,
    )
    session.add(user)
    session.flush()
    audit(session, actor=actor, action="user.create", target=username, detail={"role": role})
    return user


def get_user(session: Session, *, username: str) -> User | None:
    return session.scalar(select(User).where(User.username == username))


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.username)))


def set_password(session: Session, *, username: str, password: str, actor: str = "system") -> User:
    user = _require_user(session, username)
    _check_password(password)
    user.password_hash = generate_password_hash(password, method="scrypt")
    user.session_epoch += 1  # signs out every existing session
    end_sessions_of(session, kind="user", key=user.id)
    audit(session, actor=actor, action="user.password", target=username)
    return user


def set_disabled(session: Session, *, username: str, disabled: bool, actor: str = "system") -> User:
    user = _require_user(session, username)
    user.disabled = disabled
    user.session_epoch += 1
    end_sessions_of(session, kind="user", key=user.id)
    audit(
        session, actor=actor, action="user.disable" if disabled else "user.enable", target=username
    )
    return user


def _require_user(session: Session, username: str) -> User:
    user = get_user(session, username=username)
    if user is None:
        raise AccountError(f"no user {username!r}", "username")
    return user


def authenticate(
    session: Session, *, username: str, password: str, ip: str | None, now: datetime
) -> Principal | None:
    """Check a username and password; record the attempt in the audit trail."""
    # A name no account can have is not looked up (it may hold what the database refuses).
    user = get_user(session, username=username) if valid_name(username) else None
    # Always run one hash check so that unknown names take as long as wrong passwords.
    ok = check_password_hash(user.password_hash if user else _DUMMY_HASH, password)
    if user is None or not ok or user.disabled:
        why = (
            "unknown user"
            if user is None
            else "disabled"
            if user.disabled and ok
            else "bad password"
        )
        audit(
            session,
            actor=f"user:{printable_name(username)}",
            action="login.failed",
            ip=ip,
            detail={"why": why},
        )
        return None
    user.last_login_at = now
    audit(session, actor=f"user:{username}", action="login", ip=ip)
    return user_principal(user)


_DUMMY_HASH = generate_password_hash("lianqin-timing-equaliser", method="scrypt")


def user_principal(user: User) -> Principal:
    return Principal("user", user.id, user.username, user.role, user.session_epoch)


def load_user_principal(session: Session, *, user_id: int, epoch: int) -> Principal | None:
    """The principal of a session cookie, or None if the user is gone, disabled or re-keyed."""
    user = session.get(User, user_id)
    if user is None or user.disabled or user.session_epoch != epoch:
        return None
    return user_principal(user)


# -- tokens ---------------------------------------------------------------------------------
def create_token(
    session: Session, *, name: str, role: str = Role.VIEWER, actor: str = "system"
) -> tuple[ApiToken, str]:
    """A new token; the plaintext is returned once and never stored."""
    _check_name(name, "name")
    _check_role(role)
    existing = session.scalar(select(ApiToken).where(ApiToken.name == name))
    if existing is not None and existing.revoked_at is None:
        raise AccountError(f"a token named {name!r} exists; revoke it first", "name")
    if existing is not None:
        session.delete(existing)
        session.flush()
    plaintext = "lq_" + secrets.token_urlsafe(32)
    token = ApiToken(
        name=name,
        role=role,
        token_hash=hash_token(plaintext),
        prefix=plaintext[:10],
        created_by=actor,
    )
    session.add(token)
    session.flush()
    audit(session, actor=actor, action="token.create", target=name, detail={"role": role})
    return token, plaintext


def list_tokens(session: Session) -> list[ApiToken]:
    return list(session.scalars(select(ApiToken).order_by(ApiToken.name)))


def revoke_token(session: Session, *, name: str, now: datetime, actor: str = "system") -> ApiToken:
    token = session.scalar(select(ApiToken).where(ApiToken.name == name))
    if token is None or token.revoked_at is not None:
        raise AccountError(f"no active token named {name!r}", "name")
    token.revoked_at = now
    end_sessions_of(session, kind="token", key=token.id)
    audit(session, actor=actor, action="token.revoke", target=name)
    return token


def token_principal(session: Session, *, plaintext: str) -> Principal | None:
    """The principal of a presented token, or None if unknown or revoked."""
    if not plaintext or len(plaintext) > 200 or not plaintext.isascii():
        return None
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(plaintext)))
    if token is None or token.revoked_at is not None:
        return None
    return Principal("token", token.id, token.name, token.role)


def load_token_principal(session: Session, *, token_id: int) -> Principal | None:
    token = session.get(ApiToken, token_id)
    if token is None or token.revoked_at is not None:
        return None
    return Principal("token", token.id, token.name, token.role)


def touch_token(session: Session, *, token_id: int, now: datetime) -> None:
    token = session.get(ApiToken, token_id)
    if token is not None:
        token.last_used_at = now


# -- browser sessions ---------------------------------------------------------------------------
def open_session(
    session: Session, principal: Principal, *, now: datetime, lifetime: timedelta,
    ip: str | None = None,
) -> tuple[str, str]:  # fmt: skip
    """A new server-side session for ``principal``: (the cookie's secret, the row's id).

    Expired rows are swept here, at sign-in, so the table holds live sessions only."""
    session.execute(delete(WebSession).where(WebSession.expires_at < now))
    secret = secrets.token_urlsafe(32)
    row = WebSession(
        id=hash_token(secret), kind=principal.kind, principal_key=principal.key,
        created_at=now, expires_at=now + lifetime, ip=ip,
    )  # fmt: skip
    session.add(row)
    return secret, row.id


def session_id(secret: str) -> str:
    """The row id of a cookie's session secret."""
    return hash_token(secret)


def session_principal(session: Session, *, secret: str, now: datetime) -> Principal | None:
    """The principal of a live session (the row exists, has not expired, and its user or
    token is still valid), or None."""
    if not secret or len(secret) > 200 or not secret.isascii():
        return None
    row = session.get(WebSession, hash_token(secret))
    if row is None or row.expires_at <= now:
        return None
    if row.kind == "user":
        user = session.get(User, row.principal_key)
        if user is None or user.disabled:
            return None
        return user_principal(user)
    if row.kind == "token":
        return load_token_principal(session, token_id=row.principal_key)
    return None


def end_session(session: Session, *, secret: str) -> None:
    session.execute(delete(WebSession).where(WebSession.id == hash_token(secret)))


def end_sessions_of(session: Session, *, kind: str, key: int) -> int:
    """Delete every session of one user or token; returns how many there were."""
    result = session.execute(
        delete(WebSession).where(WebSession.kind == kind, WebSession.principal_key == key)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def live_sessions(session: Session, *, ids: Iterable[str], now: datetime) -> set[str]:
    """Which of these session ids still exist and have not expired."""
    wanted = list(ids)
    if not wanted:
        return set()
    return set(
        session.scalars(
            select(WebSession.id).where(WebSession.id.in_(wanted), WebSession.expires_at > now)
        )
    )


def sessions_of(session: Session, *, kind: str, key: int) -> list[WebSession]:
    return list(
        session.scalars(
            select(WebSession).where(WebSession.kind == kind, WebSession.principal_key == key)
        )
    )


# -- audit ----------------------------------------------------------------------------------
def audit(
    session: Session,
    *,
    actor: str,
    action: str,
    target: str | None = None,
    ip: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    session.add(
        AuditEvent(actor=actor[:100], action=action, target=target, ip=ip, detail=detail or {})
    )


def recent_audit(session: Session, *, limit: int = 100) -> list[AuditEvent]:
    return list(session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)))
