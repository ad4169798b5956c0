"""The denoising loop: scale → one batched UNet call → CFG → scheduler step, with callbacks.

This is the only place that steps a scheduler. Everything that changes sampling (prompt
schedules and AND through the denoiser, ControlNet residuals, inpaint blending, previews,
interrupt) happens at the callback points documented in webui/engine/callbacks.py.
"""

from __future__ import annotations

import torch

from webui.engine.callbacks import Callbacks, StageContext, StepContext, UNetOutput
from webui.engine.denoiser import Denoiser


@torch.no_grad()
def denoise(stage: StageContext, denoiser: Denoiser, callbacks: Callbacks, until_index: int | None = None) -> None:
    """Run ``stage.run`` from its current index up to ``until_index`` (default: the end).

    ``stage.latents`` holds the result; ``stage.stopped`` is set when a callback stopped early.
    The run's ``index`` advances, so another stage (the refiner) can continue where this ended.
    """
    run = stage.run
    end = run.end_index if until_index is None else min(until_index, run.end_index)
    latents = stage.latents
    scheduler = run.scheduler
    for index in range(run.index, end):
        call = denoiser.unet_call(stage, latents, index)
        callbacks.before_unet(call)
        output = UNetOutput(call, denoiser.unet_output(call))
        callbacks.after_unet(output)
        step = StepContext(stage=stage, step=call.step, index=index, timestep=call.timestep, sample=latents,
                           noise_pred=denoiser.guide(call, output.output))
        callbacks.after_cfg(step)
        step.latents = scheduler.step(step.noise_pred, call.timestep, latents, **run.step_kwargs, return_dict=False)[0]
        run.index = index + 1
        callbacks.after_step(step)
        latents = step.latents
        assert latents is not None
        if step.stop_requested:
            stage.stopped = True
            break
    stage.latents = latents
