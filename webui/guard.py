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
        method = scope.get("method", "GET")
        path = scope.get("path", "/")
        host = host_of(headers.get("host", ""))
        if self.allowed_hosts is not None and host not in self.allowed_hosts:
            await _reply(send, 400, "BadHost", f"this server does not answer to the host {host!r}")
            return
        if method not in _SAFE_METHODS and not self._same_origin(headers):
            await _reply(send, 403, "CrossOrigin", "requests that change something must come from this server's pages")
            return
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_body_bytes:
            await _reply(send, 413, "TooLarge", f"the request body is larger than {self.max_body_bytes // 2**20} MiB")
            return
        client = (scope.get("client") or ("", 0))[0]
        user = self.auth.identify(headers, client)
        if user is None and path not in PUBLIC_PATHS:
            await self._refuse(scope, send, headers, path)
            return
        scope.setdefault("state", {})["user"] = user
        await self.app(scope, self._capped(receive, send), send)

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

    def _capped(self, receive, send):
        limit, seen = self.max_body_bytes, 0

        async def capped() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:  # a chunked body past the cap: the app sees a disconnect
                    return {"type": "http.disconnect"}
            return message

        return capped


async def _reply(send, status: int, error: str, message: str, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps({"error": error, "detail": message, "message": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
