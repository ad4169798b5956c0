"""sd-webui-controlnet's ``external_code`` module, for extensions that drive ControlNet (ADetailer).

Importable as A1111 extensions import it::

    importlib.import_module("extensions.sd-webui-controlnet.scripts.external_code", "external_code")

(also under ``extensions-builtin.``): the module registers itself under those names when the
extension loads. ``ControlNetUnit`` is SD Studio's unit model (the extension's fields).
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from webui.control.hints import pixel_perfect_resolution as _pixel_perfect
from webui.control.units import (  # noqa: F401  (re-exported: the extension's names)
    ControlMode,
    ControlNetUnit,
    HiResFixOption,
    ResizeMode,
    _enum_value,
    to_unit,
)
from webui.plugins import context

API_VERSION = 3  # what GET /controlnet/version answers (the extension's get_api_version())
ALIASES = ("extensions.sd-webui-controlnet.scripts.external_code",
           "extensions-builtin.sd-webui-controlnet.scripts.external_code")
_RESIZE_ALIASES = {
    "Inner Fit (Scale to Fit)": "Crop and Resize",
    "Outer Fit (Shrink to Fit)": "Resize and Fill",
    "Scale to Fit (Inner Fit)": "Crop and Resize",
    "Envelope (Outer Fit)": "Resize and Fill",
}


def get_api_version() -> int:
    return API_VERSION


def resize_mode_from_value(value: Any) -> ResizeMode:
    return _enum_value(ResizeMode, value, _RESIZE_ALIASES)  # type: ignore[return-value]


def control_mode_from_value(value: Any) -> ControlMode:
    return _enum_value(ControlMode, value)  # type: ignore[return-value]


def pixel_perfect_resolution(image: np.ndarray, target_H: int, target_W: int, resize_mode: Any) -> int:  # noqa: N803
    """The extension's signature: ``image`` as an (H, W, C) array."""
    height, width = image.shape[:2]
    return _pixel_perfect((width, height), target_W, target_H, resize_mode_from_value(resize_mode))


def is_cn_script(script: Any) -> bool:
    try:
        return str(script.title()).lower() == "controlnet"
    except Exception:
        return False


def find_cn_script(script_runner: Any) -> Any:
    """The ControlNet script among a tab's scripts (``p.scripts``), or None."""
    if script_runner is None:
        return None
    return next((s for s in getattr(script_runner, "alwayson", getattr(script_runner, "alwayson_scripts", []))
                 if is_cn_script(s)), None)


def to_processing_unit(unit: Any) -> ControlNetUnit:
    return to_unit(unit)


def get_all_units_from(script_args: Any) -> list[ControlNetUnit]:
    """Units from the ControlNet script's own args (None entries are skipped)."""
    return [to_unit(arg) for arg in script_args or () if arg is not None]


def get_all_units(script_runner: Any, script_args: Any) -> list[ControlNetUnit]:
    script = find_cn_script(script_runner)
    if script is None:
        return []
    return get_all_units_from(list(script_args)[script.args_from:script.args_to])


def get_all_units_in_processing(p: Any) -> list[ControlNetUnit]:
    """The units of a job's ``p``."""
    return get_all_units(getattr(p, "scripts", None), getattr(p, "script_args", []) or [])


def get_single_unit_from(script_args: Any, index: int = 0) -> ControlNetUnit | None:
    present = [arg for arg in script_args or () if arg is not None]
    return to_unit(present[index]) if 0 <= index < len(present) else None


def get_max_models_num() -> int:
    studio = context.current_studio()
    try:
        return int(studio.options.get("control_net_unit_count")) if studio is not None else 3
    except (KeyError, TypeError, ValueError):
        return 3


def update_cn_script(script_runner: Any, script_args: Any, cn_units: list[Any]) -> Any:
    """``script_args`` with the ControlNet slice replaced by ``cn_units`` (padded with disabled units).

    The slice keeps its width: SD Studio's scripts keep their places in the args, so more units than
    the script has slots is a ValueError (the extension shifts every later script instead).
    """
    script = find_cn_script(script_runner)
    if script is None or len(script_args) < script.args_from:
        return script_args
    width = script.args_to - script.args_from
    units = [to_unit(u) for u in cn_units]
    if len(units) > width:
        raise ValueError(f"{len(units)} ControlNet units given; this tab has {width} (control_net_unit_count)")
    units += [ControlNetUnit(enabled=False) for _ in range(width - len(units))]
    updated = list(script_args)
    updated[script.args_from:script.args_to] = units
    return type(script_args)(updated) if isinstance(script_args, tuple) else updated


def update_cn_script_in_processing(p: Any, cn_units: list[Any], **_kwargs: Any) -> None:
    """Replace the units of a job's ``p`` (what ADetailer does before its inpaint pass)."""
    p.script_args = update_cn_script(getattr(p, "scripts", None), list(getattr(p, "script_args", []) or []), cn_units)


def update_cn_script_in_place(script_runner: Any, script_args: list[Any], cn_units: list[Any], **_kwargs: Any) -> None:
    script_args[:] = update_cn_script(script_runner, script_args, cn_units)


def get_models(update: bool = False) -> list[str]:
    """Model titles (``stem [hash]``), as ``/controlnet/model_list`` lists them."""
    studio = context.current_studio()
    controlnets = getattr(studio, "controlnets", None)
    if controlnets is None:
        return []
    if update:
        controlnets.refresh()
    return [t for t in controlnets.titles() if t != "None"]


def get_modules(alias_names: bool = False) -> list[str]:
    studio = context.current_studio()
    preprocessors = getattr(studio, "preprocessors", None)
    if preprocessors is None:
        return []
    if alias_names and hasattr(preprocessors, "labels"):
        return list(preprocessors.labels())
    return list(preprocessors.modules())


def get_modules_detail(alias_names: bool = False) -> dict[str, Any]:
    studio = context.current_studio()
    preprocessors = getattr(studio, "preprocessors", None)
    return dict(preprocessors.detail()) if preprocessors is not None else {}


for _name in ALIASES:  # where A1111 extensions import this module from
    sys.modules[_name] = sys.modules[__name__]  # a restart's fresh import replaces the old one
