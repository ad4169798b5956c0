"""Cheap live previews: latents → RGB by a fixed linear map, no VAE decode.

The factors are the published least-squares fits of each latent space's channels to RGB.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

_SD_FACTORS = torch.tensor([
    [0.3512, 0.2297, 0.3227],
    [0.3250, 0.4974, 0.2350],
    [-0.2829, 0.1762, 0.2721],
    [-0.2120, -0.2616, -0.7177],
])
_SDXL_FACTORS = torch.tensor([
    [0.3920, 0.4054, 0.4549],
    [-0.2634, -0.0196, 0.0653],
    [0.0568, 0.1687, -0.0755],
    [-0.3112, -0.2359, -0.2076],
])
_SDXL_BIAS = torch.tensor([0.1084, -0.0175, -0.0011])


def latents_to_preview(latents: torch.Tensor, *, sdxl: bool, scale: int = 8) -> Image.Image:
    """The first image of a latent batch as a small RGB picture (upscaled ``scale``× nearest)."""
    latent = latents[0, :4].detach().float().cpu()  # inpaint UNets carry extra channels
    factors = _SDXL_FACTORS if sdxl else _SD_FACTORS
    rgb = torch.einsum("chw,cr->hwr", latent, factors)
    if sdxl:
        rgb = rgb + _SDXL_BIAS
    pixels = ((rgb.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
    image = Image.fromarray(np.ascontiguousarray(pixels), "RGB")
    return image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
