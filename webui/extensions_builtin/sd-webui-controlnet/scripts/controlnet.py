"""ControlNet, built in: sd-webui-controlnet's script ("ControlNet", always on) on SD Studio's loop.

The script's args are N unit values (``control_net_unit_count``), each a dict in the API's shape or
a ControlNetUnit, so ``alwayson_scripts: {"controlnet": {"args": [unit, ...]}}`` works as with the
extension. Units are checked before the job is queued (a 422 naming the unit), written into the
infotext in ``process``, preprocessed once and run as one engine loop callback
(webui/control/loop.py); the detected maps are appended to the results unless
``control_net_no_detectmap`` is on. The X/Y/Z plot's ControlNet axes set ``p.control_net_*``
attributes (the extension's convention), read here per job.
"""

from __future__ import annotations

from typing import Any

from webui.control import infotext
from webui.control.loop import ControlNetLoop
from webui.control.prepare import Source, check_units, prepare_units
from webui.control.units import ControlNetUnit, ResizeMode, units_from_args
from webui.plugins import context
from webui.plugins.api import AlwaysVisible, Processed, Processing, Script

TITLE = "ControlNet"
DEFAULT_UNITS = 3
# p attributes the X/Y/Z axes set (the extension's names) → unit fields.
OVERRIDES = {"control_net_enabled": "enabled", "control_net_module": "module", "control_net_model": "model",
             "control_net_weight": "weight", "control_net_image": "image", "control_net_resize_mode": "resize_mode",
             "control_net_lowvram": "low_vram", "control_net_pres": "processor_res",
             "control_net_pthr_a": "threshold_a", "control_net_pthr_b": "threshold_b",
             "control_net_guidance_start": "guidance_start", "control_net_guidance_end": "guidance_end",
             "control_net_guidance_strength": "guidance_end", "control_net_control_mode": "control_mode",
             "control_net_pixel_perfect": "pixel_perfect"}
_UNITS, _MAPS, _SHOW_MAPS = "controlnet_units", "controlnet_detected_maps", "controlnet_show_maps"


def unit_count() -> int:
    studio = context.current_studio()
    try:
        return max(1, int(studio.options.get("control_net_unit_count"))) if studio is not None else DEFAULT_UNITS
    except (KeyError, TypeError, ValueError, AttributeError):
        return DEFAULT_UNITS


def _services() -> tuple[Any, Any]:
    studio = context.current_studio()
    return getattr(studio, "controlnets", None), getattr(studio, "preprocessors", None)


def _max_pixels() -> int | None:
    studio = context.current_studio()
    try:
        return int(studio.options.get("limit_pixels_per_image")) if studio is not None else None
    except (KeyError, TypeError, ValueError):
        return None


def _source(p: Processing) -> Source:
    if not p.init_images:
        return Source()
    mode = [ResizeMode.RESIZE, ResizeMode.INNER_FIT, ResizeMode.OUTER_FIT][min(2, max(0, int(p.resize_mode)))]
    mask = p.image_mask
    if mask is not None and p.inpainting_mask_invert:
        from PIL import ImageOps
        mask = ImageOps.invert(mask.convert("L"))
    return Source(p.init_images[0], mask, mode, img2img=True)


def _model_family(p: Processing) -> str | None:
    """The family of the checkpoint the job will start on, when it is known without loading one."""
    studio = context.current_studio()
    manager = getattr(studio, "manager", None)
    selected = getattr(manager, "selected", None)
    if selected is None:
        return None
    wanted = (p.override_settings or {}).get("sd_model_checkpoint")
    if wanted and not selected.file.matches(str(wanted)):
        return None  # another checkpoint: its load checks the ControlNet against it
    return selected.spec.family


def with_overrides(p: Any, units: list[ControlNetUnit]) -> list[ControlNetUnit]:
    """Units with the ``p.control_net_*`` values scripts (the X/Y/Z plot) set: a list sets unit by
    unit, one value every unit (``control_net_enabled``: the first only, as the extension)."""
    changed = []
    for index, unit in enumerate(units):
        updates = {}
        for attr, name in OVERRIDES.items():
            value = getattr(p, attr, None)
            if isinstance(value, (list, tuple)):
                value = value[index] if index < len(value) else None
            elif attr == "control_net_enabled" and index > 0:
                value = None
            if value is not None:
                updates[name] = value
        changed.append(ControlNetUnit.model_validate({**unit.model_dump(), **updates}) if updates else unit)
    return changed


def checked_units(p: Processing, args: tuple[Any, ...]) -> list[ControlNetUnit]:
    """The job's enabled units, resolved and checked (ValueError naming the unit at fault)."""
    controlnets, preprocessors = _services()
    units = with_overrides(p, units_from_args(args))
    if any(u.enabled for u in units) and controlnets is None:
        raise ValueError("ControlNet models are not available in this studio")
    return check_units(units, controlnets=controlnets, preprocessors=preprocessors, source=_source(p),
                       model_family=_model_family(p), max_pixels=_max_pixels())


class ControlNetScript(Script):
    def title(self) -> str:
        return TITLE

    def show(self, is_img2img: bool) -> Any:
        return AlwaysVisible

    def ui(self, is_img2img: bool) -> list[Any]:
        try:
            from webui.control.ui import build_units_ui
        except ImportError:
            build_units_ui = None
        if build_units_ui is not None:
            return list(build_units_ui(self, is_img2img))
        import gradio as gr

        return [gr.State(value=None) for _ in range(unit_count())]

    def check_args(self, p: Processing, *args: Any) -> None:
        checked_units(p, args)

    def process(self, p: Processing, *args: Any) -> None:
        units = checked_units(p, args)
        setattr(p, _UNITS, units)
        p.extra_generation_params.update(infotext.write(units))

    def loop_callbacks(self, p: Processing, *args: Any) -> list[Any]:
        units = getattr(p, _UNITS, None)
        if units is None:
            units = checked_units(p, args)
        setattr(p, _MAPS, [])
        if not units:
            return []
        studio = context.current_studio()
        controlnets, preprocessors = _services()
        runs, maps = prepare_units(units, controlnets=controlnets, preprocessors=preprocessors, source=_source(p),
                                   width=p.width, height=p.height, max_pixels=_max_pixels())
        setattr(p, _MAPS, maps)
        # Read the option now, with the job's other settings, not after sampling.
        setattr(p, _SHOW_MAPS, not bool(studio.options.get("control_net_no_detectmap")) if studio else True)
        return [ControlNetLoop(runs, controlnets.use, hires=bool(p.enable_hr) and not p.init_images)]

    def postprocess(self, p: Processing, processed: Processed, *args: Any) -> None:
        maps = getattr(p, _MAPS, None) or []
        setattr(p, _MAPS, [])
        if not maps or not getattr(p, _SHOW_MAPS, True):
            return
        if any("sd upscale" in str(k).lower() for k in p.extra_generation_params):
            return  # the extension leaves SD upscale's tiles alone
        processed.images.extend(maps)
