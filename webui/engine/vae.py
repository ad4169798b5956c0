"""Latents ⇄ pixels with a model's VAE, and the extra input of inpainting UNets.

Decoding matches diffusers' pipelines: latents are divided by the VAE's scaling factor, the
whole batch is decoded at once, and ``VaeImageProcessor`` turns [-1, 1] into 8-bit images.
An SDXL VAE in fp16 is decoded in fp32 (it overflows otherwise), as diffusers does.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import numpy as np
import torch
from diffusers.image_processor import VaeImageProcessor
from PIL import Image

from webui.models.manager import ActiveModel

_PROCESSOR = VaeImageProcessor(vae_scale_factor=8)


def _needs_upcast(model: ActiveModel) -> bool:
    vae = model.pipe.vae
    return model.spec.is_sdxl and vae.dtype == torch.float16 and bool(getattr(vae.config, "force_upcast", False))


@contextlib.contextmanager
def _working_dtype(model: ActiveModel) -> Iterator[torch.dtype]:
    """The dtype the VAE computes in for this block (fp32 for an fp16 SDXL VAE, then back)."""
    vae = model.pipe.vae
    if not _needs_upcast(model):
        yield vae.dtype
        return
    vae.to(dtype=torch.float32)
    try:
        yield torch.float32
    finally:
        vae.to(dtype=torch.float16)


@torch.no_grad()
def decode(model: ActiveModel, latents: torch.Tensor) -> list[Image.Image]:
    """Latents (B, 4, h, w) → B images of (8h, 8w) pixels."""
    vae = model.pipe.vae
    with _working_dtype(model) as dtype:
        pixels = vae.decode((latents / vae.config.scaling_factor).to(model.device, dtype), return_dict=False)[0]
    return _PROCESSOR.postprocess(pixels, output_type="pil")


def to_tensor(images: list[Image.Image]) -> torch.Tensor:
    """8-bit RGB images (all one size) → a (B, 3, H, W) float tensor in [-1, 1]."""
    arrays = [np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0 for image in images]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2) * 2.0 - 1.0


@torch.no_grad()
def encode(model: ActiveModel, pixels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Pixels in [-1, 1] → scaled latents: the posterior's mean, or a sample from ``generator``."""
    vae = model.pipe.vae
    with _working_dtype(model) as dtype:
        posterior = vae.encode(pixels.to(model.device, dtype)).latent_dist
        latents = posterior.mode() if generator is None else posterior.sample(generator)
    return (latents * vae.config.scaling_factor).to(model.pipe.unet.dtype)


def inpaint_conditioning(model: ActiveModel, height: int, width: int, images: int,
                         generator: torch.Generator) -> torch.Tensor:
    """The 5 extra channels of an inpainting UNet for "everything masked" (txt2img, hires fix).

    As A1111's txt2img on an inpainting model: the mask is all ones and the masked image is
    blank (0 in [-1, 1]), encoded by sampling the VAE posterior with ``generator`` (the first
    image's, as diffusers' inpainting pipeline does, which keeps earlier images unchanged).
    """
    unet = model.pipe.unet
    mask = torch.ones(1, 1, height // 8, width // 8, device=model.device, dtype=unet.dtype)
    # Blank as diffusers' inpainting pipeline made it (grey × empty mask): -0.0, in the channels-last
    # layout of its image processor. Both reach the latents (the VAE's convolutions round
    # differently per layout), and images made before the engine owned its loop stay the same.
    blank = torch.full((1, height, width, 3), -0.0).permute(0, 3, 1, 2)
    latents = encode(model, blank, generator).to(model.device, unet.dtype)
    return torch.cat([mask, latents], dim=1).repeat(images, 1, 1, 1)
