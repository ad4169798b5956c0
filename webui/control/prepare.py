"""From a job's units to runnable ones: checks before queueing, preprocessing before sampling.

``check_units`` is what the script runs before a job is queued (every problem a 422 naming the
unit); ``prepare_units`` runs the preprocessors once per job and gives the loop its
:class:`~webui.control.loop.UnitRun` list plus the detected maps to show with the results.
Services are passed in (``controlnets``: webui.control.models.ControlNets, ``preprocessors``:
webui.control.preprocessors.Preprocessors), so this module needs no studio.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from PIL import Image

from webui.control import hints
from webui.control.loop import UnitRun
from webui.control.units import ControlNetUnit, ResizeMode, unit_images

INPAINT_MODULES = ("inpaint", "inpaint_only", "inpaint_global_harmonious")
MODEL_FAMILIES = {"sd15": "sd1", "sd15-inpaint": "sd1", "sd2": "sd2", "sd2-v": "sd2", "sd2-inpaint": "sd2",
                  "sdxl-base": "sdxl", "sdxl-inpaint": "sdxl", "sdxl-refiner": "sdxl-refiner"}
FAMILY_NAMES = {"sd1": "SD 1.x", "sd2": "SD 2.x", "sdxl": "SDXL", "sdxl-refiner": "SDXL refiner"}


@dataclass
class Source:
    """What a unit without its own image falls back to: the img2img init image and mask."""

    image: Image.Image | None = None
    mask: Image.Image | None = None
    resize_mode: ResizeMode = ResizeMode.RESIZE
    img2img: bool = False


def resolve_module(unit: ControlNetUnit, preprocessors: Any) -> str:
    """The module's name (a label is accepted too); ValueError when there is none by that name."""
    if unit.module.strip().lower() in ("", "none"):
        return "none"
    found = preprocessors.find(unit.module) if preprocessors is not None else None
    if found is None:
        raise ValueError(f"module {unit.module!r} not found (GET /controlnet/module_list lists them)")
    return found


def slider_defaults(preprocessors: Any, module: str, unit: ControlNetUnit) -> tuple[int, float, float]:
    """processor_res, threshold_a, threshold_b with -1 (any negative) replaced by the module's
    defaults; ValueError for a resolution the module cannot take."""
    resolve = getattr(preprocessors, "resolve", None)
    if resolve is not None and module != "none":
        _, res, a, b = resolve(module, unit.processor_res, unit.threshold_a, unit.threshold_b)
        return int(res), float(a), float(b)
    defaults = preprocessors.defaults(module) if hasattr(preprocessors, "defaults") else (512, 0.5, 0.5)
    given = (unit.processor_res, unit.threshold_a, unit.threshold_b)
    res, a, b = (d if v < 0 else v for v, d in zip(given, defaults))
    return int(res), float(a), float(b)


def check_units(units: list[ControlNetUnit], *, controlnets: Any, preprocessors: Any, source: Source,
                model_family: str | None, max_pixels: int | None = None) -> list[ControlNetUnit]:
    """The enabled units, normalised (module name, defaults); ValueError naming the unit at fault."""
    ready = []
    for number, unit in enumerate(units):
        if not unit.enabled:
            continue
        try:
            ready.append(_check_unit(unit, controlnets, preprocessors, source, model_family, max_pixels))
        except ValueError as e:
            raise ValueError(f"unit {number}: {e}") from None
    return ready


def _check_unit(unit: ControlNetUnit, controlnets: Any, preprocessors: Any, source: Source,
                model_family: str | None, max_pixels: int | None) -> ControlNetUnit:
    module = resolve_module(unit, preprocessors)
    unavailable = getattr(preprocessors, "unavailable", None)
    why = unavailable(module) if unavailable is not None and module != "none" else None
    if why:
        raise ValueError(f"module {module!r} cannot run: {why}")
    file = controlnets.find(unit.model) if controlnets is not None else None
    if file is None:
        raise ValueError(f"model {unit.model!r} not found (GET /controlnet/model_list lists them)")
    family, wanted = _family(file), MODEL_FAMILIES.get(model_family or "")
    if family and wanted and family != wanted:
        raise ValueError(f"{file.title} is a {FAMILY_NAMES.get(family, family)} ControlNet and the checkpoint is "
                         f"{FAMILY_NAMES.get(wanted, wanted)}: choose a ControlNet made for it")
    if controlnets is not None:
        controlnets.check(file)  # a kind we cannot run (T2I-Adapter, union, Control-LoRA...) is a 422 too
    images = unit_images(unit, max_pixels)
    if images is None and source.image is None:
        raise ValueError("has no image: give 'image' (base64), or use img2img, whose init image it then takes")
    res, a, b = slider_defaults(preprocessors, module, unit)
    return unit.model_copy(update={"module": module, "model": file.title, "processor_res": res,
                                   "threshold_a": a, "threshold_b": b})


def _family(file: Any) -> str | None:
    try:
        return file.family
    except Exception:  # an unreadable file: the load says why, in the job
        return None


def prepare_units(units: list[ControlNetUnit], *, controlnets: Any, preprocessors: Any, source: Source,
                  width: int, height: int, max_pixels: int | None = None) -> tuple[list[UnitRun], list[Image.Image]]:
    """Run each checked unit's preprocessor once: the loop's units and the detected maps (at
    ``width`` × ``height``, for the results) of the units that save them."""
    runs, maps = [], []
    for number, unit in enumerate(units):
        file = controlnets.find(unit.model)
        if file is None:
            raise ValueError(f"ControlNet unit {number}: model {unit.model!r} not found")
        hint, mode = _hint(unit, preprocessors, source, width, height, max_pixels)
        runs.append(UnitRun(
            number=number, file=file, hint=hint, module=unit.module, weight=unit.weight,
            guidance_start=unit.guidance_start, guidance_end=unit.guidance_end, resize_mode=mode,
            control_mode=unit.control_mode, hr_option=unit.hr_option,
            advanced_weighting=tuple(unit.advanced_weighting) if unit.advanced_weighting else None,
        ))
        if unit.save_detected_map:
            maps.append(hints.visible(hints.fit(hint, mode, width, height)))
    return runs, maps


def _hint(unit: ControlNetUnit, preprocessors: Any, source: Source, width: int, height: int,
          max_pixels: int | None) -> tuple[Image.Image, ResizeMode]:
    """The unit's detected map (before fitting) and the resize mode it is fitted with."""
    own = unit_images(unit, max_pixels)
    mode = unit.resize_mode
    if own is not None:
        image, mask = own
    else:  # the img2img init image, with img2img's resize mode (the extension's rule)
        assert source.image is not None
        image, mask, mode = source.image.convert("RGB"), source.mask, source.resize_mode
    if unit.module in INPAINT_MODULES or unit.module.startswith("inpaint"):
        return hints.with_mask(image, mask), mode
    res = unit.processor_res
    if unit.pixel_perfect:
        res = hints.pixel_perfect_resolution(image.size, width, height, mode)
    if unit.module == "none" or preprocessors is None:
        return image, mode
    detected = preprocessors.run(unit.module, image, res, unit.threshold_a, unit.threshold_b)
    return detected.convert("RGB"), mode
