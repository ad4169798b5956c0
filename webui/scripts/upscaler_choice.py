"""The studio's upscalers as scripts see them: the list, a choice by index or name, upscaling.

A1111 scripts reach upscalers through ``shared.sd_upscalers`` (objects with ``.name``, whose
``.scaler.upscale(image, scale, data_path)`` does the work) and pick one by its index in that
list. Both go to the studio's upscaler service (``studio.upscalers``); without a running studio
(an import in a test, a tool) the model-free ones (None, Lanczos, Nearest) still work.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from webui.plugins import context
from webui.scripts.script_args import choice

MODEL_FREE: tuple[str, ...] = ("None", "Lanczos", "Nearest")  # A1111's first three, in its order
_RESAMPLE = {"Lanczos": Image.Resampling.LANCZOS, "Nearest": Image.Resampling.NEAREST}


def _service() -> Any:
    return getattr(context.current_studio(), "upscalers", None)


def names() -> list[str]:
    """Every upscaler's name, A1111's order: None, Lanczos, Nearest, then model files."""
    service = _service()
    return list(service.names()) if service is not None else list(MODEL_FREE)


def resolve(value: Any, label: str = "Upscaler") -> str:
    """The upscaler ``value`` names: an index into :func:`names` (A1111 sends one) or a name."""
    return choice(value, names(), label)


def upscale_to(image: Image.Image, size: tuple[int, int], name: str) -> Image.Image:
    """``image`` at exactly ``size`` with upscaler ``name`` ("None": Lanczos, as the service does)."""
    service = _service()
    if service is not None:
        return service.upscale_to(image, size, name)
    if image.size == tuple(size):
        return image
    return image.resize(size, _RESAMPLE.get(name, Image.Resampling.LANCZOS))


# --- A1111's shared.sd_upscalers ---------------------------------------------------------------

@dataclass
class _Scaler:
    """``upscaler.scaler``: A1111 calls ``upscale(img, scale, data_path)`` on it."""

    name: str

    def upscale(self, img: Image.Image, scale: float, selected_model: Any = None) -> Image.Image:
        if self.name == "None":
            return img
        size = (max(1, int(img.width * scale)), max(1, int(img.height * scale)))
        return upscale_to(img, size, self.name)


@dataclass
class UpscalerData:
    """One entry of ``shared.sd_upscalers`` (A1111's ``UpscalerData``: name, data_path, scale, scaler)."""

    name: str
    data_path: str | None = None
    scale: float = 4
    model_path: str | None = None
    scaler: _Scaler = field(init=False)

    def __post_init__(self) -> None:
        self.scaler = _Scaler(self.name)


def sd_upscalers() -> list[UpscalerData]:
    """A1111's ``shared.sd_upscalers``, made fresh from the service's list."""
    return [UpscalerData(name) for name in names()]
