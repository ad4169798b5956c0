"""The scripts part of a GenerationRequest: A1111's ``script_name``, ``script_args``, ``alwayson_scripts``.

Script arguments are whatever a script's controls give: JSON values from the API, and from the
UI also images (PIL, or numpy arrays). The job store keeps requests as JSON, so images are
stored as tagged base64 PNG (``{"__image__": "..."}``, ``{"__array__": "...", "shape"...}``)
and come back as the same kind of object when the job runs.
"""

from __future__ import annotations

import base64
from typing import Annotated, Any

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, PlainValidator

from webui.request_img2img import decode_image, encode_png

MAX_SCRIPT_ARGS = 1024  # per script call (A1111's whole flat list is rarely above a few hundred)
MAX_ALWAYSON = 64
MAX_STORED_IMAGES = 16  # tagged images in one request's script args: each is decoded into memory
MAX_STORED_PIXELS = 4096 * 4096
_IMAGE, _ARRAY = "__image__", "__array__"


def count_stored_images(value: Any, depth: int = 0) -> int:
    """Tagged images and arrays in raw (not yet decoded) script args."""
    if depth > 32:
        raise ValueError("script args are nested too deep")
    if isinstance(value, dict):
        if _IMAGE in value or _ARRAY in value:
            return 1
        return sum(count_stored_images(v, depth + 1) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(count_stored_images(v, depth + 1) for v in value)
    return 0


def check_stored_images(value: Any) -> Any:
    """Refuse, before decoding anything, script args holding more images than a job may carry."""
    found = count_stored_images(value)
    if found > MAX_STORED_IMAGES:
        raise ValueError(f"holds {found} images; at most {MAX_STORED_IMAGES} images travel in script args")
    return value


def _encode(value: Any) -> Any:
    if isinstance(value, Image.Image):
        return {_IMAGE: encode_png(value)}
    if isinstance(value, np.ndarray):
        return {_ARRAY: base64.b64encode(np.ascontiguousarray(value).tobytes()).decode("ascii"),
                "dtype": str(value.dtype), "shape": list(value.shape)}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {_IMAGE} and isinstance(value[_IMAGE], str):
            return decode_image(value[_IMAGE], MAX_STORED_PIXELS)
        if _ARRAY in value and set(value) == {_ARRAY, "dtype", "shape"}:
            dtype = np.dtype(str(value["dtype"]))
            if dtype.kind not in "biuf":
                raise ValueError("a stored array must be numeric")
            raw = base64.b64decode(str(value[_ARRAY]))
            if len(raw) > MAX_STORED_PIXELS * 4:
                raise ValueError("a stored array is too large")
            return np.frombuffer(raw, dtype=dtype).reshape([int(n) for n in value["shape"]]).copy()
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


ScriptValue = Annotated[Any, PlainValidator(_decode), PlainSerializer(_encode)]


class AlwaysOnArgs(BaseModel):
    """``alwayson_scripts[title]``: the script's args, by position over its ``ui()`` defaults."""

    model_config = ConfigDict(extra="ignore")

    args: list[ScriptValue] = Field(default_factory=list, max_length=MAX_SCRIPT_ARGS)
