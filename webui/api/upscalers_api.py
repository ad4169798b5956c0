"""A1111's upscaler listings: ``/sdapi/v1/upscalers``, ``/latent-upscale-modes``, ``/realesrgan-models``,
``/face-restorers`` (empty: no face restorer ships), and ``POST /refresh-upscalers`` (ours: rescan).

Shapes follow A1111 v1.10's ``modules/api/models.py``. Paths are full for admins and relative to
the upscaler folders for other users, as for the other model listings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from webui import upscalers
from webui.api.access import caller, shown_path
from webui.auth.users import User

if TYPE_CHECKING:
    from webui.app import Studio


class UpscalerItem(BaseModel):
    name: str = Field(title="Name")
    model_name: str | None = Field(title="Model Name")
    model_path: str | None = Field(title="Path")
    model_url: str | None = Field(title="URL")
    scale: float | None = Field(title="Scale")


class LatentUpscalerModeItem(BaseModel):
    name: str = Field(title="Name")


class RealesrganItem(BaseModel):
    name: str = Field(title="Name")
    path: str | None = Field(title="Path")
    scale: int | None = Field(title="Scale")


class FaceRestorerItem(BaseModel):
    name: str = Field(title="Name")
    cmd_dir: str | None = Field(title="Path")


def upscalers_router(studio: Studio) -> APIRouter:
    router = APIRouter(prefix="/sdapi/v1", tags=["upscalers"])
    service = studio.upscalers
    roots = list(service.folders.values())

    def path(value: str | None, user: User) -> str | None:
        return None if value is None else shown_path(value, roots, user)  # type: ignore[arg-type]

    @router.get("/upscalers", response_model=list[UpscalerItem])
    def upscaler_list(user: User = Depends(caller)):
        """None, Lanczos, Nearest, then the model files (a model's scale is known once it has loaded; 4 before)."""
        return [UpscalerItem(name=i.name, model_name=i.model_name, model_path=path(i.model_path, user),
                             model_url=i.model_url, scale=i.scale) for i in service.items()]

    @router.get("/latent-upscale-modes", response_model=list[LatentUpscalerModeItem])
    def latent_modes():
        return [LatentUpscalerModeItem(name=name) for name in upscalers.LATENT_UPSCALE_MODES]

    @router.get("/realesrgan-models", response_model=list[RealesrganItem])
    def realesrgan_models(user: User = Depends(caller)):
        """The model files in models/RealESRGAN."""
        return [RealesrganItem(name=i.name, path=path(i.model_path, user), scale=int(i.scale or 4))
                for i in service.items() if i.folder == "RealESRGAN"]

    @router.get("/face-restorers", response_model=list[FaceRestorerItem])
    def face_restorers():
        return []  # GFPGAN / CodeFormer do not ship (A1111 lists them as built-ins)

    @router.post("/refresh-upscalers")
    def refresh_upscalers():
        service.refresh()
        return None

    return router
