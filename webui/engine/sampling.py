"""A sampling run: one pass over a noise schedule with a diffusers scheduler.

The run owns the scheduler, its timesteps, the per-image step-noise generators and the index of
the next step, so a second model (the refiner) can take over the same run mid-schedule. A partial
run (hires fix, img2img) starts at ``first_step`` of its ``steps``-long schedule; the plan decides
where, as A1111 does (webui/engine/plan.py).
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import torch
from diffusers import PNDMScheduler
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from webui import samplers


@dataclass
class SamplingRun:
    """The scheduler state of one pass; ``index`` is the next entry of ``timesteps`` to run."""

    scheduler: SchedulerMixin
    timesteps: torch.Tensor  # the whole schedule (second-order samplers list most steps twice)
    steps: int  # sampling steps of the whole schedule
    first_step: int  # where this run starts (0, or later for a partial run)
    generators: list[torch.Generator]
    step_kwargs: dict[str, Any] = field(default_factory=dict)
    index: int = 0  # the next entry of ``timesteps`` to run

    @property
    def first_index(self) -> int:
        return schedule_index(self.scheduler, self.first_step, len(self.timesteps))

    @property
    def run_steps(self) -> int:
        """Sampling steps this run takes (all of them, or the end of the schedule)."""
        return self.steps - self.first_step

    @property
    def end_index(self) -> int:
        return len(self.timesteps)

    def index_of_step(self, step: int) -> int:
        """Where step ``step`` of this run (0 = its first) begins in ``timesteps``."""
        return schedule_index(self.scheduler, self.first_step + step, len(self.timesteps), self.steps)

    def switch_step(self, switch_at: float, by_sampling_steps: bool = False) -> int:
        """The step of this run where a refiner takes over (``run_steps``: never), as A1111 decides.

        By default by the model's timestep: the first step whose ``(999 − t) / 1000`` reaches
        ``switch_at``; with A1111's old behaviour (``by_sampling_steps``) the first step whose share
        of the run's steps does.
        """
        if by_sampling_steps:
            return next(k for k in range(self.run_steps + 1) if not k / max(1, self.run_steps) < switch_at)
        timesteps = self.timesteps.detach().cpu()  # one copy, not one GPU sync per step
        for k in range(self.run_steps):
            if (999 - float(timesteps[self.index_of_step(k)])) / 1000 >= switch_at:
                return k
        return self.run_steps

    def steps_done(self, index: int) -> int:
        """Sampling steps of this run completed once entry ``index`` has run (for progress)."""
        length = max(1, self.end_index - self.first_index)
        return min(self.run_steps, -(-(index - self.first_index + 1) * self.run_steps // length))

    def schedule_step(self, index: int) -> int:
        """The step that prompt schedules (``[a:b:0.5]``) see at entry ``index``."""
        return 0 if index <= self.first_index else self.steps_done(index - 1)

    def initial_latents(self, noise: torch.Tensor, start: torch.Tensor | None = None) -> torch.Tensor:
        """Noise scaled for the first step, or ``start`` noised to this run's first timestep."""
        if start is None:
            return noise * self.scheduler.init_noise_sigma
        timestep = self.timesteps[self.first_index:self.first_index + 1].repeat(start.shape[0])
        return self.scheduler.add_noise(start, noise, timestep)

    # --- x0 (denoised) ⇄ model output, for callbacks that blend in pixel-aligned latents ----------

    def _noise_level(self, index: int) -> tuple[bool, torch.Tensor]:
        """(latents in sigma space?, sigma) at entry ``index``."""
        scheduler = self.scheduler
        sigma_space = float(scheduler.init_noise_sigma) > 1.0
        sigmas = getattr(scheduler, "sigmas", None)
        aligned = (isinstance(sigmas, torch.Tensor) and len(sigmas) == len(self.timesteps) + 1
                   and not hasattr(scheduler, "sigmas_interpol"))
        if aligned:
            return sigma_space, sigmas[index].float()
        return sigma_space, _sigma_of_timestep(scheduler, self.timesteps[index])

    def to_denoised(self, model_output: torch.Tensor, sample: torch.Tensor, index: int) -> torch.Tensor:
        sigma_space, sigma = self._noise_level(index)
        sigma = sigma.to(sample.device, torch.float32)
        v = self.scheduler.config.prediction_type == "v_prediction"
        x, out = sample.float(), model_output.float()
        if sigma_space:
            x0 = x / (sigma**2 + 1) - sigma / torch.sqrt(sigma**2 + 1) * out if v else x - sigma * out
        else:
            alpha = 1 / torch.sqrt(sigma**2 + 1)
            x0 = alpha * x - alpha * sigma * out if v else x / alpha - sigma * out
        return x0.to(model_output.dtype)

    def from_denoised(self, denoised: torch.Tensor, sample: torch.Tensor, index: int) -> torch.Tensor:
        sigma_space, sigma = self._noise_level(index)
        sigma = sigma.to(sample.device, torch.float32).clamp(min=1e-8)
        v = self.scheduler.config.prediction_type == "v_prediction"
        x, x0 = sample.float(), denoised.float()
        if sigma_space:
            out = (x / (sigma**2 + 1) - x0) * torch.sqrt(sigma**2 + 1) / sigma if v else (x - x0) / sigma
        else:
            alpha = 1 / torch.sqrt(sigma**2 + 1)
            out = (alpha * x - x0) / (alpha * sigma) if v else (x / alpha - x0) / sigma
        return out.to(denoised.dtype)


def _sigma_of_timestep(scheduler: SchedulerMixin, timestep: torch.Tensor) -> torch.Tensor:
    """k-diffusion's ``t_to_sigma``: the training schedule's sigma, log-interpolated at ``timestep``."""
    alphas = scheduler.alphas_cumprod.float()
    log_sigmas = (((1 - alphas) / alphas) ** 0.5).log()
    t = float(timestep)
    low = max(0, min(len(log_sigmas) - 1, math.floor(t)))
    high = min(len(log_sigmas) - 1, low + 1)
    w = t - low
    return ((1 - w) * log_sigmas[low] + w * log_sigmas[high]).exp()


def schedule_index(scheduler: SchedulerMixin, step: int, length: int, steps: int | None = None) -> int:
    """Where sampling step ``step`` of a schedule begins in the scheduler's timesteps.

    Second-order samplers (Heun, DPM2) take two entries per step; PLMS runs its first step on two
    entries of the same timestep. The end of the schedule is always the end of the list.
    """
    if steps is not None and step >= steps:
        return length
    if isinstance(scheduler, PNDMScheduler) and step > 0:
        return min(length, step + 1)
    return min(length, step * int(getattr(scheduler, "order", 1)))


def start_run(
    scheduler_config: Mapping[str, Any],
    sampler_name: str,
    schedule: str,
    steps: int,
    seeds: Sequence[int],
    *,
    device: torch.device,
    eta: float | None = None,
    first_step: int = 0,
    family: str | None = None,
) -> SamplingRun:
    """A new run of ``steps`` with the A1111 sampler ``sampler_name`` and ``schedule``.

    ``first_step`` > 0 makes it a partial run. Step noise (ancestral and SDE samplers) comes from
    one CPU generator per image seeded with the image's seed, and DPM++ SDE's Brownian tree from
    the image seeds, so an image never depends on the others in its batch. ``family`` (the model's,
    e.g. "sdxl-base") picks the Align Your Steps sigmas; without it SD 1.5's are used, as A1111 does
    for every non-SDXL model.
    """
    scheduler = samplers.make_scheduler(scheduler_config, sampler_name, schedule)
    if first_step > 0 and isinstance(scheduler, PNDMScheduler):
        # PLMS needs its warm-up on its first two entries; A1111 does not offer it for img2img.
        raise ValueError("PLMS cannot start part-way through its schedule: choose another sampler for this pass")
    if hasattr(scheduler, "noise_sampler_seed"):
        scheduler.noise_sampler_seed = [int(s) for s in seeds]
    samplers.set_timesteps(scheduler, sampler_name, schedule, steps, device=device, family=family)
    first_index = schedule_index(scheduler, first_step, len(scheduler.timesteps), steps)
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(first_index)
    generators = [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]
    return SamplingRun(
        scheduler=scheduler,
        timesteps=scheduler.timesteps,
        steps=steps,
        first_step=first_step,
        generators=generators,
        step_kwargs=_step_kwargs(scheduler, generators, eta),
        index=first_index,
    )


def _step_kwargs(scheduler: SchedulerMixin, generators: list[torch.Generator], eta: float | None) -> dict[str, Any]:
    accepted = set(inspect.signature(scheduler.step).parameters)
    kwargs: dict[str, Any] = {}
    if "eta" in accepted:
        kwargs["eta"] = 0.0 if eta is None else eta
    if "generator" in accepted:
        kwargs["generator"] = generators
    return kwargs
