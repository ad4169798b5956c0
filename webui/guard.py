"""The gate every request passes, UI and API alike (pure ASGI middleware, outermost).

In order: the Host must be one this server answers to (DNS rebinding); a state-changing request
from a foreign Origin is refused (cross-site requests); the body is capped; and with logins on,
every path but the login page and the health check needs a user (HTTP Basic or the session
cookie). The user goes into ``scope["state"]["user"]`` for the routes.
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Any, Awaitable, Callable, Iterable

from webui.auth.authenticator import Authenticator

Scope = dict[str, Any]
Message = dict[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]

PUBLIC_PATHS = frozenset({"/health", "/login", "/logout"})
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_API_PREFIXES = ("/sdapi/", "/api/", "/docs", "/openapi.json", "/redoc")


def host_of(value: str) -> str:
    """"example.com:7860" → "example.com"; "[::1]:7860" → "::1"; lower-case."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    if value.count(":") == 1:
        return value.split(":", 1)[0]
    return value


class Guard:
    def __init__(self, app: ASGIApp, *, auth: Authenticator, allowed_hosts: Iterable[str] | None,
                 max_body_bytes: int):
        self.app = app
        self.auth = auth
        self.allowed_hosts = None if allowed_hosts is None else {host_of(h) for h in allowed_hosts}
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        websocket = scope["type"] == "websocket"
        method = scope.get("method", "GET")
        path = scope.get("path", "/")
        host = host_of(headers.get("host", ""))
        if self.allowed_hosts is not None and host not in self.allowed_hosts:
            await _deny(scope, send, 400, "BadHost", f"this server does not answer to the host {host!r}")
            return
        # A websocket carries the session cookie like a POST does: same origin only (CSWSH).
        if (websocket or method not in _SAFE_METHODS) and not self._same_origin(headers):
            await _deny(scope, send, 403, "CrossOrigin", "requests that change something must come from this "
                                                         "server's pages")
            return
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_body_bytes:
            await _deny(scope, send, 413, "TooLarge", f"the request body is larger than {self.max_body_bytes // 2**20} MiB")
            return
        client = (scope.get("client") or ("", 0))[0]
        user = self.auth.identify(headers, client)
        if user is None and path not in PUBLIC_PATHS:
            if websocket:
                await _deny(scope, send, 401, "Unauthorized", "log in first")
            else:
                await self._refuse(scope, send, headers, path)
            return
        scope.setdefault("state", {})["user"] = user
        if websocket:
            await self.app(scope, receive, send)
            return
        cap = _BodyCap(self.max_body_bytes, receive, send)
        try:
            await self.app(scope, cap.receive, cap.send)
        except Exception:
            if not cap.exceeded:
                raise
            # The app gave up on the body we cut off; the client already has its 413.

    @staticmethod
    def _same_origin(headers: dict[str, str]) -> bool:
        origin = headers.get("origin")
        if origin is None:
            # Browsers send Origin on cross-site POSTs; Fetch Metadata covers the rest.
            return headers.get("sec-fetch-site", "same-origin") in ("same-origin", "same-site", "none")
        parsed = urllib.parse.urlsplit(origin)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            return False  # "null" (sandboxed frames, files) and the like
        # The page that sends it was served by this very host and port.
        return parsed.netloc.lower() == headers.get("host", "").strip().lower()

    async def _refuse(self, scope: Scope, send, headers: dict[str, str], path: str) -> None:
        browser_page = (scope["type"] == "http" and scope.get("method") == "GET"
                        and "text/html" in headers.get("accept", "") and not path.startswith(_API_PREFIXES))
        if browser_page:
            target = urllib.parse.quote(path + (("?" + scope["query_string"].decode()) if scope.get("query_string") else ""))
            await send({"type": "http.response.start", "status": 303,
                        "headers": [(b"location", f"/login?next={target}".encode()), (b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
            return
        extra = [(b"www-authenticate", b'Basic realm="SD Studio"')] if path.startswith(_API_PREFIXES) else []
        await _reply(send, 401, "Unauthorized", "log in first: HTTP Basic credentials or the session cookie", extra)


class _BodyCap:
    """Caps a body sent without Content-Length (chunked): past the cap the client gets a 413 and
    the app sees a disconnect; whatever the app then tries to send is dropped."""

    def __init__(self, limit: int, receive, send):
        self.limit, self.seen, self.exceeded, self.started = limit, 0, False, False
        self._receive, self._send = receive, send

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request":
            self.seen += len(message.get("body", b""))
            if self.seen > self.limit and not self.exceeded:
                self.exceeded = True
                if not self.started:
                    self.started = True
                    await _reply(self._send, 413, "TooLarge",
                                 f"the request body is larger than {self.limit // 2**20} MiB")
                return {"type": "http.disconnect"}
        return message

    async def send(self, message: Message) -> None:
        if self.exceeded:
            return
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)


async def _deny(scope: Scope, send, status: int, error: str, message: str) -> None:
    if scope["type"] == "websocket":  # closed before the handshake: the client sees a refused upgrade
        await send({"type": "websocket.close", "code": 1008, "reason": message[:120]})
        return
    await _reply(send, status, error, message)


async def _reply(send, status: int, error: str, message: str, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps({"error": error, "detail": message, "message": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
