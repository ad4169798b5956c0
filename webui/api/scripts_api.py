"""``/sdapi/v1/scripts`` and ``/sdapi/v1/script-info``: the loaded scripts, as A1111 lists them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from webui.api.access import caller
from webui.api.common import plain
from webui.app import Studio
from webui.auth.users import User


class ScriptsList(BaseModel):
    txt2img: list[str] = Field(description="titles, lower case (A1111's script.name), always-on ones included")
    img2img: list[str]


class ScriptArg(BaseModel):
    label: str | None = None
    value: Any = None
    minimum: Any = None
    maximum: Any = None
    step: Any = None
    choices: Any = None


class ScriptInfo(BaseModel):
    name: str | None
    is_alwayson: bool
    is_img2img: bool
    args: list[ScriptArg]


def scripts_router(studio: Studio) -> APIRouter:
    router = APIRouter(prefix="/sdapi/v1", tags=["scripts"])

    def sets():
        for script_set in studio.plugins.scripts.values():
            script_set.ensure_laid_out()
            yield script_set

    @router.get("/scripts", response_model=ScriptsList)
    def scripts(user: User = Depends(caller)):
        listed = {s.tab: [s.title_of(script).lower() for script in s.scripts] for s in sets()}
        return ScriptsList(txt2img=listed.get("txt2img", []), img2img=listed.get("img2img", []))

    @router.get("/script-info", response_model=list[ScriptInfo])
    def script_info(user: User = Depends(caller)):
        found = []
        for script_set in sets():
            for script in script_set.scripts:
                args = [ScriptArg(label=c.label, value=plain(c.value), minimum=plain(c.minimum),
                                  maximum=plain(c.maximum), step=plain(c.step), choices=plain(c.choices))
                        for c in script_set.controls.get(id(script), [])]
                found.append(ScriptInfo(name=script_set.title_of(script).lower(), is_alwayson=script.alwayson,
                                        is_img2img=script_set.is_img2img, args=args))
        return found

    return router
