"""img2img and inpainting on the latents: where the pass starts, the init latents, the latent
mask blended at every step, and the extra input of inpainting UNets.

    init images ─encode─► init latents ─(masked content)─► noised to the start step ─► loop
                                             │                                    after_cfg: x0 = init·keep + x0·repaint
                                             └──────────────────────────────────► after_stage: the same on the result

The pixels side (resize modes, blur, crop, overlay) is webui/engine/init_image.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from webui.engine import vae
from webui.engine.callbacks import LoopCallback, StageContext, StepContext
from webui.engine.init_image import PreparedInput
from webui.engine.noise import batch_noise
from webui.models.manager import ActiveModel


def img2img_steps(steps: int, strength: float, fix_steps: bool = False) -> tuple[int, int]:
    """(schedule length, first step) of an img2img pass, as A1111's ``setup_img2img_steps``.

    By default the pass runs ``int(strength · steps) + 1`` steps at the end of a ``steps``-long
    schedule; with the "img2img_fix_steps" setting it runs ``steps`` steps of a longer schedule.
    """
    if fix_steps:
        if strength <= 0:
            return steps, steps
        total = min(1000, int(steps / min(strength, 0.999)))
        return total, total - steps
    encoded = int(min(strength, 0.999) * steps)
    return steps, max(0, steps - encoded - 1)


@dataclass
class InitLatents:
    """One batch's starting point: the encoded images and the latent mask."""

    latents: torch.Tensor  # (B, 4, h, w)
    repaint: torch.Tensor | None  # (B, 1, h, w): 1 where the sampler works, 0 where the original stays
    pixels: torch.Tensor  # the init images in [-1, 1], for an inpainting UNet's extra input
    mask: Image.Image  # the working-size mask ("L"; black when nothing is masked)

    def conditioning(self, model: ActiveModel) -> torch.Tensor:
        """An inpainting UNet's 5 extra channels, encoded by ``model``'s VAE."""
        return masked_image_conditioning(model, self.pixels, self.mask, tuple(self.latents.shape[-2:]))

    def blend(self) -> "InpaintBlend | None":
        return InpaintBlend(self.latents, self.repaint) if self.repaint is not None else None


def batch_images(prepared: PreparedInput, positions: Sequence[int]) -> list[Image.Image]:
    """The init image of each batch position (one image serves the whole batch)."""
    return [prepared.images[i % len(prepared.images)] for i in positions]


def init_latents(model: ActiveModel, prepared: PreparedInput, seeds: list[int], width: int, height: int,
                 positions: Sequence[int] | None = None) -> InitLatents:
    """Encode the init images of the batch positions (default: 0..n-1) that have these seeds
    (the posterior's mean: the same image gives the same start)."""
    images = batch_images(prepared, range(len(seeds)) if positions is None else positions)
    if len({image.size for image in images}) > 1:  # latent resize keeps each image's size: make them one
        images = [image.resize(images[0].size, Image.Resampling.LANCZOS) for image in images]
    pixels = vae.to_tensor(images)
    latents = vae.encode(model, pixels)
    shape = (height // 8, width // 8)
    if prepared.resize_latents and tuple(latents.shape[-2:]) != shape:
        latents = torch.nn.functional.interpolate(latents.float(), size=shape, mode="bilinear").to(latents.dtype)
    repaint = None
    if prepared.mask is not None:
        repaint = latent_mask(prepared.mask, shape, prepared.round_latent_mask).to(model.device, latents.dtype)
        repaint = repaint.expand(latents.shape[0], -1, -1, -1)
        if prepared.masked_content == "latent noise":
            noise = batch_noise(tuple(latents.shape[1:]), list(seeds), list(seeds), 0.0).to(model.device, latents.dtype)
            latents = latents * (1 - repaint) + noise * repaint
        elif prepared.masked_content == "latent nothing":
            latents = latents * (1 - repaint)
    # Without a mask an inpainting UNet sees nothing masked out: the image as it is.
    mask = prepared.mask if prepared.mask is not None else Image.new("L", images[0].size, 0)
    return InitLatents(latents, repaint, pixels, mask)


def latent_mask(mask: Image.Image, shape: tuple[int, int], round_: bool) -> torch.Tensor:
    """The working-size mask at latent size, (1, 1, h, w) in [0, 1] (0 or 1 when rounded)."""
    small = np.asarray(mask.convert("L").resize((shape[1], shape[0]), Image.Resampling.BICUBIC), dtype=np.float32) / 255
    if round_:
        small = np.around(small)
    return torch.from_numpy(small)[None, None]


def masked_image_conditioning(model: ActiveModel, pixels: torch.Tensor, mask: Image.Image,
                              shape: tuple[int, int]) -> torch.Tensor:
    """An inpainting UNet's 5 extra channels: the mask, and the image with the masked area blanked."""
    hard = torch.from_numpy((np.asarray(mask.convert("L").resize((pixels.shape[-1], pixels.shape[-2])),
                                        dtype=np.float32) >= 128).astype(np.float32))[None, None]
    blanked = pixels * (1.0 - hard)
    latents = vae.encode(model, blanked)
    small = torch.nn.functional.interpolate(hard, size=shape).to(model.device, latents.dtype)
    return torch.cat([small.expand(latents.shape[0], -1, -1, -1), latents], dim=1)


class InpaintBlend(LoopCallback):
    """Keeps the unmasked latents the original's: on the predicted x0 at every step and on the
    result of each stage (A1111's ``init_latent · mask + nmask · denoised``)."""

    order = -10  # before previews and extensions, so they see the blended prediction

    def __init__(self, init: torch.Tensor, repaint: torch.Tensor):
        self.init = init
        self.repaint = repaint

    def _blend(self, latents: torch.Tensor) -> torch.Tensor:
        repaint = self.repaint.to(latents.device, latents.dtype)
        return self.init.to(latents.device, latents.dtype) * (1 - repaint) + latents * repaint

    def after_cfg(self, step: StepContext) -> None:
        step.denoised = self._blend(step.denoised)

    def after_stage(self, stage: StageContext) -> None:
        stage.latents = self._blend(stage.latents)
