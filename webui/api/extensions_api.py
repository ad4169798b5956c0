"""Extensions over REST: A1111's ``GET /sdapi/v1/extensions`` and our ``/api/v1/extensions``.

Listing is open to every logged-in user; every change (install, update, remove, enable/disable,
restart) is for admins, and refused on a ``--listen`` server without
``--enable-insecure-extension-access`` (webui/plugins/management.py). The routes are plain
``def``: git and install.py run on a threadpool thread, never on the event loop.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from webui import restart
from webui.api.access import admin_only, caller
from webui.app import Studio
from webui.auth.users import User
from webui.plugins.extensions import Extension
from webui.plugins.management import ExtensionManager, Outcome, manager_for

_ERRORS = {403: "Forbidden", 404: "NotFound", 409: "Conflict", 422: "Invalid", 500: "Failed", 503: "Unavailable",
           507: "NotSaved"}


class InstallBody(BaseModel):
    url: str = Field(max_length=4096, description="git URL (https, ssh, git, file) or a local repository folder")
    name: str | None = Field(None, max_length=255, description="folder name (default: from the URL)")
    branch: str | None = Field(None, max_length=255, description="branch to check out (default: the remote's)")


class ApplyBody(BaseModel):
    disabled: list[str] = Field(default_factory=list, max_length=10_000, description="extensions to turn off")
    disable_all: Literal["none", "extra", "all"] = "none"


class ExtensionItem(BaseModel):
    """A1111's model: ``commit_date`` is the commit's Unix time as a string, as A1111 sends it."""

    name: str
    remote: str
    branch: str
    commit_hash: str
    version: str
    commit_date: str
    enabled: bool


def commit_timestamp(iso: str | None) -> str:
    """A1111's ``commit_date``: the commit's Unix time. A1111 keeps git's int, and its pydantic 1
    response model (``commit_date: str``) sends it as a string, e.g. ``"1714557600"``."""
    if not iso:
        return ""
    try:
        return str(int(datetime.fromisoformat(iso).timestamp()))
    except ValueError:
        return ""


def a1111_item(ext: Extension) -> dict[str, Any]:
    """One entry of ``GET /sdapi/v1/extensions`` (A1111's ExtensionItem)."""
    return {"name": ext.name, "remote": ext.remote or "", "branch": ext.branch or "", "commit_hash": ext.commit or "",
            "version": (ext.commit or "")[:8], "commit_date": commit_timestamp(ext.commit_date),
            "enabled": ext.enabled}


def answer(outcome: Outcome) -> Any:
    """200 with what happened, or the error shape of every endpoint (plus the git/install output)."""
    body: dict[str, Any] = {"message": outcome.message, "name": outcome.name, "output": outcome.output}
    if outcome.ok:
        return {**body, "restarting": outcome.restarting, "details": outcome.details}
    error = _ERRORS.get(outcome.code, "Error")
    return JSONResponse(status_code=outcome.code, content={"error": error, "detail": outcome.message, **body})


def extensions_router(studio: Studio) -> APIRouter:
    router = APIRouter(tags=["extensions"])

    def manager() -> ExtensionManager:
        return manager_for(studio)

    @router.get("/sdapi/v1/extensions", response_model=list[ExtensionItem])
    def a1111_extensions() -> list[dict[str, Any]]:
        """A1111's list: the extensions that are git checkouts with a remote."""
        return [a1111_item(e) for e in manager().a1111_listing()]

    @router.get("/api/v1/extensions")
    def list_extensions(user: User = Depends(caller)) -> dict[str, Any]:
        """Every extension (built-in ones too), with load errors, switched-off hooks and load time.

        ``enabled`` is what the next start does; ``loaded`` what this run did. Admins see full
        paths and tracebacks; users paths relative to the data dir."""
        m = manager()
        roots = m.path_roots()
        return {
            "extensions": [v.as_dict(admin=user.is_admin, roots=roots) for v in m.views()],
            "disable_all": m.disable_all_mode(),
            "changes_allowed": m.changes_allowed,
            "changes_refused_because": m.lan_refusal("change extensions"),
            "restart_available": restart.available(),
        }

    @router.post("/api/v1/extensions/install", responses={403: {}, 409: {}, 422: {}, 500: {}})
    def install(body: InstallBody, user: User = Depends(caller)):
        """Clone into ``<data dir>/extensions/<name>`` and run its install.py; loaded after a restart."""
        return admin_only(user, "install extensions") or answer(manager().install(body.url, body.name, body.branch))

    @router.post("/api/v1/extensions/check-updates", responses={403: {}, 409: {}})
    def check_updates(user: User = Depends(caller)):
        """``git fetch`` each extension; ``details``: [{name, update_available, message}]."""
        return admin_only(user, "check extensions for updates") or answer(manager().check_updates())

    @router.post("/api/v1/extensions/apply", responses={403: {}, 404: {}, 409: {}, 507: {}})
    def apply(body: ApplyBody, user: User = Depends(caller)):
        """Save which extensions are off (A1111's ``disabled_extensions``) and restart the server."""
        return admin_only(user, "enable or disable extensions") or answer(
            manager().apply(list(body.disabled), body.disable_all))

    @router.post("/api/v1/server/restart", responses={403: {}, 409: {}, 503: {}})
    def restart_server(user: User = Depends(caller)):
        """Stop the queue (the running job runs again after), re-import every extension."""
        return admin_only(user, "restart the server") or answer(manager().restart())

    @router.post("/api/v1/extensions/{name}/update", responses={403: {}, 404: {}, 409: {}, 422: {}, 500: {}})
    def update(name: str, user: User = Depends(caller)):
        """Fast-forward to the upstream branch; loaded after a restart."""
        return admin_only(user, "update extensions") or answer(manager().update(name))

    @router.delete("/api/v1/extensions/{name}", responses={403: {}, 404: {}, 409: {}, 422: {}, 500: {}})
    def remove(name: str, user: User = Depends(caller)):
        """Delete the extension's folder; its scripts stay loaded until a restart."""
        return admin_only(user, "remove extensions") or answer(manager().remove(name))

    return router
