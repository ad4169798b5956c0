"""The upscaler names A1111 offers for hires fix, and what each one does.

Latent modes resize the latents with ``torch.nn.functional.interpolate``; the others decode the
first pass, resize the pixels and encode again. Model upscalers (ESRGAN & co.) are files the studio's
``webui.upscaling.Upscalers`` finds; their names join these in the hires fix list.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Iterable, Mapping, NamedTuple


class LatentMode(NamedTuple):
    mode: str  # torch.nn.functional.interpolate mode
    antialias: bool


# A1111's ``shared.latent_upscale_modes``, in its order.
LATENT_UPSCALE_MODES: Mapping[str, LatentMode] = MappingProxyType({
    "Latent": LatentMode("bilinear", False),
    "Latent (antialiased)": LatentMode("bilinear", True),
    "Latent (bicubic)": LatentMode("bicubic", False),
    "Latent (bicubic antialiased)": LatentMode("bicubic", True),
    "Latent (nearest)": LatentMode("nearest", False),
    "Latent (nearest-exact)": LatentMode("nearest-exact", False),
})
DEFAULT_LATENT_MODE = "Latent"  # A1111's latent_upscale_default_mode

# Pixel upscalers without a model: A1111's "None" only resizes (with Lanczos) to the target.
PIXEL_UPSCALERS: tuple[str, ...] = ("None", "Lanczos", "Nearest")

HIRES_UPSCALERS: tuple[str, ...] = (*LATENT_UPSCALE_MODES, *PIXEL_UPSCALERS)


def find_upscaler(name: str) -> str | None:
    """The canonical name for ``name`` (case-insensitive), or None."""
    wanted = " ".join(str(name).split()).casefold()
    return next((known for known in HIRES_UPSCALERS if known.casefold() == wanted), None)


def is_latent(name: str) -> bool:
    return name in LATENT_UPSCALE_MODES


def hires_upscalers(model_names: Iterable[str] = ()) -> list[str]:
    """Hires fix's list, as A1111's: latent modes, None/Lanczos/Nearest, then the model upscalers."""
    return [*HIRES_UPSCALERS, *(name for name in model_names if name not in PIXEL_UPSCALERS)]
