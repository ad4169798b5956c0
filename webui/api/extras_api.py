"""``POST /sdapi/v1/extra-single-image`` and ``/extra-batch-images``: A1111's Extras over HTTP.

A1111's request and response bodies. As in A1111 the API does not save the results; each image
comes back as a base64 PNG carrying the source's "parameters" and the "postprocessing" keys.

Where we differ, on purpose: an unknown upscaler, a bad image or a result over the size cap is a
422 naming the field (A1111: an assertion, a 500). GFPGAN / CodeFormer visibility above 0 is
accepted and ignored with a note in ``html_info`` (no face restorer ships here; A1111 without its
model also returns the image unrestored, so an A1111 client keeps working).

The endpoints are plain ``def``: the work runs on a threadpool thread, never on the event loop,
and holds the device lock one image at a time (webui/extras.py says why).

Memory: every image's size is read from its header first (``Image.open`` without ``load()``) and
checked (limit_extras_images, limit_extras_pixels for each input and result, and
``extras.BATCH_PIXELS_FACTOR`` × limit_extras_pixels for a batch's results together) before any
image is decoded; then each is decoded, upscaled and encoded in turn, so one full image is held
at a time (the answer holds the encoded results).
"""

from __future__ import annotations

import base64
import io
import logging
from typing import Any, Literal

from fastapi import APIRouter, Depends
from fastapi.exceptions import RequestValidationError
from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, Field

from webui import extras
from webui.api.access import caller, submit_refusal
from webui.api.common import error_response, field_error
from webui.app import Studio
from webui.auth.users import User
from webui.limits import LimitExceeded
from webui.request_img2img import MAX_INPUT_SIDE, image_bytes, open_image
from webui.upscaling import UpscalerError

log = logging.getLogger(__name__)


class ExtrasBaseRequest(BaseModel):
    resize_mode: Literal[0, 1] = Field(0, description="0: upscale by upscaling_resize; 1: to upscaling_resize_w × _h")
    show_extras_results: bool = Field(True, description="Accepted for A1111 compatibility; images always come back")
    gfpgan_visibility: float = Field(0, ge=0, le=1, allow_inf_nan=False,
                                     description="Accepted and ignored: no face restorer ships (a note says so)")
    codeformer_visibility: float = Field(0, ge=0, le=1, allow_inf_nan=False,
                                         description="Accepted and ignored: no face restorer ships (a note says so)")
    codeformer_weight: float = Field(0, ge=0, le=1, allow_inf_nan=False)
    upscaling_resize: float = Field(2, gt=0, allow_inf_nan=False,
                                    description="Scale factor (resize_mode 0); below 1 shrinks. As A1111: no upper "
                                                "bound of its own, limit_extras_pixels bounds the result")
    upscaling_resize_w: int = Field(512, ge=1, description="Target width (resize_mode 1)")
    upscaling_resize_h: int = Field(512, ge=1, description="Target height (resize_mode 1)")
    upscaling_crop: bool = Field(True, description="Crop to exactly the target size (resize_mode 1)")
    upscaler_1: str = Field("None", description="Main upscaler (GET /sdapi/v1/upscalers lists them)")
    upscaler_2: str = Field("None", description="Secondary upscaler, blended over the main one")
    extras_upscaler_2_visibility: float = Field(0, ge=0, le=1, allow_inf_nan=False)
    upscale_first: bool = Field(False, description="Accepted; without face restorers the order changes nothing")


class ExtraBaseResponse(BaseModel):
    html_info: str = Field(description="The postprocessing infotext as HTML")


class ExtrasSingleImageRequest(ExtrasBaseRequest):
    image: str = Field("", description="The image, base64 (a data URL is fine)")


class ExtrasSingleImageResponse(ExtraBaseResponse):
    image: str | None = Field(None, description="The result, a base64 PNG")


class FileData(BaseModel):
    data: str = Field(description="The image, base64")
    name: str = Field(description="Its file name")


class ExtrasBatchImagesRequest(ExtrasBaseRequest):
    imageList: list[FileData] = Field(description="The images to work on")  # noqa: N815 (A1111's name)


class ExtrasBatchImagesResponse(ExtraBaseResponse):
    images: list[str] = Field(description="The results, base64 PNGs, in the order of imageList")


def extras_router(studio: Studio) -> APIRouter:
    router = APIRouter(prefix="/sdapi/v1", tags=["sdapi (A1111-compatible)"])

    def process(req: ExtrasBaseRequest, items: list[tuple[bytes, str | None, tuple[Any, ...]]],
                field: str) -> tuple[list[str], str] | Any:
        """Check every image from its header, then decode, upscale and encode them one at a time."""
        settings = extras.settings_from(req.model_dump())
        limits = extras.ExtrasLimits.from_options(studio.options)
        with_text = bool(studio.options.enable_pnginfo)
        images, text = [], ""
        try:
            resolved = settings.resolved(studio.upscalers)
            sizes = [_header_size(raw, loc) for raw, _, loc in items]  # nothing decoded yet
            extras.check(sizes, resolved, limits, field, total=limits.batch_pixels if len(items) > 1 else None)
            for raw, name, loc in items:
                made = extras.run([extras.ExtrasInput(_decoded(raw, loc), name)], resolved, studio.upscalers,
                                  limits=limits, device_lock=studio.manager.lock, field=field)
                images.append(base64.b64encode(made[0].png_bytes(with_text)).decode("ascii"))
                text = made[0].text
                del made  # the full image goes before the next one is decoded
        except RequestValidationError:
            raise
        except extras.ExtrasError as e:
            raise RequestValidationError([field_error((e.field,), e.reason)]) from None
        except LimitExceeded as e:
            return submit_refusal(e)
        except UpscalerError as e:  # a model file that cannot be used: the request named it
            return error_response(400, "UpscalerError", str(e))
        except Exception as e:  # a failure of ours: an answer, not a dropped connection
            log.exception("extras failed")
            return error_response(500, "ExtrasFailed", f"{type(e).__name__}: {e}")
        return images, extras.html_info(text, settings.notes())

    @router.post("/extra-single-image", response_model=ExtrasSingleImageResponse, responses={400: {}, 422: {}, 500: {}})
    def extra_single_image(req: ExtrasSingleImageRequest, user: User = Depends(caller)):
        """Upscale one image (A1111's Extras); the result is not saved."""
        outcome = process(req, [(_raw(req.image, ("image",)), None, ("image",))], "image")
        if not isinstance(outcome, tuple):
            return outcome
        images, html_info = outcome
        return ExtrasSingleImageResponse(html_info=html_info, image=images[0])

    @router.post("/extra-batch-images", response_model=ExtrasBatchImagesResponse, responses={400: {}, 422: {}, 500: {}})
    def extra_batch_images(req: ExtrasBatchImagesRequest, user: User = Depends(caller)):
        """Upscale several images with the same settings; results in the same order, not saved."""
        limit = extras.ExtrasLimits.from_options(studio.options).images
        if len(req.imageList) > limit:  # before reading any of them
            return submit_refusal(LimitExceeded("imageList", f"{len(req.imageList)} images; the limit "
                                                             f"(limit_extras_images) is {limit}"))
        items = [(_raw(item.data, ("imageList", i, "data")), item.name, ("imageList", i, "data"))
                 for i, item in enumerate(req.imageList)]
        outcome = process(req, items, "imageList")
        if not isinstance(outcome, tuple):
            return outcome
        images, html_info = outcome
        return ExtrasBatchImagesResponse(html_info=html_info, images=images)

    return router


def _raw(data: str, loc: tuple[Any, ...]) -> bytes:
    """The file's bytes from base64 text or a data URL (still compressed: nothing decoded)."""
    if not (data or "").strip():
        raise RequestValidationError([field_error(loc, "no image given")])
    try:
        return image_bytes(data)
    except ValueError as e:
        raise RequestValidationError([field_error(loc, str(e))]) from None


def _header_size(raw: bytes, loc: tuple[Any, ...]) -> tuple[int, int]:
    """The image's size from its header alone (``Image.open`` reads no pixels)."""
    try:
        with Image.open(io.BytesIO(raw)) as image:
            size = image.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise RequestValidationError([field_error(loc, f"not a readable image ({type(e).__name__})")]) from None
    if size[0] < 1 or size[1] < 1:
        raise RequestValidationError([field_error(loc, "the image has no pixels")])
    if max(size) > MAX_INPUT_SIDE:
        raise RequestValidationError([field_error(loc, f"the image is {size[0]}x{size[1]}; each side may be at "
                                                       f"most {MAX_INPUT_SIDE}")])
    return size


def _decoded(raw: bytes, loc: tuple[Any, ...]) -> Image.Image:
    """The image, decoded (after its size was checked)."""
    try:
        return open_image(raw)
    except ValueError as e:
        raise RequestValidationError([field_error(loc, str(e))]) from None
