"""``/login``, ``/logout`` and ``/health``: the only routes that answer without a user.

The login page is a plain form (no script): a good name and password set the session cookie
(HttpOnly, SameSite=Lax) and go to ``next`` (a path on this server only). API clients can post
JSON instead, or skip sessions and send HTTP Basic with every request, as A1111 clients do.
"""

from __future__ import annotations

import html

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from webui.auth.authenticator import SESSION_COOKIE, SESSION_SECONDS, Authenticator

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>SD Studio: log in</title>
<style>
body {{ font-family: system-ui, sans-serif; background: #1f2023; color: #e8e8e8; display: flex;
  align-items: center; justify-content: center; min-height: 100vh; margin: 0; }}
form {{ background: #2b2c30; padding: 2em 2.2em; border-radius: 10px; min-width: 18em;
  box-shadow: 0 6px 24px rgba(0, 0, 0, 0.35); }}
h1 {{ font-size: 1.3em; margin: 0 0 1em; }}
label {{ display: block; margin: 0.8em 0 0.3em; font-size: 0.9em; opacity: 0.85; }}
input {{ width: 100%; box-sizing: border-box; padding: 0.55em; border-radius: 6px; border: 1px solid #555;
  background: #1f2023; color: inherit; font-size: 1em; }}
button {{ margin-top: 1.4em; width: 100%; padding: 0.65em; border: 0; border-radius: 6px; background: #ea580c;
  color: #fff; font-size: 1em; cursor: pointer; }}
.error {{ color: #ff8a80; margin-top: 1em; font-size: 0.9em; }}
</style></head><body>
<form method="post" action="/login">
<h1>SD Studio</h1>
<label for="username">User</label><input id="username" name="username" autocomplete="username" autofocus required>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<input type="hidden" name="next" value="{next}">
<button type="submit">Log in</button>{error}
</form></body></html>"""


def _safe_next(target: str | None) -> str:
    """Only a path on this server (never ``//host`` or ``http://``): no open redirect."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _page(target: str, error: str = "", status: int = 200) -> HTMLResponse:
    message = f'<div class="error">{html.escape(error)}</div>' if error else ""
    return HTMLResponse(_PAGE.format(next=html.escape(_safe_next(target)), error=message), status_code=status)


def login_router(auth: Authenticator) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/health")
    def health() -> dict:
        return {"status": "ok", "logins": auth.enabled}

    @router.get("/login")
    def login_page(next: str = "/"):  # noqa: A002 - the query parameter's name
        if not auth.enabled:
            return RedirectResponse(_safe_next(next), status_code=303)
        return _page(next)

    @router.post("/login")
    async def login(request: Request) -> Response:
        client = request.client.host if request.client else ""
        is_json = request.headers.get("content-type", "").startswith("application/json")
        try:
            data = await request.json() if is_json else dict(await request.form())
        except Exception:
            data = {}
        name, password = str(data.get("username", "")), str(data.get("password", ""))
        target = _safe_next(str(data.get("next", "/")))
        if auth.blocked(client):
            message = "too many failed logins from this address; try again in a few minutes"
            return JSONResponse({"error": "TooManyAttempts", "detail": message, "message": message}, 429) \
                if is_json else _page(target, message, 429)
        found = auth.login(name, password, client) if name and password else None
        if found is None:
            message = "wrong user name or password"
            return JSONResponse({"error": "Unauthorized", "detail": message, "message": message}, 401) \
                if is_json else _page(target, message, 401)
        token, user = found
        response: Response = JSONResponse({"user": user.name, "role": user.role}) if is_json \
            else RedirectResponse(target, status_code=303)
        response.set_cookie(SESSION_COOKIE, token, max_age=SESSION_SECONDS, httponly=True, samesite="lax", path="/")
        return response

    @router.api_route("/logout", methods=["GET", "POST"])
    def logout(request: Request) -> Response:
        token = request.cookies.get(SESSION_COOKIE)
        if token:
            auth.logout(token)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    return router
