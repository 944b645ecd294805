"""Console logins: users with passwords, server-side sessions, CSRF tokens and a lockout after failed sign-ins.

A password is stored only as an scrypt hash (standard library, a per-user random salt, ~16 MiB of memory per
guess) so a stolen table is slow to attack; a session only as the SHA-256 of its 256-bit random token (a fast
hash is enough for a value nobody can guess). Failed sign-ins are counted per login name whether or not the
name exists, so the lockout message does not tell an attacker which names are real.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import logging
import re
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa

from fengkong.domain import Role, new_id
from fengkong.errors import FengkongError
from fengkong.security import Permission, Principal
from fengkong.store import audit
from fengkong.store.tables import console_login_failures, console_sessions, console_users

if TYPE_CHECKING:
    from fengkong.service import Engine

log = logging.getLogger("fengkong.console")

# scrypt cost: N=2^14, r=8, p=1 is the interactive-login setting of the scrypt paper (about 50 ms, 16 MiB).
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
_SCRYPT_MAXMEM = 64 * 1024 * 1024
_NAME = re.compile(r"^[a-z0-9][a-z0-9._\-]{1,63}$")


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """``scrypt$N$r$p$salt$hash`` with a fresh 16-byte salt; the parameters travel with the hash so they can rise."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=_SCRYPT_MAXMEM, dklen=32)
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        got = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=_SCRYPT_MAXMEM,
            dklen=len(expected),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# Compared against when the name is unknown, so an unknown name costs the same time as a wrong password.
_DUMMY_HASH = hash_password(secrets.token_urlsafe(16))


@dataclass(frozen=True, slots=True)
class ConsoleUser:
    id: str
    name: str
    role: Role
    created_at: dt.datetime
    disabled: bool


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    """A signed-in user. ``csrf_token`` must come back in every form the user posts."""

    user_id: str
    name: str
    role: Role
    csrf_token: str
    expires_at: dt.datetime

    @property
    def principal(self) -> Principal:
        return Principal(self.user_id, self.role, self.name)

    @property
    def actor(self) -> str:
        """How the audit chain and the case history name this user."""
        return f"user:{self.name}"

    def can(self, permission: Permission) -> bool:
        return self.principal.can(permission)

    def csrf_ok(self, sent: str | None) -> bool:
        return bool(sent) and hmac.compare_digest(str(sent), self.csrf_token)


class ConsoleUsers:
    """Users and sessions of the analyst console (``engine.console``)."""

    max_failures = 5  # failed sign-ins for one name before it is locked
    lockout = dt.timedelta(minutes=15)
    idle_timeout = dt.timedelta(minutes=30)
    session_lifetime = dt.timedelta(hours=12)
    _touch_every = dt.timedelta(seconds=60)  # how stale last_seen_at may get before a request refreshes it

    def __init__(self, engine: Engine) -> None:
        self.db = engine.db
        # verify_audit recomputes each user's name and role: a role edited in the table (a quiet privilege
        # escalation) is reported as tampering.
        engine.audit_hashers["console_user_created"] = _user_hashes

    # ------------------------------------------------------------------------------------------ users

    def create_user(self, name: str, role: Role | str, actor: str = "cli") -> str:
        """Create a console user and return the generated password (shown once; only its hash is stored)."""
        name = _check_name(name)
        role = _check_role(role)
        password = generate_password()
        now = _now()
        user_id = new_id("usr")
        with self.db.begin() as conn:
            exists = conn.execute(sa.select(console_users.c.id).where(console_users.c.name == name)).first()
            if exists is not None:
                raise FengkongError("user_exists", f"a console user named {name!r} already exists", "name", 409)
            conn.execute(
                sa.insert(console_users).values(
                    id=user_id,
                    name=name,
                    role=role.value,
                    password_hash=hash_password(password),
                    created_at=now,
                    created_by=actor,
                )
            )
            audit.append(
                conn,
                "console_user_created",
                user_id,
                actor,
                _user_payload(user_id, name, role.value),
                now,
            )
        return password

    def reset_password(self, name: str, actor: str = "cli") -> str:
        """A new generated password; every session of the user ends."""
        name = _check_name(name)
        password = generate_password()
        now = _now()
        with self.db.begin() as conn:
            user_id = self._user_id(conn, name)
            conn.execute(
                sa.update(console_users)
                .where(console_users.c.id == user_id)
                .values(password_hash=hash_password(password))
            )
            conn.execute(sa.delete(console_sessions).where(console_sessions.c.user_id == user_id))
            audit.append(conn, "console_password_reset", user_id, actor, audit.content_hash({"user_id": user_id}), now)
        return password

    def disable_user(self, name: str, actor: str = "cli") -> None:
        """The user can no longer sign in; their open sessions end at once."""
        name = _check_name(name)
        now = _now()
        with self.db.begin() as conn:
            user_id = self._user_id(conn, name)
            conn.execute(sa.update(console_users).where(console_users.c.id == user_id).values(disabled_at=now))
            conn.execute(sa.delete(console_sessions).where(console_sessions.c.user_id == user_id))
            audit.append(conn, "console_user_disabled", user_id, actor, audit.content_hash({"user_id": user_id}), now)

    def list_users(self) -> list[ConsoleUser]:
        with self.db.connect() as conn:
            rows = conn.execute(sa.select(console_users).order_by(console_users.c.name)).all()
        return [ConsoleUser(r.id, r.name, Role(r.role), r.created_at, r.disabled_at is not None) for r in rows]

    def _user_id(self, conn: sa.Connection, name: str) -> str:
        user_id = conn.execute(sa.select(console_users.c.id).where(console_users.c.name == name)).scalar_one_or_none()
        if user_id is None:
            raise FengkongError("user_not_found", f"no console user named {name!r}", "name", 404)
        return str(user_id)

    # ------------------------------------------------------------------------------------------ sign-in

    def login(self, name: str, password: str, now: dt.datetime | None = None) -> tuple[ConsoleSession, str]:
        """Check a name and password; on success open a session and return it with its token (for the cookie).

        Refused with ``invalid_login`` (wrong name or password: the same answer for both), ``login_locked``
        (too many failures for this name; nothing is checked until the lock ends) or ``user_disabled``.
        """
        now = now or _now()
        name = (name or "").strip().lower()
        if not name:
            raise FengkongError("missing_field", "enter your user name", "name", 422)
        if not password:
            raise FengkongError("missing_field", "enter your password", "password", 422)
        name = name[:64]
        with self.db.connect() as conn:
            throttle = conn.execute(
                sa.select(console_login_failures).where(console_login_failures.c.name == name)
            ).one_or_none()
            user = conn.execute(sa.select(console_users).where(console_users.c.name == name)).one_or_none()
        if throttle is not None and throttle.locked_until is not None and _aware(throttle.locked_until) > now:
            until = _aware(throttle.locked_until).strftime("%H:%M")
            raise FengkongError(
                "login_locked",
                f"too many failed sign-ins for this name; try again after {until} UTC",
                "name",
                429,
            )
        ok = verify_password(password, user.password_hash if user is not None else _DUMMY_HASH)
        if not ok or user is None:
            left = self._record_failure(name, now)
            log.info("console sign-in failed")  # neither the name nor the password is logged
            hint = (
                f"; {left} more attempt{'s' if left != 1 else ''} before a "
                f"{int(self.lockout.total_seconds() // 60)}-minute lockout"
                if left
                else f"; this name is now locked for {int(self.lockout.total_seconds() // 60)} minutes"
            )
            raise FengkongError("invalid_login", f"wrong user name or password{hint}", "password", 401)
        if user.disabled_at is not None:
            raise FengkongError("user_disabled", "this console account is disabled; ask an administrator", "name", 403)
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        expires = now + self.session_lifetime
        with self.db.begin() as conn:
            conn.execute(sa.delete(console_login_failures).where(console_login_failures.c.name == name))
            conn.execute(
                sa.delete(console_sessions).where(
                    (console_sessions.c.expires_at < now) | (console_sessions.c.last_seen_at < now - self.idle_timeout)
                )
            )
            conn.execute(
                sa.insert(console_sessions).values(
                    token_hash=token_hash(token),
                    user_id=user.id,
                    csrf_token=csrf,
                    created_at=now,
                    last_seen_at=now,
                    expires_at=expires,
                )
            )
            audit.append(
                conn, "console_login", user.id, f"user:{user.name}", audit.content_hash({"user_id": user.id}), now
            )
        return ConsoleSession(user.id, user.name, Role(user.role), csrf, expires), token

    def _record_failure(self, name: str, now: dt.datetime) -> int:
        """Count a failure for the name (atomically); returns the attempts left before the lockout."""
        with self.db.begin() as conn:
            done = conn.execute(
                sa.update(console_login_failures)
                .where(console_login_failures.c.name == name)
                .values(failures=console_login_failures.c.failures + 1, last_failed_at=now)
            ).rowcount
            if not done:
                conn.execute(sa.insert(console_login_failures).values(name=name, failures=1, last_failed_at=now))
            failures = int(
                conn.execute(
                    sa.select(console_login_failures.c.failures).where(console_login_failures.c.name == name)
                ).scalar_one()
            )
            if failures >= self.max_failures:
                conn.execute(
                    sa.update(console_login_failures)
                    .where(console_login_failures.c.name == name)
                    .values(failures=0, locked_until=now + self.lockout)
                )
                return 0
        return self.max_failures - failures

    # ------------------------------------------------------------------------------------------ sessions

    def session(self, token: str | None, now: dt.datetime | None = None) -> ConsoleSession | None:
        """The live session a cookie token belongs to, or None (unknown, expired, idle too long, user disabled)."""
        if not token or len(token) > 128:
            return None
        now = now or _now()
        digest = token_hash(token)
        with self.db.connect() as conn:
            row = conn.execute(
                sa.select(
                    console_sessions.c.csrf_token,
                    console_sessions.c.expires_at,
                    console_sessions.c.last_seen_at,
                    console_users.c.id,
                    console_users.c.name,
                    console_users.c.role,
                    console_users.c.disabled_at,
                )
                .join(console_users, console_users.c.id == console_sessions.c.user_id)
                .where(console_sessions.c.token_hash == digest)
            ).one_or_none()
        if row is None or row.disabled_at is not None:
            return None
        if _aware(row.expires_at) <= now or _aware(row.last_seen_at) <= now - self.idle_timeout:
            return None
        if now - _aware(row.last_seen_at) >= self._touch_every:
            with self.db.begin() as conn:
                conn.execute(
                    sa.update(console_sessions).where(console_sessions.c.token_hash == digest).values(last_seen_at=now)
                )
        return ConsoleSession(row.id, row.name, Role(row.role), row.csrf_token, _aware(row.expires_at))

    def logout(self, token: str | None) -> None:
        if not token:
            return
        with self.db.begin() as conn:
            conn.execute(sa.delete(console_sessions).where(console_sessions.c.token_hash == token_hash(token)))


def _user_payload(user_id: str, name: str, role: str) -> str:
    return audit.content_hash({"user_id": user_id, "name": name, "role": role})


def _user_hashes(conn: sa.Connection, ids: list[str]) -> dict[str, str]:
    rows = conn.execute(
        sa.select(console_users.c.id, console_users.c.name, console_users.c.role).where(console_users.c.id.in_(ids))
    ).all()
    return {r.id: _user_payload(r.id, r.name, r.role) for r in rows}


def generate_password() -> str:
    """20 URL-safe characters (120 random bits): typed rarely, pasted from a password manager."""
    return secrets.token_urlsafe(15)


def _check_name(name: str) -> str:
    value = (name or "").strip().lower()
    if not _NAME.match(value):
        raise FengkongError(
            "invalid_field",
            "a user name is 2-64 characters: letters, digits, '.', '_' or '-', starting with a letter or digit",
            "name",
            422,
        )
    return value


def _check_role(role: Role | str) -> Role:
    try:
        return Role(role)
    except ValueError:
        roles = ", ".join(r.value for r in Role)
        raise FengkongError("invalid_role", f"role must be one of {roles}", "role", 422) from None


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


__all__ = ["ConsoleSession", "ConsoleUser", "ConsoleUsers", "hash_password", "verify_password"]
