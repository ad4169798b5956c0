"""A ControlNet unit as sd-webui-controlnet's API sends it: field names, aliases, defaults, modes.

The request format is the extension's (v1.1.455): ``alwayson_scripts: {"controlnet": {"args":
[unit, ...]}}`` where a unit is a dict of the fields below. The old aliases (``input_image``,
``mask_image``, ``lowvram``, ``guidance``) are accepted; ``enabled`` defaults to false as in the
current extension. Images are base64 text (with or without a ``data:`` prefix), PIL images or
numpy arrays (from the UI), or ``{"image": ..., "mask": ...}`` / ``[image, mask]``. A string that
is not base64 is never read as a file: the extension reads server-side paths, which is a hole.
"""

from __future__ import annotations

import base64
import binascii
import re
from enum import Enum
from typing import Any

import numpy as np
from PIL import Image
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from webui.request_img2img import decode_image


class ResizeMode(str, Enum):
    RESIZE = "Just Resize"
    INNER_FIT = "Crop and Resize"
    OUTER_FIT = "Resize and Fill"


class ControlMode(str, Enum):
    BALANCED = "Balanced"
    PROMPT = "My prompt is more important"
    CONTROL = "ControlNet is more important"


class HiResFixOption(str, Enum):
    BOTH = "Both"
    LOW_RES_ONLY = "Low res only"
    HIGH_RES_ONLY = "High res only"


# The extension's older names for the resize modes.
_RESIZE_ALIASES = {
    "Inner Fit (Scale to Fit)": "Crop and Resize",
    "Outer Fit (Shrink to Fit)": "Resize and Fill",
    "Scale to Fit (Inner Fit)": "Crop and Resize",
    "Envelope (Outer Fit)": "Resize and Fill",
}
# Deprecated field names the extension still accepts.
_ALIASES = {"input_image": "image", "mask_image": "mask", "lowvram": "low_vram", "guidance": "guidance_end"}

PATH_REFUSED = "server-side file paths are not read: send the image as base64"
_PATHLIKE = re.compile(r"^(?:[A-Za-z]:[\\/]|\\\\|~|\.{1,2}[\\/]|/)|\.(?:png|jpe?g|webp|bmp|gif|tiff?)$", re.I)


def _enum_value(enum: type[Enum], value: Any, aliases: dict[str, str] | None = None) -> Enum:
    """An enum member from its member, its text (case-insensitive) or its index (0, 1, 2)."""
    if isinstance(value, enum):
        return value
    members = list(enum)
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not one of {', '.join(m.value for m in members)}")
    if isinstance(value, (int, float)) and float(value).is_integer():
        index = int(value)
        if enum is ResizeMode and index == 3:  # A1111's "Just Resize (latent upscale)"
            return ResizeMode.RESIZE
        if 0 <= index < len(members):
            return members[index]
    if isinstance(value, str):
        text = (aliases or {}).get(value.strip(), value.strip())
        if text.isdigit():
            return _enum_value(enum, int(text))
        for member in members:
            if member.value.casefold() == text.casefold() or member.name.casefold() == text.casefold():
                return member
    raise ValueError(f"{value!r} is not one of {', '.join(repr(m.value) for m in members)} (or 0-{len(members) - 1})")


class ControlNetUnit(BaseModel):
    """One ControlNet unit (the extension's ``ControlNetUnit`` fields and defaults)."""

    model_config = ConfigDict(extra="ignore", arbitrary_types_allowed=True, validate_assignment=True)

    enabled: bool = False
    module: str = "none"
    model: str = "None"
    weight: float = Field(1.0, ge=0.0, le=2.0)
    image: Any = None
    mask: Any = None
    resize_mode: ResizeMode = ResizeMode.INNER_FIT
    low_vram: bool = False
    processor_res: int = -1
    threshold_a: float = -1
    threshold_b: float = -1
    guidance_start: float = Field(0.0, ge=0.0, le=1.0)
    guidance_end: float = Field(1.0, ge=0.0, le=1.0)
    pixel_perfect: bool = False
    control_mode: ControlMode = ControlMode.BALANCED
    inpaint_crop_input_image: bool = True
    hr_option: HiResFixOption = HiResFixOption.BOTH
    save_detected_map: bool = True
    advanced_weighting: list[float] | None = None

    @model_validator(mode="before")
    @classmethod
    def _aliases(cls, values: Any) -> Any:
        if not isinstance(values, dict):
            return values
        values = dict(values)
        for alias, name in _ALIASES.items():
            if alias in values:
                if name in values and values[name] is not None and values[alias] is not None:
                    raise ValueError(f"give either {alias!r} or {name!r}, not both")
                given = values.pop(alias)
                if values.get(name) is None:
                    values[name] = given
        return values

    @field_validator("resize_mode", mode="before")
    @classmethod
    def _resize_mode(cls, value: Any) -> ResizeMode:
        return _enum_value(ResizeMode, value, _RESIZE_ALIASES)

    @field_validator("control_mode", mode="before")
    @classmethod
    def _control_mode(cls, value: Any) -> ControlMode:
        return _enum_value(ControlMode, value)

    @field_validator("hr_option", mode="before")
    @classmethod
    def _hr_option(cls, value: Any) -> HiResFixOption:
        return _enum_value(HiResFixOption, value)

    @field_validator("module", "model", mode="before")
    @classmethod
    def _text(cls, value: Any) -> str:
        return "None" if value is None else str(value)

    @field_validator("image", "mask", mode="before")
    @classmethod
    def _no_paths(cls, value: Any) -> Any:
        _refuse_paths(value)
        return value

    @model_validator(mode="after")
    def _guidance(self) -> ControlNetUnit:
        if self.guidance_start > self.guidance_end:
            raise ValueError(f"guidance_start ({self.guidance_start}) is after guidance_end ({self.guidance_end})")
        return self

    @property
    def is_inpaint(self) -> bool:
        return "inpaint" in self.module


def _refuse_paths(value: Any, depth: int = 0) -> None:
    """A string that is neither base64 nor a data URL but looks like a file path is refused."""
    if depth > 4:
        return
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("data:") or _is_base64(text):
            return
        if _PATHLIKE.search(text) or "/" in text or "\\" in text:
            raise ValueError(PATH_REFUSED)
    elif isinstance(value, dict):
        for v in value.values():
            _refuse_paths(v, depth + 1)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _refuse_paths(v, depth + 1)


def _is_base64(text: str) -> bool:
    compact = "".join(text.split())
    if not compact or len(compact) % 4:
        return False
    try:
        base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


# --- from script args ---------------------------------------------------------------------------

UNIT_FIELDS = tuple(ControlNetUnit.model_fields)


def to_unit(value: Any) -> ControlNetUnit:
    """A unit from a script arg: a dict in the API's shape, a ControlNetUnit (ours or a lookalike
    with the same attributes), or None (a disabled unit). ValueError with a sentence otherwise."""
    if value is None:
        return ControlNetUnit()
    if isinstance(value, ControlNetUnit):
        return value
    if not isinstance(value, dict):
        attrs = getattr(value, "__dict__", None)
        if not isinstance(attrs, dict) or not {"enabled", "module", "model"} <= set(attrs):
            raise ValueError(f"a unit must be an object of unit fields, not {type(value).__name__}")
        value = {k: v for k, v in attrs.items() if k in UNIT_FIELDS}
        value = {k: (v.value if isinstance(v, Enum) else v) for k, v in value.items()}
    try:
        return ControlNetUnit.model_validate(value)
    except ValidationError as e:
        raise ValueError(_sentence(e)) from None


def _sentence(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        where = ".".join(str(x) for x in item.get("loc", ()))
        message = str(item.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def units_from_args(args: Any) -> list[ControlNetUnit]:
    """Every unit of the script's args, in order (ValueError naming the unit at fault)."""
    units = []
    for index, value in enumerate(args or ()):
        try:
            units.append(to_unit(value))
        except ValueError as e:
            raise ValueError(f"unit {index}: {e}") from None
    return units


# --- images -------------------------------------------------------------------------------------

def _as_image(value: Any, max_pixels: int | None) -> Image.Image:
    if isinstance(value, np.ndarray):
        array = value
        if array.dtype != np.uint8:
            array = np.clip(array, 0, 255).astype(np.uint8)
        if array.ndim == 3 and array.shape[2] == 1:
            array = array[:, :, 0]
        image = Image.fromarray(array)
        return decode_image(image, max_pixels)
    if isinstance(value, str):
        _refuse_paths(value)
    return decode_image(value, max_pixels)


def unit_images(unit: ControlNetUnit, max_pixels: int | None = None) -> tuple[Image.Image, Image.Image | None] | None:
    """The unit's image (RGB) and mask (L, white = masked) or None when it has no image.

    ValueError with a sentence for an image that cannot be read (or a path).
    """
    image, mask = unit.image, unit.mask
    if isinstance(image, (list, tuple)):
        if not image:
            return None
        if isinstance(image[0], dict):
            image = image[0]
        elif len(image) == 2:
            image, mask = image[0], image[1]
        else:
            raise ValueError("image must be one image, {'image', 'mask'} or [image, mask]")
    if isinstance(image, dict):
        image, mask = image.get("image", image.get("background")), image.get("mask", mask)
    if image is None:
        return None
    picture = _as_image(image, max_pixels)
    alpha = None
    if picture.mode in ("RGBA", "LA"):
        alpha = picture.getchannel("A")
    picture = picture.convert("RGB")
    mask_image = None
    if mask is not None:
        mask_image = _as_image(mask, max_pixels)
        if mask_image.mode in ("RGBA", "LA") and mask_image.getchannel("A").getextrema() != (255, 255):
            mask_image = mask_image.getchannel("A")  # a painted layer: its alpha is the mask
        mask_image = mask_image.convert("L")
        if mask_image.size != picture.size:
            raise ValueError(f"the mask is {mask_image.width}x{mask_image.height}, the image "
                             f"{picture.width}x{picture.height}: they must be the same size")
    elif alpha is not None and unit.is_inpaint and alpha.getextrema() != (255, 255):
        mask_image = alpha.point(lambda v: 255 if v < 128 else 0)  # transparent = to inpaint
    return picture, mask_image
