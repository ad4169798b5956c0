"""A model's side of a sampling stage: one batched UNet call per step, then classifier-free guidance.

The batch holds the unconditional row (when CFG is on) and one row per AND part of the prompt,
each repeated for every image: ``[uncond×n, part₁×n, part₂×n, ...]``. SDXL adds each row's
pooled embedding and size conditions; inpainting UNets get the mask and masked-image latents
as extra input channels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from webui.engine.callbacks import StageContext, UNetCall
from webui.prompts.conditioning import PromptSchedule


@dataclass(frozen=True)
class BatchLayout:
    """How the rows of one UNet batch are grouped (``images`` rows per group)."""

    images: int
    uncond: bool  # the first group is the unconditional prediction
    weights: tuple[float, ...]  # one group per AND part, with its weight
    composed: bool  # combine with the composable formula (AND parts, schedules)

    @property
    def groups(self) -> int:
        return int(self.uncond) + len(self.weights)

    @property
    def cond_rows(self) -> slice:
        """The rows of the conditional groups (all AND parts)."""
        return slice(self.images if self.uncond else 0, self.images * self.groups)


def guide(output: torch.Tensor, layout: BatchLayout, cfg_scale: float) -> torch.Tensor:
    """Combine the grouped predictions: CFG, and A1111's composable diffusion for AND."""
    if not layout.composed:
        if not layout.uncond:
            return output
        uncond, cond = output.chunk(2)
        return uncond + cfg_scale * (cond - uncond)
    groups = output.chunk(layout.groups)
    if not layout.uncond:
        total = sum(layout.weights) or 1.0
        return sum(w * g for g, w in zip(groups, layout.weights)) / total
    uncond, conds = groups[0], groups[1:]
    combined = uncond + sum(w * (c - uncond) for c, w in zip(conds, layout.weights))
    return uncond + cfg_scale * (combined - uncond)


@dataclass
class SizeConditions:
    """SDXL's micro-conditioning rows (original size, crop, target size or aesthetic score)."""

    cond: torch.Tensor  # (1, k)
    uncond: torch.Tensor  # (1, k)


def sdxl_size_conditions(height: int, width: int, *, aesthetic: tuple[float, float] | None = None) -> SizeConditions:
    """SDXL base: (h, w, 0, 0, h, w) for both halves. Refiner: (h, w, 0, 0, score), 6.0 vs 2.5."""
    if aesthetic is None:
        ids = torch.tensor([[height, width, 0, 0, height, width]], dtype=torch.float32)
        return SizeConditions(ids, ids)
    high, low = aesthetic
    return SizeConditions(torch.tensor([[height, width, 0, 0, high]], dtype=torch.float32),
                          torch.tensor([[height, width, 0, 0, low]], dtype=torch.float32))


class Denoiser:
    """One model's prediction for a stage: builds each step's UNet call and guides its output."""

    def __init__(
        self,
        unet: torch.nn.Module,
        prompts: PromptSchedule,
        cfg_scale: float,
        images: int,
        *,
        device: torch.device,
        sizes: SizeConditions | None = None,
        image_conditioning: torch.Tensor | None = None,
    ):
        self.unet = unet
        self.device = device  # where the UNet computes (its parameters may sit elsewhere when offloaded)
        self.prompts = prompts
        self.cfg_scale = cfg_scale
        self.images = images
        self.sizes = sizes
        self.image_conditioning = image_conditioning
        # diffusers' rule: no unconditional pass at CFG ≤ 1, nor for guidance-distilled UNets.
        self.uses_cfg = cfg_scale > 1 and getattr(unet.config, "time_cond_proj_dim", None) is None
        # The batched conditioning of each distinct set of rows, built on the device once: a
        # schedule switches rows a few times per job, and a copy to the GPU per step would sync.
        self._batches: dict[tuple[int, ...], tuple[torch.Tensor, dict[str, torch.Tensor] | None]] = {}

    def unet_call(self, stage: StageContext, latents: torch.Tensor, index: int) -> UNetCall:
        run = stage.run
        step = run.schedule_step(index)
        negative, parts = self.prompts.rows_at(step)
        layout = BatchLayout(self.images, self.uses_cfg, tuple(w for _, w in parts), not self.prompts.is_plain)
        rows = ([negative] if layout.uncond else []) + [row for row, _ in parts]
        embeds, added = self._conditioning(tuple(rows), layout.uncond)
        timestep = run.timesteps[index]
        sample = run.scheduler.scale_model_input(torch.cat([latents] * len(rows)), timestep)
        if self.image_conditioning is not None:
            sample = torch.cat([sample, self.image_conditioning.repeat(len(rows), 1, 1, 1)], dim=1)
        return UNetCall(stage=stage, step=step, index=index, timestep=timestep, sample=sample,
                        encoder_hidden_states=embeds, layout=layout,
                        added_cond_kwargs=dict(added) if added is not None else None)

    def _conditioning(self, rows: tuple[int, ...], uncond: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor] | None]:
        """Embeddings (and SDXL's added conditions) for these rows, each repeated per image."""
        if rows in self._batches:
            return self._batches[rows]
        device, dtype, n = self.device, self.unet.dtype, self.images
        embeds = torch.cat([self.prompts.rows.embeds[r:r + 1].expand(n, -1, -1) for r in rows]).to(device, dtype)
        added = None
        if self.sizes is not None:
            pooled = self.prompts.rows.pooled
            conds = len(rows) - int(uncond)
            ids = ([self.sizes.uncond.expand(n, -1)] if uncond else []) + [self.sizes.cond.expand(n, -1)] * conds
            added = {
                "text_embeds": torch.cat([pooled[r:r + 1].expand(n, -1) for r in rows]).to(device, dtype),
                "time_ids": torch.cat(ids).to(device, dtype),
            }
        self._batches[rows] = (embeds, added)
        return embeds, added

    def unet_output(self, call: UNetCall) -> torch.Tensor:
        """The UNet's prediction for every row of the call."""
        return self.unet(
            call.sample,
            call.timestep,
            encoder_hidden_states=call.encoder_hidden_states,
            timestep_cond=None,
            cross_attention_kwargs=None,
            added_cond_kwargs=call.added_cond_kwargs,
            return_dict=False,
            **call.unet_kwargs,
        )[0]

    def guide(self, call: UNetCall, output: torch.Tensor) -> torch.Tensor:
        """CFG (and AND's composable diffusion) over the rows of ``output``."""
        return guide(output, call.layout, self.cfg_scale)
