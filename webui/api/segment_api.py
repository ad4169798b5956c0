"""``/sdapi/v1/segment`` and ``/sdapi/v1/sam-models``: click-to-mask for img2img inpainting.

Every bad input (image, points, box, checkpoint name, a file that is no SAM) is a 422 with a
sentence; the endpoint is a plain ``def`` so the model runs on a threadpool thread.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import APIRouter
from pydantic import BaseModel, Field

from webui.api.common import error_response
from webui.request_img2img import decode_image, encode_png
from webui.segment import (
    HOW_TO_ADD,
    SegmentError,
    grow_mask,
    list_sam_checkpoints,
)

if TYPE_CHECKING:
    from webui.app import Studio


class SegmentRequest(BaseModel):
    image: str = Field(description="base64 image or data URL")
    points: list[tuple[float, float, int]] = Field(default_factory=list,
                                                   description="[x, y, label] in image pixels; 1 = object, 0 = not")
    box: tuple[float, float, float, float] | None = Field(default=None, description="[x0, y0, x1, y1] in pixels")
    checkpoint: str | None = Field(default=None, description="a name from /sam-models; the first when null")
    grow: int = Field(default=0, description="pixels to dilate (> 0) or erode (< 0) the mask, at most 64")


class SegmentResponse(BaseModel):
    mask: str = Field(description="base64 PNG, mode L, 255 = selected, the size of the image")
    checkpoint: str


def segment_router(studio: Studio) -> APIRouter:
    router = APIRouter(prefix="/sdapi/v1", tags=["segment"])
    segmenter = studio.segmenter  # shared with the UI: one SAM model in memory
    folder = studio.sam_dir

    def names() -> dict[str, Path]:
        return {p.relative_to(folder).as_posix(): p for p in list_sam_checkpoints(folder)}

    @router.get("/sam-models", response_model=list[str])
    def sam_models():
        """The Segment Anything checkpoints in models/sam."""
        return list(names())

    @router.post("/segment", response_model=SegmentResponse, responses={422: {}})
    def segment(req: SegmentRequest):
        """A mask of the object under the clicked points and/or inside the box."""
        available = names()
        if not available:
            return error_response(422, "NoCheckpoint", HOW_TO_ADD.format(folder=folder))
        name = req.checkpoint or next(iter(available))
        if name not in available:
            return error_response(422, "CheckpointNotFound",
                                  f"SAM checkpoint not found: {name!r}; available: {list(available)}")
        try:
            image = decode_image(req.image)
        except ValueError as e:
            return error_response(422, "InvalidImage", f"image: {e}")
        limit = int(studio.options.get("limit_pixels_per_image"))
        if image.width * image.height > limit:
            return error_response(422, "LimitExceeded", f"the image is {image.width}x{image.height} = "
                                  f"{image.width * image.height} pixels; the limit (limit_pixels_per_image) is {limit}")
        try:
            mask = segmenter.predict(available[name], image, req.points, req.box)
        except SegmentError as e:
            return error_response(422, "SegmentError", str(e))
        return SegmentResponse(mask=encode_png(grow_mask(mask, req.grow)), checkpoint=name)

    return router
