"""sd-webui-controlnet's preprocessor routes: ``GET /controlnet/module_list``,
``GET /controlnet/control_types`` and ``POST /controlnet/detect``.

Shapes are the extension's (v1.1.455). ``module_detail`` entries carry one key more than the
extension's, ``unavailable``, on modules that cannot run here (a missing annotator file, or a
module this version does not support); /detect answers those with a 422 and the same sentence.
The routes are plain ``def``s: detection runs on a threadpool thread, never on the event loop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Body

from webui.api.common import error_response
from webui.control.preprocessors import PreprocessorError, Preprocessors
from webui.request_img2img import decode_image, encode_png

if TYPE_CHECKING:
    from webui.app import Studio

MAX_DETECT_IMAGES = 8  # images per /detect call; each is at most limit_pixels_per_image


def model_titles(studio: Any) -> list[str]:
    """The ControlNet model titles, "None" first; empty when the model service is not there."""
    controlnets = getattr(studio, "controlnets", None)
    if controlnets is None:
        return []
    try:
        return list(controlnets.titles(include_none=True))
    except TypeError:  # a titles() without the keyword
        return list(controlnets.titles())


def detect_router(studio: Studio) -> APIRouter:
    router = APIRouter(prefix="/controlnet", tags=["controlnet"])
    preprocessors: Preprocessors = studio.preprocessors

    @router.get("/module_list")
    def module_list(alias_names: bool = False) -> dict:
        """The preprocessors (names, or UI labels with alias_names=true) and their sliders."""
        return {"module_list": preprocessors.modules(labels=alias_names),
                "module_detail": preprocessors.detail(labels=alias_names)}

    @router.get("/control_types")
    def control_types() -> dict:
        """Per Control Type: its preprocessors (labels), models, and the defaults the UI picks."""
        return {"control_types": preprocessors.control_types(model_titles(studio))}

    @router.post("/detect", responses={422: {}})
    def detect(
        controlnet_module: str = Body("none"),
        controlnet_input_images: list[str] = Body([]),
        controlnet_processor_res: float = Body(-1),
        controlnet_threshold_a: float = Body(-1),
        controlnet_threshold_b: float = Body(-1),
        controlnet_masks: list[str] = Body([]),
        low_vram: bool = Body(False),
    ):
        """Run one preprocessor on each image; ``images`` are base64 PNG maps, in order."""
        del low_vram  # networks leave the GPU after every call here anyway
        name = preprocessors.find(controlnet_module)
        if name is None:
            return error_response(422, "ModuleNotFound", f"there is no preprocessor {controlnet_module!r}: "
                                                         "GET /controlnet/module_list lists them")
        reason = preprocessors.unavailable(name)
        if reason:
            return error_response(422, "ModuleUnavailable", f"{preprocessors.label(name)}: {reason}")
        if not controlnet_input_images:
            return error_response(422, "NoImage", "controlnet_input_images is empty: send at least one base64 image")
        if len(controlnet_input_images) > MAX_DETECT_IMAGES:
            return error_response(422, "LimitExceeded", f"{len(controlnet_input_images)} images; at most "
                                                        f"{MAX_DETECT_IMAGES} per call")
        if preprocessors.needs_mask(name) and len(controlnet_masks) != len(controlnet_input_images):
            return error_response(422, "MaskRequired", f"{preprocessors.label(name)} needs one mask per image "
                                                       "in controlnet_masks")
        max_pixels = int(studio.options.get("limit_pixels_per_image"))
        images = []
        for index, data in enumerate(controlnet_input_images):
            field = f"controlnet_input_images[{index}]"
            try:
                image = decode_image(data, max_pixels)
                if index < len(controlnet_masks) and preprocessors.needs_mask(name):
                    field = f"controlnet_masks[{index}]"
                    mask = decode_image(controlnet_masks[index], max_pixels).convert("L").resize(image.size)
                    image = image.convert("RGB")
                    image.putalpha(mask)  # the inpaint modules read the mask as alpha, as the extension's
            except ValueError as e:
                return error_response(422, "InvalidImage", f"{field}: {e}")
            try:
                detected = preprocessors.run(name, image, controlnet_processor_res, controlnet_threshold_a,
                                             controlnet_threshold_b)
            except PreprocessorError as e:
                return error_response(422, "PreprocessorError", str(e))
            images.append(encode_png(detected))
        return {"info": "Success", "images": images}

    return router
