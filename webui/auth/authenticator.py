"""Who is asking: HTTP Basic (what A1111 clients send) or a session cookie (the browser UI).

With logins off everyone is the one admin user ``local``. A good Basic password is remembered
for a few minutes (scrypt is deliberately slow); a user removed from the users file, even by
another process (``--remove-user``), loses access at the next request. Repeated failures from
one address are refused for a while.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
import threading
import time
from typing import Mapping

from webui.auth.users import LOCAL, User, UserStore

SESSION_COOKIE = "sd_studio_session"
SESSION_SECONDS = 7 * 24 * 3600
_BASIC_CACHE_SECONDS = 300
_FAILURE_WINDOW, _FAILURE_LIMIT = 300.0, 10


class Authenticator:
    def __init__(self, users: UserStore):
        self.users = users
        self._lock = threading.Lock()
        self._sessions: dict[str, tuple[str, float]] = {}  # token → (user name, expiry)
        self._basic: dict[bytes, tuple[User, float]] = {}  # digest of name:password → (user, expiry)
        self._failures: dict[str, list[float]] = {}  # client address → failure times

    @property
    def enabled(self) -> bool:
        return self.users.enabled

    # --- sessions -------------------------------------------------------------------------------

    def login(self, name: str, password: str, client: str = "") -> tuple[str, User] | None:
        """A new session token for good credentials; None (and a counted failure) otherwise."""
        user = self._check(name, password, client)
        if user is None:
            return None
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._sessions[token] = (user.name, time.monotonic() + SESSION_SECONDS)
        return token, user

    def logout(self, token: str) -> None:
        with self._lock:
            self._sessions.pop(token, None)

    def blocked(self, client: str) -> bool:
        """Too many failed logins from this address lately."""
        now = time.monotonic()
        with self._lock:
            recent = [t for t in self._failures.get(client, []) if now - t < _FAILURE_WINDOW]
            self._failures[client] = recent
            return len(recent) >= _FAILURE_LIMIT

    # --- requests -------------------------------------------------------------------------------

    def identify(self, headers: Mapping[str, str], client: str = "") -> User | None:
        """The user behind a request's headers, or None when logins are on and none is given."""
        self.users.refresh_if_changed()
        if not self.enabled:
            return User(LOCAL, "admin")
        token = _cookie(headers.get("cookie", ""), SESSION_COOKIE)
        if token:
            user = self._session_user(token)
            if user is not None:
                return user
        authorization = headers.get("authorization", "")
        if authorization[:6].lower() == "basic ":
            name, password = _basic(authorization[6:])
            if name is not None:
                return self._check(name, password, client)
        return None

    def _session_user(self, token: str) -> User | None:
        now = time.monotonic()
        with self._lock:
            found = self._sessions.get(token)
            if found is None or found[1] < now:
                self._sessions.pop(token, None)
                return None
        role = self.users.role_of(found[0])
        return User(found[0], role) if role else None

    def _check(self, name: str, password: str, client: str) -> User | None:
        if self.blocked(client):
            return None
        digest = hashlib.sha256(f"{name}\0{password}".encode("utf-8", "surrogatepass")).digest()
        now = time.monotonic()
        with self._lock:
            cached = self._basic.get(digest)
        if cached is not None and cached[1] > now and self.users.role_of(name) == cached[0].role:
            return cached[0]
        user = self.users.verify(name, password)
        with self._lock:
            if user is None:
                self._failures.setdefault(client, []).append(now)
                return None
            if len(self._basic) > 1000:
                self._basic.clear()
            self._basic[digest] = (user, now + _BASIC_CACHE_SECONDS)
        return user


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name and value:
            return value
    return None


def _basic(encoded: str) -> tuple[str | None, str]:
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None, ""
    name, sep, password = decoded.partition(":")
    return (name, password) if sep else (None, "")
