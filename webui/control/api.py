"""sd-webui-controlnet's routes: ``GET /controlnet/version``, ``/controlnet/model_list``, ``/controlnet/settings``.

Shapes are the extension's (v1.1.455): ``{"version": 3}``, ``{"model_list": ["stem [hash]", ...]}``
(no "None"; ``?update=true``, the default, rescans the folders), ``{"control_net_unit_count": 3}``.
The preprocessor routes (module_list, control_types, detect) live with the preprocessors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter

if TYPE_CHECKING:
    from webui.app import Studio

API_VERSION = 3  # the extension's external_code.get_api_version()


def controlnet_router(studio: Studio) -> APIRouter:
    router = APIRouter(prefix="/controlnet", tags=["controlnet"])

    @router.get("/version")
    def version() -> dict:
        return {"version": API_VERSION}

    @router.get("/model_list")
    def model_list(update: bool = True) -> dict:
        controlnets = getattr(studio, "controlnets", None)
        if controlnets is None:
            return {"model_list": []}
        if update:
            controlnets.refresh()
        return {"model_list": controlnets.titles(include_none=False)}

    @router.get("/settings")
    def settings() -> dict:
        return {"control_net_unit_count": int(studio.options.get("control_net_unit_count"))}

    return router
