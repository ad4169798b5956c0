"""An A1111 img2img body → GenerationRequest: the txt2img fields, plus init images, mask and
inpaint settings in A1111's names and defaults. Bad images are a 422 naming the field."""

from __future__ import annotations

from typing import Any

from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from webui.api.common import field_error, plain, validation_errors
from webui.api.models import Img2ImgApiRequest
from webui.api.txt2img_request import build_generation_request
from webui.app import Studio
from webui.auth.users import User
from webui.request import GenerationRequest
from webui.request_img2img import (
    MASKED_CONTENT,
    Img2ImgInput,
    InpaintSettings,
    OutpaintSettings,
    decode_image,
)


def build_img2img_request(req: Img2ImgApiRequest, studio: Studio, user: User | None = None) -> GenerationRequest:
    """Raises ``RequestValidationError`` (→ 422) for missing or unreadable images and bad settings."""
    img2img, notes = _img2img_input(req, studio)
    request = build_generation_request(req, studio, user, img2img=img2img)
    request.notes.extend(notes)
    return request


def _img2img_input(req: Img2ImgApiRequest, studio: Studio) -> tuple[Img2ImgInput, list[str]]:
    errors: list[dict[str, Any]] = []
    if not req.init_images:
        raise RequestValidationError([field_error(("init_images",), "init_images: at least one image is required "
                                                                    "(base64 PNG/JPEG/WEBP or a data URL)", None)])
    limit = int(studio.options.get("limit_pixels_per_image"))  # checked before decoding
    images = [_image(data, ("init_images", i), errors, limit) for i, data in enumerate(req.init_images)]
    mask = _image(req.mask, ("mask",), errors, limit) if req.mask else None
    for name, value, top in (("resize_mode", req.resize_mode, 3), ("inpainting_fill", req.inpainting_fill, 3),
                             ("inpainting_mask_invert", req.inpainting_mask_invert, 1)):
        if value is not None and not 0 <= value <= top:
            errors.append(field_error((name,), f"{name} must be an integer from 0 to {top}, got {value}", value))
    if errors:
        raise RequestValidationError(errors)
    notes = []
    if req.image_cfg_scale is not None:
        notes.append("image_cfg_scale ignored: no instruct-pix2pix model is loaded")
    if req.latent_mask:
        notes.append("latent_mask ignored: the mask is used for the latents too")
    try:
        inpaint = None
        if mask is not None:
            blur = req.mask_blur
            inpaint = InpaintSettings(
                mask=mask,
                blur_x=blur if blur is not None else (req.mask_blur_x if req.mask_blur_x is not None else 4),
                blur_y=blur if blur is not None else (req.mask_blur_y if req.mask_blur_y is not None else 4),
                invert=bool(req.inpainting_mask_invert), masked_content=MASKED_CONTENT[req.inpainting_fill or 0],
                only_masked=req.inpaint_full_res is not False, padding=req.inpaint_full_res_padding or 0,
                round=req.mask_round is not False,
            )
        outpaint = _outpaint(req.outpaint)
        settings = Img2ImgInput(init_images=images, resize_mode=req.resize_mode or 0, inpaint=inpaint,
                                outpaint=outpaint, initial_noise_multiplier=req.initial_noise_multiplier)
    except ValidationError as e:
        raise RequestValidationError(_a1111_locations(validation_errors(e))) from None
    return settings, notes


def _outpaint(fields: dict[str, Any] | None) -> OutpaintSettings | None:
    if not fields:
        return None
    try:
        return OutpaintSettings.model_validate(fields)
    except ValidationError as e:
        raise RequestValidationError([{**error, "loc": ("body", "outpaint", *error["loc"][1:])}
                                      for error in validation_errors(e)]) from None


def _image(data: Any, loc: tuple[Any, ...], errors: list[dict[str, Any]], max_pixels: int):
    try:
        return decode_image(data, max_pixels)
    except ValueError as e:
        errors.append(field_error(loc, f"{loc[0]}: {e}", None))
        return None


# Our settings' names → A1111's body fields, so a 422 names what the client sent.
_A1111_NAMES = {"blur_x": "mask_blur_x", "blur_y": "mask_blur_y", "padding": "inpaint_full_res_padding"}


def _a1111_locations(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    renamed = []
    for error in errors:
        loc = [part for part in error["loc"] if part not in ("inpaint",)]
        loc = [_A1111_NAMES.get(part, part) if isinstance(part, str) else part for part in loc]
        renamed.append({**error, "loc": tuple(loc), "input": plain(error.get("input"))})
    return renamed
