"""``POST /api/v1/checkpoints/merge``: the Checkpoint Merger over REST (A1111 has no such route).

For admins only: a merge writes gigabytes into the shared models folder. The route is a plain
``def``, so the merge runs on a threadpool thread, never on the event loop; merges run one at a
time (a second one meanwhile is a 409).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from webui.api.access import admin_only, caller
from webui.api.common import error_response
from webui.app import Studio
from webui.auth.users import User
from webui.models.merge import MergeError, MergeRecipe, merge_checkpoints, merged_title

_ERRORS = {409: "Conflict", 422: "Invalid", 500: "Failed", 507: "NotSaved"}


class MergeResult(BaseModel):
    title: str  # the new checkpoint as /sdapi/v1/sd-models lists it ("name.safetensors [hash]")
    name: str
    message: str


def merge_router(studio: Studio) -> APIRouter:
    router = APIRouter(tags=["checkpoints"])

    @router.post("/api/v1/checkpoints/merge", response_model=MergeResult)
    def merge(recipe: MergeRecipe, user: User = Depends(caller)):
        """Merge checkpoints as A1111's Checkpoint Merger tab does; the result is listed at once."""
        if refused := admin_only(user, "merge checkpoints"):
            return refused
        try:
            path = merge_checkpoints(recipe, studio.catalog)
            title = merged_title(studio.catalog, path)
        except MergeError as e:
            return error_response(e.code, _ERRORS.get(e.code, "Error"), str(e))
        return MergeResult(title=title, name=path.name, message=f"Checkpoint saved as {path.name}")

    return router
