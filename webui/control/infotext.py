"""ControlNet units in infotext, in the extension's format, and back.

One key per enabled unit, numbered among the enabled units::

    ControlNet 0: "Module: canny, Model: name [hash], Weight: 1.0, Resize Mode: Crop and Resize,
    Processor Res: 512, Threshold A: 100.0, Threshold B: 200.0, Guidance Start: 0.0,
    Guidance End: 1.0, Pixel Perfect: False, Control Mode: Balanced"

(one line; the whole value is JSON-quoted by the infotext writer since it holds ``,`` and ``:``).
"""

from __future__ import annotations

import re
from enum import Enum
from typing import Any, Iterable, Mapping

from webui.control.units import ControlNetUnit

# The fields the extension writes, in its order (ControlNetUnit.infotext_fields()).
INFOTEXT_FIELDS = ("module", "model", "weight", "resize_mode", "processor_res", "threshold_a", "threshold_b",
                   "guidance_start", "guidance_end", "pixel_perfect", "control_mode")
KEY_PATTERN = re.compile(r"^ControlNet (\d+)$")


def unit_key(index: int) -> str:
    return f"ControlNet {index}"


def _display(field: str) -> str:
    return " ".join(word.capitalize() for word in field.split("_"))


def _field(display: str) -> str:
    return "_".join(word.lower() for word in display.strip().split(" "))


def _value(value: Any) -> str:
    return str(value.value if isinstance(value, Enum) else value)


def serialize(unit: ControlNetUnit) -> str:
    """The unit's infotext value (without quotes). ValueError when a value holds ``,`` or ``:``,
    which the format cannot carry."""
    parts = []
    for field in INFOTEXT_FIELDS:
        text = _value(getattr(unit, field))
        if "," in text or ":" in text:
            raise ValueError(f"ControlNet {field} {text!r} cannot be written into infotext (it holds ',' or ':')")
        parts.append(f"{_display(field)}: {text}")
    return ", ".join(parts)


def write(units: Iterable[ControlNetUnit]) -> dict[str, str]:
    """``{"ControlNet 0": "...", ...}`` for the enabled units (what goes into extra_generation_params)."""
    return {unit_key(i): serialize(unit) for i, unit in enumerate(u for u in units if u.enabled)}


def _parse_value(text: str) -> Any:
    if text in ("True", "False"):
        return text == "True"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse(text: str) -> ControlNetUnit:
    """A unit (enabled) from one infotext value; ValueError for text that is not in the format."""
    values: dict[str, Any] = {}
    for item in text.split(","):
        key, sep, value = item.strip().partition(": ")
        if not sep:
            raise ValueError(f"{item.strip()!r} is not 'Key: value'")
        values[_field(key)] = _parse_value(value.strip())
    return ControlNetUnit.model_validate({"enabled": True, **values})


def parse_all(params: Mapping[str, Any]) -> dict[int, ControlNetUnit]:
    """The units in parsed infotext parameters, by their number; entries that do not parse are skipped."""
    found = {}
    for key, value in params.items():
        match = KEY_PATTERN.match(str(key))
        if match is None or not isinstance(value, str):
            continue
        try:
            found[int(match.group(1))] = parse(value)
        except ValueError:
            continue
    return found
