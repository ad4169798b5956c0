"""A1111's sigma schedules, computed here and handed to diffusers schedulers.

A1111 (v1.10, ``modules/sd_schedulers.py``) builds every k-diffusion sampler's noise levels from a
*schedule type*: a list of ``steps + 1`` sigmas, falling from the model's largest training sigma
to (usually) zero. :func:`sigma_schedule` computes those lists from the same definitions, written
anew from the published formulas:

* ``karras`` (rho 7), ``exponential``, ``polyexponential`` (rho 1): the k-diffusion schedules
  between ``sigma_min`` and ``sigma_max``, the model's sigmas at t=0 and t=999, then 0.
* ``uniform`` / ``normal``: timesteps evenly spaced from 999 to 0 (``normal`` from the timesteps of
  sigma_max and sigma_min, the same thing), each sigma log-linearly interpolated, then 0.
* ``sgm_uniform``: the same with ``steps + 1`` timesteps, the last (t=0) replaced by 0.
* ``simple``: every ``1000/steps``-th training sigma from the top; ``ddim``: the training sigmas at
  t = 1, 1 + 1000//steps, ... (so 30 steps give 31 sigmas, as in A1111), reversed.
* ``kl_optimal``: tangent-space interpolation between arctan(sigma_max) and arctan(sigma_min); it
  ends at sigma_min, not 0.
* ``align_your_steps``: NVIDIA's 11 published sigmas for SD 1.5 or SDXL (A1111 picks SDXL's for
  SDXL models, SD 1.5's for everything else), log-linearly resampled to the step count, then 0.
* ``beta``: the Beta(0.6, 0.6) quantiles (A1111's default alpha and beta), scaled from sigma_max to
  sigma_min, then 0.

:func:`apply_sigmas` installs such a list in a diffusers scheduler: ``EulerDiscreteScheduler``
takes ``set_timesteps(sigmas=...)``; ``EulerAncestralDiscreteScheduler`` (first-order, no sigma
options) gets its ``sigmas``/``timesteps`` replaced after a plain ``set_timesteps``; the others
(LMS, Heun, KDPM2, KDPM2 a, DPM-Solver SDE / multistep / single-step, UniPC) run their own
``set_timesteps`` through their exponential-sigmas branch with the conversion returning our list,
so that diffusers lays out second-order entries and timesteps itself (whole-number timesteps,
which diffusers truncates there, are rounded instead). The result is always checked: a scheduler
whose sigmas are not the requested ones raises.

Imports torch and diffusers only when a schedule is applied.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "AYS_SD15",
    "AYS_SDXL",
    "SIGMA_SCHEDULES",
    "ZERO_END_ONLY",
    "ScheduleError",
    "apply_sigmas",
    "sigma_schedule",
    "sigma_to_t",
    "t_to_sigma",
    "training_sigmas",
]

# Align Your Steps, 10-step schedules (11 sigmas) published by NVIDIA for SD 1.5 and SDXL.
AYS_SD15 = (14.615, 6.475, 3.861, 2.697, 1.886, 1.396, 0.963, 0.652, 0.399, 0.152, 0.029)
AYS_SDXL = (14.615, 6.315, 3.771, 2.181, 1.342, 0.862, 0.555, 0.380, 0.234, 0.113, 0.029)

BETA_ALPHA = BETA_BETA = 0.6  # A1111's defaults for beta_dist_alpha / beta_dist_beta
KARRAS_RHO = 7.0
POLYEXPONENTIAL_RHO = 1.0


class ScheduleError(ValueError):
    """A schedule that cannot be computed, or that a scheduler did not take."""


def training_sigmas(alphas_cumprod: Any) -> np.ndarray:
    """The model's sigma at every training timestep (ascending: t=0 first), in float64."""
    ac = np.asarray(alphas_cumprod.detach().cpu() if hasattr(alphas_cumprod, "detach") else alphas_cumprod,
                    dtype=np.float64)
    return np.sqrt((1.0 - ac) / ac)


def t_to_sigma(t: Any, sigmas: np.ndarray) -> np.ndarray:
    """k-diffusion's continuous ``t_to_sigma``: log sigma interpolated linearly between timesteps."""
    return np.exp(np.interp(np.asarray(t, dtype=np.float64), np.arange(len(sigmas)), np.log(sigmas)))


def sigma_to_t(sigma: Any, sigmas: np.ndarray) -> np.ndarray:
    """The inverse: the (fractional) timestep whose log-interpolated sigma is ``sigma``."""
    log_sigma = np.log(np.maximum(np.asarray(sigma, dtype=np.float64), 1e-10))
    return np.interp(log_sigma, np.log(sigmas), np.arange(len(sigmas), dtype=np.float64))


def _zero(values: Any) -> np.ndarray:
    return np.append(np.asarray(values, dtype=np.float64), 0.0)


def _karras(n: int, lo: float, hi: float, rho: float = KARRAS_RHO) -> np.ndarray:
    ramp = np.linspace(0.0, 1.0, n)
    return _zero((hi ** (1 / rho) + ramp * (lo ** (1 / rho) - hi ** (1 / rho))) ** rho)


def _exponential(n: int, lo: float, hi: float) -> np.ndarray:
    return _zero(np.exp(np.linspace(math.log(hi), math.log(lo), n)))


def _polyexponential(n: int, lo: float, hi: float, rho: float = POLYEXPONENTIAL_RHO) -> np.ndarray:
    ramp = np.linspace(1.0, 0.0, n) ** rho
    return _zero(np.exp(math.log(lo) + ramp * (math.log(hi) - math.log(lo))))


def _kl_optimal(n: int, lo: float, hi: float) -> np.ndarray:
    share = np.arange(n + 1, dtype=np.float64) / n
    return np.tan(share * math.atan(lo) + (1.0 - share) * math.atan(hi))  # ends at sigma_min


def _align_your_steps(n: int, family: str | None) -> np.ndarray:
    table = np.array(AYS_SDXL if (family or "").startswith("sdxl") else AYS_SD15, dtype=np.float64)
    if n == len(table):
        return _zero(table)
    rising = np.log(table[::-1])
    resampled = np.interp(np.linspace(0.0, 1.0, n), np.linspace(0.0, 1.0, len(table)), rising)
    return _zero(np.exp(resampled)[::-1])


def _beta(n: int, lo: float, hi: float) -> np.ndarray:
    from scipy import stats

    quantiles = stats.beta.ppf(1.0 - np.linspace(0.0, 1.0, n), BETA_ALPHA, BETA_BETA)
    return _zero(lo + quantiles * (hi - lo))


def _evenly_in_t(n: int, sigmas: np.ndarray, *, sgm: bool) -> np.ndarray:
    start, end = sigma_to_t(sigmas[-1], sigmas), sigma_to_t(sigmas[0], sigmas)
    ts = np.linspace(start, end, n + 1)[:-1] if sgm else np.linspace(start, end, n)
    return _zero(t_to_sigma(ts, sigmas))


def _simple(n: int, sigmas: np.ndarray) -> np.ndarray:
    stride = len(sigmas) / n
    return _zero([sigmas[len(sigmas) - 1 - int(x * stride)] for x in range(n)])


def _ddim(n: int, sigmas: np.ndarray) -> np.ndarray:
    stride = max(len(sigmas) // n, 1)
    return _zero(sigmas[1::stride][::-1])


SIGMA_SCHEDULES: tuple[str, ...] = (
    "uniform", "karras", "exponential", "polyexponential", "sgm_uniform", "kl_optimal",
    "align_your_steps", "simple", "normal", "ddim", "beta",
)


def sigma_schedule(name: str, steps: int, alphas_cumprod: Any, family: str | None = None) -> np.ndarray:
    """A1111's sigmas (float64, ``steps + 1`` of them except for ``ddim``) for schedule ``name``.

    ``alphas_cumprod`` is the model's training schedule (a diffusers scheduler's attribute);
    ``family`` (e.g. "sd15", "sdxl-base") only matters for ``align_your_steps``.
    """
    if steps < 1:
        raise ScheduleError(f"a schedule needs at least one step, not {steps}")
    sigmas = training_sigmas(alphas_cumprod)
    lo, hi = float(sigmas[0]), float(sigmas[-1])
    if name == "karras":
        return _karras(steps, lo, hi)
    if name == "exponential":
        return _exponential(steps, lo, hi)
    if name == "polyexponential":
        return _polyexponential(steps, lo, hi)
    if name == "kl_optimal":
        return _kl_optimal(steps, lo, hi)
    if name == "align_your_steps":
        return _align_your_steps(steps, family)
    if name == "beta":
        return _beta(steps, lo, hi)
    if name in ("uniform", "normal", "sgm_uniform"):
        return _evenly_in_t(steps, sigmas, sgm=name == "sgm_uniform")
    if name == "simple":
        return _simple(steps, sigmas)
    if name == "ddim":
        return _ddim(steps, sigmas)
    raise ScheduleError(f"no sigma schedule {name!r}; known: {', '.join(SIGMA_SCHEDULES)}")


# --- installing a schedule in a diffusers scheduler ------------------------------------------------

_FLAGS = ("use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas")
_OTHER_MODES = ("use_lu_lambdas", "use_flow_sigmas", "use_dynamic_shifting")
# Classes whose last step cannot end above sigma 0 (KL Optimal ends at sigma_min): KDPM2's
# interpolated midpoints end at 0, and DPM-Solver SDE would stop at the midpoint of its last step.
ZERO_END_ONLY = ("KDPM2DiscreteScheduler", "KDPM2AncestralDiscreteScheduler", "DPMSolverSDEScheduler")


def apply_sigmas(scheduler: Any, sigmas: Sequence[float], *, device: torch.device | str | None = None) -> None:
    """Make ``scheduler`` run through ``sigmas`` (``steps + 1`` values, as :func:`sigma_schedule`).

    Replaces ``scheduler.set_timesteps(steps, device=device)``. Raises :class:`ScheduleError` when
    the scheduler class cannot take a custom list, or did not end up with exactly these sigmas.
    """
    import diffusers
    import torch

    wanted = np.asarray(sigmas, dtype=np.float64)
    if wanted.ndim != 1 or len(wanted) < 2 or not np.all(np.isfinite(wanted)) or np.any(np.diff(wanted) >= 0):
        raise ScheduleError("a sigma schedule must fall strictly, with at least two finite values")
    steps, final = len(wanted) - 1, float(wanted[-1])
    name = type(scheduler).__name__
    if isinstance(scheduler, diffusers.EulerDiscreteScheduler):
        scheduler.set_timesteps(device=device, sigmas=wanted.tolist())
    elif isinstance(scheduler, diffusers.EulerAncestralDiscreteScheduler):
        scheduler.set_timesteps(steps, device=device)  # resets the step state; entries replaced below
        if len(scheduler.sigmas) != steps + 1 or len(scheduler.timesteps) != steps:
            raise ScheduleError(f"{name}: unexpected layout after set_timesteps")  # pragma: no cover
        timesteps = sigma_to_t(wanted[:-1], training_sigmas(scheduler.alphas_cumprod))
        scheduler.sigmas = torch.from_numpy(wanted.astype(np.float32))
        scheduler.timesteps = torch.from_numpy(timesteps.astype(np.float32)).to(device=device)
    elif hasattr(scheduler, "_convert_to_exponential") and "use_exponential_sigmas" in scheduler.config:
        if any(scheduler.config.get(flag) for flag in _OTHER_MODES):
            raise ScheduleError(f"{name}: custom sigmas do not combine with {', '.join(_OTHER_MODES)}")
        _through_exponential_branch(scheduler, wanted[:-1], steps, device)
        if not scheduler.timesteps.is_floating_point() and len(scheduler.timesteps) == steps:
            # DPM-Solver and UniPC keep whole timesteps, truncated there (999 would become 998);
            # round instead: the nearest to the continuous t that A1111 gives the model.
            whole = np.round(sigma_to_t(wanted[:-1], training_sigmas(scheduler.alphas_cumprod)))
            scheduler.timesteps = torch.from_numpy(whole.astype(np.int64)).to(scheduler.timesteps.device)
        if final != 0.0:
            if name in ZERO_END_ONLY or float(scheduler.sigmas[-2]) == 0.0:
                raise ScheduleError(f"{name} can only end a schedule at sigma 0, not at {final:g}")
            scheduler.sigmas[-1] = final
    else:
        raise ScheduleError(f"{name} cannot run a custom sigma schedule")
    got = torch.unique_consecutive(scheduler.sigmas.detach().cpu().double()).numpy()
    if len(got) != len(wanted) or not np.allclose(got, wanted, rtol=1e-6, atol=1e-7):
        raise ScheduleError(f"{name} did not take the requested sigmas")


def _through_exponential_branch(scheduler: Any, body: np.ndarray, steps: int, device: Any) -> None:
    """``set_timesteps`` with the exponential-sigmas branch on and its conversion returning ``body``."""
    saved = {flag: scheduler.config[flag] for flag in _FLAGS if flag in scheduler.config}

    def convert(in_sigmas: Any, num_inference_steps: int | None = None, **_: Any) -> np.ndarray:
        return body.copy()

    scheduler._convert_to_exponential = convert  # instance attribute, removed below
    scheduler.register_to_config(**{flag: flag == "use_exponential_sigmas" for flag in saved})
    try:
        scheduler.set_timesteps(steps, device=device)
    finally:
        del scheduler._convert_to_exponential
        scheduler.register_to_config(**saved)
