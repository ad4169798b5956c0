"""ControlNet's X/Y/Z plot axes, as the extension adds them: "[ControlNet] Weight", "... Model", ...

Each axis sets the extension's ``p.control_net_*`` attribute, which the ControlNet script reads
per job (one value for every enabled unit; "Enabled" for the first unit). The list notation of
the extension (``[a, b]`` per unit) is not supported.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from webui.control.units import ControlMode, ResizeMode, _enum_value
from webui.plugins import context
from webui.scripts.xyz_axes import Axis, AxisEnv, add_axes
from webui.scripts.xyz_values import AxisValueError


def _set(attr: str) -> Callable[[Any, Any, Sequence[Any]], None]:
    def apply(p: Any, value: Any, values: Sequence[Any]) -> None:
        setattr(p, attr, value)
    return apply


def _models(env: AxisEnv) -> list[str]:
    controlnets = getattr(context.current_studio(), "controlnets", None)
    return [t for t in controlnets.titles() if t != "None"] if controlnets is not None else []


def _modules(env: AxisEnv) -> list[str]:
    preprocessors = getattr(context.current_studio(), "preprocessors", None)
    return list(preprocessors.modules()) if preprocessors is not None else []


def _confirm_models(env: AxisEnv, p: Any, values: list[str]) -> None:
    controlnets = getattr(context.current_studio(), "controlnets", None)
    for i, value in enumerate(values):
        if str(value).strip().lower() == "none":
            values[i] = "None"
            continue
        found = controlnets.find(value) if controlnets is not None else None
        if found is None:
            raise AxisValueError(f"ControlNet model {value!r} not found")
        values[i] = found.title


def _confirm_modules(env: AxisEnv, p: Any, values: list[str]) -> None:
    preprocessors = getattr(context.current_studio(), "preprocessors", None)
    for i, value in enumerate(values):
        found = preprocessors.find(value) if preprocessors is not None else None
        if found is None and str(value).strip().lower() != "none":
            raise AxisValueError(f"preprocessor {value!r} not found")
        values[i] = found or "none"


def _confirm_enum(enum: type) -> Callable[[AxisEnv, Any, list[str]], None]:
    def confirm(env: AxisEnv, p: Any, values: list[str]) -> None:
        for i, value in enumerate(values):
            try:
                values[i] = _enum_value(enum, value).value
            except ValueError as e:
                raise AxisValueError(str(e)) from None
    return confirm


def _confirm_bool(env: AxisEnv, p: Any, values: list[Any]) -> None:
    for i, value in enumerate(values):
        text = str(value).strip().lower()
        if text not in ("true", "false", "1", "0"):
            raise AxisValueError(f"{value!r} is not True or False")
        values[i] = text in ("true", "1")


def _confirm_range(low: float, high: float) -> Callable[[AxisEnv, Any, list[float]], None]:
    def confirm(env: AxisEnv, p: Any, values: list[float]) -> None:
        for value in values:
            if not low <= float(value) <= high:
                raise AxisValueError(f"{value} is outside {low}-{high}")
    return confirm


AXES = (
    Axis("[ControlNet] Enabled", "str", _set("control_net_enabled"), choices=lambda env: ["False", "True"],
         confirm=_confirm_bool),
    Axis("[ControlNet] Model", "str", _set("control_net_model"), cost=0.9, choices=_models, confirm=_confirm_models),
    Axis("[ControlNet] Weight", "float", _set("control_net_weight"), confirm=_confirm_range(0.0, 2.0)),
    Axis("[ControlNet] Guidance Start", "float", _set("control_net_guidance_start"), confirm=_confirm_range(0.0, 1.0)),
    Axis("[ControlNet] Guidance End", "float", _set("control_net_guidance_end"), confirm=_confirm_range(0.0, 1.0)),
    Axis("[ControlNet] Control Mode", "str", _set("control_net_control_mode"),
         choices=lambda env: [m.value for m in ControlMode], confirm=_confirm_enum(ControlMode)),
    Axis("[ControlNet] Resize Mode", "str", _set("control_net_resize_mode"),
         choices=lambda env: [m.value for m in ResizeMode], confirm=_confirm_enum(ResizeMode)),
    Axis("[ControlNet] Preprocessor", "str", _set("control_net_module"), choices=_modules, confirm=_confirm_modules),
    Axis("[ControlNet] Pre Resolution", "int", _set("control_net_pres")),
    Axis("[ControlNet] Pre Threshold A", "float", _set("control_net_pthr_a")),
    Axis("[ControlNet] Pre Threshold B", "float", _set("control_net_pthr_b")),
)

add_axes(AXES)
