"""Hires fix's enlargement: the first pass's result made the size of the second pass.

Latent upscalers resize the latents (A1111's interpolation modes); the others decode the first
pass, resize the pixels (Lanczos / Nearest / a model file such as ESRGAN, tiled; "None" resizes with
Lanczos, as A1111's does) and encode again. Either way the latents are then cropped to
``hr_resize_x × hr_resize_y`` when both were given, as A1111 crops them.
"""

from __future__ import annotations

import torch
from PIL import Image

from webui import upscalers
from webui.engine import vae
from webui.engine.plan import PassPlan
from webui.models.manager import ActiveModel
from webui.request import LATENT_SCALE
from webui.upscaling import Upscalers


def enlarge_latents(latents: torch.Tensor, plan: PassPlan) -> torch.Tensor:
    """A latent upscaler: interpolate to the upscale size, then crop."""
    mode = upscalers.LATENT_UPSCALE_MODES[plan.upscaler]
    width, height = plan.upscale_to
    resized = torch.nn.functional.interpolate(
        latents, size=(height // LATENT_SCALE, width // LATENT_SCALE), mode=mode.mode, antialias=mode.antialias,
    )
    return crop(resized, plan.crop)


def enlarge_images(model: ActiveModel, images: list[Image.Image], plan: PassPlan,
                   upscalers: Upscalers | None = None, tiling: tuple[int, int] | None = None) -> torch.Tensor:
    """A pixel upscaler: resize each decoded image, encode with ``model``'s VAE, then crop.

    ``upscalers`` runs model upscalers, with ``tiling`` = (tile, overlap) from the job's options.
    """
    size = plan.upscale_to
    resized = [resize_pixels(image, size, plan.upscaler or "None", upscalers, tiling) for image in images]
    return crop(vae.encode(model, vae.to_tensor(resized)), plan.crop)


def resize_pixels(image: Image.Image, size: tuple[int, int], upscaler: str, upscalers: Upscalers | None = None,
                  tiling: tuple[int, int] | None = None) -> Image.Image:
    """A1111's ``resize_image`` (mode "Just resize"): the upscaler enlarges, then Lanczos fits exactly."""
    width, height = size
    scale = max(width / image.width, height / image.height)
    if scale > 1.0 and upscaler in ("Lanczos", "Nearest"):
        method = Image.Resampling.LANCZOS if upscaler == "Lanczos" else Image.Resampling.NEAREST
        image = image.resize((int(image.width * scale), int(image.height * scale)), resample=method)
    elif scale > 1.0 and upscaler != "None":
        tile, overlap = tiling if tiling is not None else (None, None)
        image = (upscalers or Upscalers()).upscale(image, scale, upscaler, tile=tile, overlap=overlap)
    if image.size != (width, height):
        image = image.resize((width, height), resample=Image.Resampling.LANCZOS)
    return image


def crop(latents: torch.Tensor, cells: tuple[int, int]) -> torch.Tensor:
    """Cut ``cells`` (x, y) latent cells off, half on each side (the odd one at the end)."""
    cut_x, cut_y = cells
    if not cut_x and not cut_y:
        return latents
    height, width = latents.shape[-2:]
    return latents[..., cut_y // 2:height - (cut_y + 1) // 2, cut_x // 2:width - (cut_x + 1) // 2]

