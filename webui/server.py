"""The FastAPI application: REST routers beside the Gradio UI mounted at "/"."""

from __future__ import annotations

import contextlib
import logging
import math
import socket

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from webui.app import Studio
from webui.flags import CommandLine
from webui.guard import Guard
from webui.version import VERSION

log = logging.getLogger(__name__)


def create_app(studio: Studio, *, with_ui: bool = True) -> Guard:
    """The whole server: REST routers and the Gradio UI, behind the gate (webui/guard.py)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        studio.start()
        try:
            yield
        finally:
            studio.stop()

    app = FastAPI(title="SD Studio", version=VERSION, lifespan=lifespan)
    app.state.studio = studio
    _install_error_handlers(app)

    from webui.api.extensions_api import extensions_router
    from webui.api.extras_api import extras_router
    from webui.api.jobs_api import jobs_router
    from webui.api.login import login_router
    from webui.api.merge_api import merge_router
    from webui.api.scripts_api import scripts_router
    from webui.api.sdapi import sdapi_router
    from webui.api.segment_api import segment_router
    from webui.api.upscalers_api import upscalers_router
    from webui.control.api import controlnet_router
    from webui.control.detect_api import detect_router

    app.include_router(login_router(studio.auth))
    app.include_router(sdapi_router(studio))
    app.include_router(jobs_router(studio))
    app.include_router(segment_router(studio))
    app.include_router(scripts_router(studio))
    app.include_router(extensions_router(studio))
    app.include_router(upscalers_router(studio))
    app.include_router(extras_router(studio))
    app.include_router(merge_router(studio))
    app.include_router(controlnet_router(studio))
    app.include_router(detect_router(studio))
    demo = None
    if with_ui:
        from webui.ui import build_ui
        from webui.ui.extra_networks import preview_router

        app.include_router(preview_router(studio))
        demo, launch_kwargs = build_ui(studio)
    # Extensions add their routes here, before the UI takes "/" (a route added after it is never reached);
    # the guard below covers them as every other route.
    studio.plugins.callbacks.call("app_started", demo, app)
    if demo is not None:
        import gradio as gr

        app = gr.mount_gradio_app(app, demo, path="/", **launch_kwargs)
    hosts = None if studio.cmd.allowed_hosts == ("*",) else allowed_hosts(studio.cmd)
    return Guard(app, auth=studio.auth, allowed_hosts=hosts, max_body_bytes=studio.cmd.max_body_mb * 2**20)


def allowed_hosts(cmd: CommandLine) -> set[str]:
    """--allowed-hosts, else the names and addresses of this machine (only loopback unless --listen)."""
    hosts = {"localhost", "127.0.0.1", "::1"}
    if cmd.allowed_hosts:
        return hosts | set(cmd.allowed_hosts)
    if cmd.listen:
        import psutil

        hosts |= {socket.gethostname(), socket.getfqdn()}
        for addresses in psutil.net_if_addrs().values():
            hosts |= {a.address.split("%")[0] for a in addresses if a.family in (socket.AF_INET, socket.AF_INET6)}
    return {h.lower() for h in hosts}


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # FastAPI answers a body it cannot decode (bad UTF-8, JSON nested too deep) with a 400 of
        # its own shape: the same problem is a 422 in our shape, as every other bad body.
        if exc.status_code == 400 and "parsing the body" in str(exc.detail):
            message = "the body is not valid JSON (bad UTF-8, or nested too deep)"
            return JSONResponse(status_code=422, content={"error": "ValidationError", "detail": message,
                                                          "message": message})
        message = str(exc.detail)
        return JSONResponse(status_code=exc.status_code, content={"error": type(exc).__name__, "detail": message,
                                                                  "message": message}, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's list of errors, plus one readable line for people and simple clients.
        errors = exc.errors()
        message = _encodable("; ".join(_describe(e) for e in errors) or "invalid request")
        return JSONResponse(
            status_code=422,
            content={"error": "ValidationError", "detail": _jsonable(errors), "message": message},
        )


def _describe(error: dict) -> str:
    if error.get("type") == "json_invalid":  # loc ends with the character position
        position = error.get("loc", ())[-1:] or ("?",)
        reason = (error.get("ctx") or {}).get("error", "")
        return f"the body is not valid JSON (at character {position[0]}): {reason}".rstrip(": ")
    location = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
    return f"{location}: {error.get('msg', 'invalid')}" if location else str(error.get("msg", "invalid"))


def _jsonable(errors: list[dict]) -> list[dict]:
    # Pydantic puts the raised exception object in "ctx"; keep only what JSON can carry.
    return [{k: _sanitized(str(v) if k == "ctx" else v) for k, v in e.items() if k != "input" or _plain(v)}
            for e in errors]


def _sanitized(value: object) -> object:
    # Names in "loc" and words in "msg" come from the client, lone surrogates included.
    if isinstance(value, str):
        return _encodable(value)
    if isinstance(value, (list, tuple)):
        return [_sanitized(v) for v in value]
    return value


def _encodable(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _plain(value: object) -> bool:
    # NaN/Infinity (Python's json reads them) cannot be written back as JSON: leave such inputs out.
    if isinstance(value, float) and not math.isfinite(value):
        return False
    if isinstance(value, str) and _encodable(value) != value:  # a lone surrogate cannot be sent back
        return False
    return isinstance(value, (str, int, float, bool, type(None)))
