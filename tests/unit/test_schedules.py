"""A1111's sigma schedules (webui/schedules.py) and how they are installed in diffusers schedulers.

Expected values are computed here, independently, from the published formulas (A1111 v1.10
``modules/sd_schedulers.py`` and k-diffusion's ``get_sigmas_*``), written loop by loop.
"""

from __future__ import annotations

import math

import diffusers
import numpy as np
import pytest
import torch
from scipy import special

from webui import schedules
from webui.schedules import ScheduleError, apply_sigmas, sigma_schedule

SD15_CONFIG = {
    "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "num_train_timesteps": 1000,
    "steps_offset": 1, "prediction_type": "epsilon", "timestep_spacing": "linspace",
}


@pytest.fixture(scope="module")
def alphas() -> torch.Tensor:
    return diffusers.EulerDiscreteScheduler.from_config(SD15_CONFIG).alphas_cumprod


@pytest.fixture(scope="module")
def train(alphas) -> list[float]:
    """The model's sigma at each training timestep, t = 0 .. 999."""
    return [math.sqrt((1 - float(a)) / float(a)) for a in alphas.double()]


def k_t_to_sigma(t: float, train: list[float]) -> float:
    """k-diffusion's DiscreteSchedule.t_to_sigma: log sigma blended between floor(t) and ceil(t)."""
    low, high = math.floor(t), math.ceil(t)
    w = t - low
    return math.exp((1 - w) * math.log(train[low]) + w * math.log(train[high]))


def linspace(a: float, b: float, n: int) -> list[float]:
    return [a] if n == 1 else [a + (b - a) * i / (n - 1) for i in range(n)]


def close(got, want, rtol: float = 1e-9) -> None:
    got = [float(x) for x in got]
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g == pytest.approx(w, rel=rtol, abs=1e-12)


def test_sd15_sigma_range(train) -> None:
    assert train[0] == pytest.approx(0.0292, abs=1e-4)  # A1111's sigma_min for SD 1.x
    assert train[-1] == pytest.approx(14.6146, abs=1e-4)  # and sigma_max


@pytest.mark.parametrize("n", [1, 10, 25])
def test_karras(alphas, train, n) -> None:
    lo, hi, rho = train[0], train[-1], 7.0
    want = [(hi ** (1 / rho) + r * (lo ** (1 / rho) - hi ** (1 / rho))) ** rho for r in linspace(0, 1, n)] + [0.0]
    close(sigma_schedule("karras", n, alphas), want)


def test_karras_matches_a1111_numbers(alphas) -> None:
    got = sigma_schedule("karras", 20, alphas)
    assert [round(float(s), 4) for s in got[:4]] == pytest.approx([14.6146, 11.7254, 9.3402, 7.3836], abs=2e-4)


@pytest.mark.parametrize("n", [10, 25])
def test_exponential_and_polyexponential(alphas, train, n) -> None:
    lo, hi = train[0], train[-1]
    want = [math.exp(v) for v in linspace(math.log(hi), math.log(lo), n)] + [0.0]
    close(sigma_schedule("exponential", n, alphas), want)
    # Polyexponential with A1111's default rho 1: ramp**1 in log sigma, i.e. the same curve.
    poly = [math.exp(math.log(lo) + r * (math.log(hi) - math.log(lo))) for r in linspace(1, 0, n)] + [0.0]
    close(sigma_schedule("polyexponential", n, alphas), poly)


@pytest.mark.parametrize("n", [1, 10, 25])
def test_kl_optimal_ends_at_sigma_min(alphas, train, n) -> None:
    lo, hi = train[0], train[-1]
    want = [math.tan(k / n * math.atan(lo) + (1 - k / n) * math.atan(hi)) for k in range(n + 1)]
    got = sigma_schedule("kl_optimal", n, alphas)
    close(got, want)
    assert float(got[-1]) == pytest.approx(lo) and float(got[0]) == pytest.approx(hi)


SD15_AYS = [14.615, 6.475, 3.861, 2.697, 1.886, 1.396, 0.963, 0.652, 0.399, 0.152, 0.029]
SDXL_AYS = [14.615, 6.315, 3.771, 2.181, 1.342, 0.862, 0.555, 0.380, 0.234, 0.113, 0.029]


def ays_resampled(table: list[float], n: int) -> list[float]:
    """Log-linear resampling of the 11 points (highest first) onto n points, by hand."""
    out = []
    for i in range(n):
        x = 0.0 if n == 1 else i / (n - 1)  # 0 = the lowest sigma, as A1111 interpolates reversed
        pos = x * (len(table) - 1)
        k = min(int(pos), len(table) - 2)
        w = pos - k
        rising = table[::-1]
        out.append(math.exp((1 - w) * math.log(rising[k]) + w * math.log(rising[k + 1])))
    return out[::-1] + [0.0]


@pytest.mark.parametrize(("family", "table"), [(None, SD15_AYS), ("sd15", SD15_AYS), ("sd2-v", SD15_AYS),
                                               ("sdxl-base", SDXL_AYS), ("sdxl-refiner", SDXL_AYS)])
def test_align_your_steps_tables(alphas, family, table) -> None:
    close(sigma_schedule("align_your_steps", 11, alphas, family), table + [0.0])  # the table itself
    for n in (10, 25):
        close(sigma_schedule("align_your_steps", n, alphas, family), ays_resampled(table, n), rtol=1e-9)


@pytest.mark.parametrize("n", [7, 20])
def test_simple(alphas, train, n) -> None:
    stride = 1000 / n
    want = [train[999 - int(x * stride)] for x in range(n)] + [0.0]
    close(sigma_schedule("simple", n, alphas), want)


@pytest.mark.parametrize(("n", "length"), [(20, 20), (30, 31), (7, 8)])
def test_ddim_schedule(alphas, train, n, length) -> None:
    stride = 1000 // n
    ts = list(range(1, 1000, stride))
    want = [train[t] for t in reversed(ts)] + [0.0]
    got = sigma_schedule("ddim", n, alphas)
    assert len(got) == length + 1  # A1111 runs 31 steps for 30 with this type
    close(got, want)


@pytest.mark.parametrize("n", [10, 25])
def test_normal_uniform_and_sgm_uniform(alphas, train, n) -> None:
    evenly = [k_t_to_sigma(t, train) for t in linspace(999, 0, n)] + [0.0]
    close(sigma_schedule("normal", n, alphas), evenly, rtol=1e-9)
    close(sigma_schedule("uniform", n, alphas), evenly, rtol=1e-9)
    sgm = [k_t_to_sigma(t, train) for t in linspace(999, 0, n + 1)[:-1]] + [0.0]
    close(sigma_schedule("sgm_uniform", n, alphas), sgm, rtol=1e-9)


@pytest.mark.parametrize("n", [1, 10, 25])
def test_beta(alphas, train, n) -> None:
    lo, hi = train[0], train[-1]
    want = [lo + float(special.betaincinv(0.6, 0.6, 1 - r)) * (hi - lo) for r in linspace(0, 1, n)] + [0.0]
    close(sigma_schedule("beta", n, alphas), want, rtol=1e-9)


def test_unknown_and_empty_schedules(alphas) -> None:
    with pytest.raises(ScheduleError, match="known: uniform"):
        sigma_schedule("laplace", 10, alphas)
    with pytest.raises(ScheduleError):
        sigma_schedule("karras", 0, alphas)
    assert set(schedules.SIGMA_SCHEDULES) >= {"karras", "kl_optimal", "align_your_steps", "ddim", "beta"}


def test_sigma_and_t_conversions_invert(train) -> None:
    sig = np.array(train)
    for t in (0.0, 0.25, 17.5, 500.0, 998.9, 999.0):
        sigma = float(schedules.t_to_sigma(t, sig))
        assert sigma == pytest.approx(k_t_to_sigma(t, train), rel=1e-12)
        assert float(schedules.sigma_to_t(sigma, sig)) == pytest.approx(t, abs=1e-9)


# --- installing lists in diffusers schedulers ------------------------------------------------------

SIGMA_CLASSES = [
    "EulerDiscreteScheduler", "EulerAncestralDiscreteScheduler", "LMSDiscreteScheduler", "HeunDiscreteScheduler",
    "KDPM2DiscreteScheduler", "KDPM2AncestralDiscreteScheduler", "DPMSolverSDEScheduler",
    "DPMSolverMultistepScheduler", "DPMSolverSinglestepScheduler", "UniPCMultistepScheduler",
]


def build(name: str):
    return getattr(diffusers, name).from_config(SD15_CONFIG)


@pytest.mark.parametrize("name", SIGMA_CLASSES)
@pytest.mark.parametrize("kind", ["karras", "align_your_steps", "ddim"])
def test_apply_sigmas_installs_the_list(name, kind) -> None:
    scheduler = build(name)
    want = sigma_schedule(kind, 9, scheduler.alphas_cumprod)
    apply_sigmas(scheduler, want, device="cpu")
    got = torch.unique_consecutive(scheduler.sigmas.double()).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-6)
    order = 2 if name in ("HeunDiscreteScheduler", "KDPM2DiscreteScheduler", "KDPM2AncestralDiscreteScheduler",
                          "DPMSolverSDEScheduler") else 1
    assert len(scheduler.timesteps) == (len(want) - 1) * order - (order - 1)
    # The switch to the exponential branch was temporary: the config tells the native truth again.
    for flag in ("use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas"):
        assert not scheduler.config.get(flag, False)
    assert "_convert_to_exponential" not in vars(scheduler)


@pytest.mark.parametrize("name", ["EulerDiscreteScheduler", "EulerAncestralDiscreteScheduler", "LMSDiscreteScheduler",
                                  "DPMSolverMultistepScheduler"])
def test_first_order_timesteps_are_the_sigmas_timesteps(name, train) -> None:
    scheduler = build(name)
    want = sigma_schedule("kl_optimal", 6, scheduler.alphas_cumprod)
    apply_sigmas(scheduler, want)
    log = [math.log(s) for s in train]
    for sigma, t in zip(want[:-1], scheduler.timesteps):
        # invert k_t_to_sigma by hand: find the bracketing training sigmas
        ls = math.log(float(sigma))
        k = max(i for i in range(999) if log[i] <= ls)
        expected = k + (ls - log[k]) / (log[k + 1] - log[k])
        tolerance = 0.5 if scheduler.timesteps.dtype == torch.int64 else 1e-3  # DPM-Solver: rounded
        assert float(t) == pytest.approx(expected, abs=tolerance)
    assert float(scheduler.sigmas[-1]) == pytest.approx(train[0], rel=1e-6)  # KL Optimal's end


@pytest.mark.parametrize("name", list(schedules.ZERO_END_ONLY))
def test_schedulers_that_cannot_stop_above_zero_refuse_kl_optimal(name) -> None:
    scheduler = build(name)
    with pytest.raises(ScheduleError, match="only end a schedule at sigma 0"):
        apply_sigmas(scheduler, sigma_schedule("kl_optimal", 8, scheduler.alphas_cumprod))


@pytest.mark.parametrize("name", ["DDIMScheduler", "PNDMScheduler", "LCMScheduler"])
def test_timestep_schedulers_take_no_sigma_list(name) -> None:
    scheduler = getattr(diffusers, name).from_config(SD15_CONFIG)
    with pytest.raises(ScheduleError, match="cannot run a custom sigma schedule"):
        apply_sigmas(scheduler, sigma_schedule("karras", 8, scheduler.alphas_cumprod))


def test_bad_lists_are_refused() -> None:
    scheduler = build("EulerDiscreteScheduler")
    for bad in ([1.0], [1.0, 2.0, 0.0], [3.0, float("nan"), 0.0], [2.0, 2.0, 0.0]):
        with pytest.raises(ScheduleError):
            apply_sigmas(scheduler, bad)
