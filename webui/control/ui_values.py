"""What the ControlNet accordion (webui/control/ui.py) computes, without Gradio.

A unit's controls become one dict in the API's unit shape (what the ControlNet Script takes, one
per unit); a unit's infotext (``ControlNet 0: "Module: canny, Model: ..."``) becomes the values
to put back into its controls; a preprocessor's ``module_detail`` entry becomes the resolution
and threshold sliders' settings. Names and formats are sd-webui-controlnet's (v1.1.455).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from webui.control import infotext
from webui.control.units import ControlMode, ControlNetUnit, HiResFixOption, ResizeMode

RESIZE_MODES: tuple[str, ...] = tuple(m.value for m in ResizeMode)  # Just Resize, Crop and Resize, Resize and Fill
CONTROL_MODES: tuple[str, ...] = tuple(m.value for m in ControlMode)
HR_OPTIONS: tuple[str, ...] = tuple(m.value for m in HiResFixOption)
DEFAULT_UNIT_COUNT = 3
MAX_UNIT_COUNT = 10  # the extension's setting stops at 10 as well
NO_MODEL = "None"
NO_MODULE = "none"
ALL_TYPES = "All"


def unit_prefix(index: int) -> str:
    """The infotext key of unit ``index`` (``ControlNet 0``)."""
    return infotext.unit_key(index)


@dataclass(frozen=True)
class Slider:
    """One of a preprocessor's sliders as the accordion shows it."""

    label: str
    value: float
    minimum: float
    maximum: float
    step: float
    visible: bool = True


HIDDEN = Slider("", -1, -1, 1, 1, visible=False)
DEFAULT_RESOLUTION = Slider("Preprocessor Resolution", 512, 64, 2048, 8)


def sliders(detail: Mapping[str, Any] | None) -> tuple[Slider, Slider, Slider]:
    """(resolution, threshold A, threshold B) for one ``module_detail`` entry.

    The extension lists only the sliders a module shows; the resolution one is named
    "... Resolution" (it may be absent), the others are A then B in order.
    """
    found = [s for s in (detail or {}).get("sliders", []) if isinstance(s, Mapping)]
    resolution = next((s for s in found if "resolution" in str(s.get("name", "")).lower()), None)
    rest = [s for s in found if s is not resolution]

    def slider(spec: Mapping[str, Any] | None) -> Slider:
        if spec is None:
            return HIDDEN
        value = float(spec.get("value", 0) or 0)
        low = float(spec.get("min", min(value, 0)))
        high = float(spec.get("max", max(value, 1)))
        return Slider(str(spec.get("name", "")), value, low, high, float(spec.get("step", 1) or 1))

    return (slider(resolution), *(slider(rest[i] if i < len(rest) else None) for i in (0, 1)))  # type: ignore[return-value]


def unit_value(*, enabled: bool, image: Any, mask: Any, module: str, model: str, weight: float, resize_mode: str,
               processor_res: float, threshold_a: float, threshold_b: float, guidance_start: float,
               guidance_end: float, pixel_perfect: bool, control_mode: str, low_vram: bool, hr_option: str,
               detail: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One unit in the API's shape. Sliders the module does not show go as -1 (its default)."""
    resolution, slider_a, slider_b = sliders(detail)
    return {
        "enabled": bool(enabled),
        "image": {"image": image, "mask": mask} if image is not None else None,
        "module": module or NO_MODULE,
        "model": model or NO_MODEL,
        "weight": float(weight),
        "resize_mode": resize_mode if resize_mode in RESIZE_MODES else RESIZE_MODES[1],
        "processor_res": int(processor_res) if resolution.visible and processor_res is not None else -1,
        "threshold_a": float(threshold_a) if slider_a.visible and threshold_a is not None else -1,
        "threshold_b": float(threshold_b) if slider_b.visible and threshold_b is not None else -1,
        "guidance_start": float(guidance_start),
        "guidance_end": float(guidance_end),
        "pixel_perfect": bool(pixel_perfect),
        "control_mode": control_mode if control_mode in CONTROL_MODES else CONTROL_MODES[0],
        "low_vram": bool(low_vram),
        "hr_option": hr_option if hr_option in HR_OPTIONS else HR_OPTIONS[0],
    }


def default_unit() -> dict[str, Any]:
    """What an untouched unit sends: off (the extension's default since v1.1.447)."""
    return unit_value(enabled=False, image=None, mask=None, module=NO_MODULE, model=NO_MODEL, weight=1.0,
                      resize_mode=RESIZE_MODES[1], processor_res=-1, threshold_a=-1, threshold_b=-1,
                      guidance_start=0.0, guidance_end=1.0, pixel_perfect=False, control_mode=CONTROL_MODES[0],
                      low_vram=False, hr_option=HR_OPTIONS[0])


# --- infotext back into the controls ---------------------------------------------------------------

def pasted_units(params: Mapping[str, Any], count: int) -> dict[int, ControlNetUnit | str]:
    """Per unit index: the unit its ``ControlNet N`` text describes, or the sentence why that text
    could not be read. Units the text does not name are absent (a paste turns them off)."""
    found: dict[int, ControlNetUnit | str] = {}
    for index in range(count):
        text = params.get(unit_prefix(index))
        if text is None:
            continue
        try:
            found[index] = infotext.parse(str(text))
        except ValueError as e:
            found[index] = f"{unit_prefix(index)} could not be read ({e})"
    return found


# --- sizes ---------------------------------------------------------------------------------------------

def nearest_eight(value: float) -> int:
    """The multiple of 8 nearest to ``value`` (what "send dimensions" puts in Width / Height)."""
    return max(8, int(round(value / 8.0)) * 8)

