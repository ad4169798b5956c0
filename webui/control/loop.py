"""ControlNet units inside the denoising loop: one loop callback for all units of a job.

At each UNet call (``before_unet``) every unit active at this step runs its ControlNet on the
call's latents and adds its residuals, scaled, to ``down_block_additional_residuals`` /
``mid_block_additional_residual``; the units' residuals are summed. The extension's rules:

- a unit is active while the stage's step fraction (steps done / steps of its run) lies in
  [guidance_start, guidance_end];
- Balanced: ``weight`` on every block and both halves of the batch; "My prompt is more important":
  the soft scales ``weight · 0.825^(12 − i)``; "ControlNet is more important" (guess mode): the
  soft scales on the conditional rows only (also for global-pooling models such as shuffle);
  canny and mlsd units get the soft scales in the hires pass (the extension's artefact fix);
- hires fix: ``hr_option`` keeps a unit to the first pass, the hires pass, or both;
- the refiner stage runs without ControlNet (its UNet is another model family);
- an inpainting UNet's 9 input channels: the ControlNet sees only the 4 latent channels.

The control image is fitted to each stage's size once (hires stages get their own). Models are
put on the device the first time a stage calls them and go back when the stage ends.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable, ContextManager, Iterator

import torch
from PIL import Image

from webui.control.hints import fit, to_tensor
from webui.control.units import ControlMode, HiResFixOption, ResizeMode
from webui.engine.callbacks import LoopCallback, StageContext, UNetCall

# (file, unet config, device, dtype) -> context manager yielding the model on the device
UseModel = Callable[[Any, Any, torch.device, torch.dtype], ContextManager[Any]]


@dataclass(frozen=True)
class UnitRun:
    """One enabled unit, ready to run: its model file and the control image before fitting."""

    number: int  # the unit's position among the script's units (for messages)
    file: Any  # a ControlNetFile
    hint: Image.Image  # the detected map (RGB), or RGBA with the inpaint mask as alpha
    module: str = "none"
    weight: float = 1.0
    guidance_start: float = 0.0
    guidance_end: float = 1.0
    resize_mode: ResizeMode = ResizeMode.INNER_FIT
    control_mode: ControlMode = ControlMode.BALANCED
    hr_option: HiResFixOption = HiResFixOption.BOTH
    advanced_weighting: tuple[float, ...] | None = None


def soft_scales(weight: float, blocks: int) -> list[float]:
    """The extension's soft injection: ``weight · 0.825^(12 − i)`` for the down blocks then the mid
    block, taken from the start of the 13 SD 1.x scales (SDXL's 10 residuals use the first 10)."""
    return [weight * 0.825 ** float(max(0, 12 - i)) for i in range(blocks)]


def active_in_stage(unit: UnitRun, kind: str, hires_job: bool) -> bool:
    if kind == "refiner":
        return False
    if not hires_job or unit.hr_option == HiResFixOption.BOTH:
        return True
    return (kind == "hires") == (unit.hr_option == HiResFixOption.HIGH_RES_ONLY)


@dataclass
class _StageModels:
    stack: contextlib.ExitStack
    models: dict[int, Any] = field(default_factory=dict)


class ControlNetLoop(LoopCallback):
    """The loop callback of a job's ControlNet units."""

    order = -20  # before extensions' own before_unet hooks, so they see ControlNet's residuals

    def __init__(self, units: list[UnitRun], use_model: UseModel, *, hires: bool = False):
        self.units = list(units)
        self.use_model = use_model
        self.hires = hires
        self._stage: _StageModels | None = None
        self._hints: dict[tuple, torch.Tensor] = {}

    @contextlib.contextmanager
    def patch_models(self, stage: StageContext) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            outer, self._stage = self._stage, _StageModels(stack)
            try:
                yield
            finally:
                self._stage = outer

    def _model(self, unit: UnitRun, call: UNetCall) -> Any:
        holder = self._stage
        if holder is None:  # called outside patch_models (a caller driving the loop by hand)
            holder = self._stage = _StageModels(contextlib.ExitStack())
        model = holder.models.get(unit.number)
        if model is None:
            unet = call.stage.model.pipe.unet
            model = holder.stack.enter_context(
                self.use_model(unit.file, unet.config, call.sample.device, call.sample.dtype))
            holder.models[unit.number] = model
        return model

    def _hint(self, unit: UnitRun, call: UNetCall, dtype: torch.dtype) -> torch.Tensor:
        scale = int(getattr(call.stage.model.pipe, "vae_scale_factor", 8) or 8)
        height, width = call.sample.shape[-2] * scale, call.sample.shape[-1] * scale
        key = (unit.number, width, height, call.sample.device, dtype)
        hint = self._hints.get(key)
        if hint is None:
            hint = self._hints[key] = to_tensor(fit(unit.hint, unit.resize_mode, width, height),
                                                call.sample.device, dtype)
        return hint

    def before_unet(self, call: UNetCall) -> None:
        run = call.stage.run
        fraction = call.step / max(1, run.run_steps)
        down_total: list[torch.Tensor] | None = None
        mid_total: torch.Tensor | None = None
        for unit in self.units:
            if not active_in_stage(unit, call.stage.kind, self.hires):
                continue
            if fraction < unit.guidance_start or fraction > unit.guidance_end:
                continue
            down, mid = self._residuals(unit, call)
            if down_total is None:
                down_total, mid_total = down, mid
            else:
                down_total = [a + b for a, b in zip(down_total, down)]
                mid_total = mid_total + mid
        if down_total is None:
            return
        kwargs = call.unet_kwargs
        earlier = kwargs.get("down_block_additional_residuals")
        if earlier is not None:  # another callback's residuals: add ours
            down_total = [a + b for a, b in zip(earlier, down_total)]
            mid_total = kwargs["mid_block_additional_residual"] + mid_total
        kwargs["down_block_additional_residuals"] = tuple(down_total)
        kwargs["mid_block_additional_residual"] = mid_total

    def _residuals(self, unit: UnitRun, call: UNetCall) -> tuple[list[torch.Tensor], torch.Tensor]:
        model = self._model(unit, call)
        dtype = next(model.parameters()).dtype
        sample = call.sample[:, :4] if call.sample.shape[1] > 4 else call.sample  # inpainting UNets: 9 channels
        rows = sample.shape[0]
        hint = self._hint(unit, call, dtype).expand(rows, -1, -1, -1)
        added = call.added_cond_kwargs
        if added is not None:
            added = {k: v.to(dtype) for k, v in added.items()}
        down, mid = model(sample.to(dtype), call.timestep, encoder_hidden_states=call.encoder_hidden_states.to(dtype),
                          controlnet_cond=hint, conditioning_scale=1.0, added_cond_kwargs=added, return_dict=False)
        scales = self._scales(unit, call, len(down) + 1)
        out_dtype = call.sample.dtype
        down = [d.to(out_dtype) * s for d, s in zip(down, scales)]
        mid = mid.to(out_dtype) * scales[len(down)]
        if unit.control_mode == ControlMode.CONTROL or getattr(model.config, "global_pool_conditions", False):
            layout = call.layout
            if layout.uncond:  # guess mode: the unconditional rows get no control
                keep = torch.ones(rows, 1, 1, 1, device=mid.device, dtype=out_dtype)
                keep[:layout.images] = 0
                down = [d * keep for d in down]
                mid = mid * keep
        return down, mid

    def _scales(self, unit: UnitRun, call: UNetCall, blocks: int) -> list[float]:
        if unit.advanced_weighting is not None and len(unit.advanced_weighting) >= blocks:
            return list(unit.advanced_weighting[:blocks])
        soft = unit.control_mode != ControlMode.BALANCED or (
            call.stage.kind == "hires" and ("canny" in unit.module or "mlsd" in unit.module))
        return soft_scales(unit.weight, blocks) if soft else [unit.weight] * blocks
