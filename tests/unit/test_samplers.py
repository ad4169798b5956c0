"""A1111 sampler / schedule names -> diffusers schedulers."""

from __future__ import annotations

import inspect
import math

import diffusers
import pytest
import torch

from webui import samplers as S
from webui.engine.sampling import start_run
from webui.samplers import (
    SAMPLERS,
    SCHEDULE_TYPES,
    UnknownSampler,
    UnknownSchedule,
    UnsupportedSchedule,
    api_sampler_list,
    api_scheduler_list,
    infotext_schedule_label,
    make_scheduler,
    resolve,
)

SD15_CONFIG = {
    "_class_name": "PNDMScheduler",
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "steps_offset": 1,
    "skip_prk_steps": True,
    "set_alpha_to_one": False,
    "clip_sample": False,
    "prediction_type": "epsilon",
    "timestep_spacing": "leading",
}

A1111_SIGMA_MAX = 14.6146  # SD1.x sigma at t=999; A1111's first sigma for k-diffusion samplers
A1111_KARRAS_20 = [14.6146, 11.7254, 9.3402, 7.3836]  # get_sigmas_karras(20, 0.0292, 14.6146)[:4]

COMBOS = [(spec.name, schedule) for spec in SAMPLERS for schedule in spec.allowed_schedules]  # native pairs
ALL_PAIRS = [(spec.name, schedule) for spec in SAMPLERS for schedule in S.schedules_for(spec.name)]


@pytest.mark.parametrize(("sampler", "schedule"), COMBOS)
def test_every_native_combination_builds(sampler: str, schedule: str) -> None:
    spec = S.find_sampler(sampler)
    assert spec is not None
    scheduler = make_scheduler(SD15_CONFIG, sampler, schedule)
    assert type(scheduler).__name__ == spec.scheduler_class
    scheduler.set_timesteps(20)
    assert len(scheduler.timesteps) >= 20
    assert scheduler.config.prediction_type == "epsilon"
    assert scheduler.config.beta_schedule == "scaled_linear"
    assert scheduler.config.beta_start == pytest.approx(0.00085)
    for key, value in spec.kwargs.items():
        if schedule != "SGM Uniform" or key != "timestep_spacing":
            assert scheduler.config[key] == value, key
    sigmas = getattr(scheduler, "sigmas", None)
    if sigmas is not None and spec.scheduler_class != "LCMScheduler":
        assert float(sigmas[0]) == pytest.approx(A1111_SIGMA_MAX, abs=1e-3)


def test_table_matches_diffusers_signatures() -> None:
    """Every native schedule needs constructor arguments its class really has; sigma lists and
    "same as" types are kept apart from the native ones."""
    for spec in SAMPLERS:
        cls = getattr(diffusers, spec.scheduler_class)
        params = set(inspect.signature(cls.__init__).parameters)
        assert set(spec.kwargs) <= params, spec.name
        assert spec.default_schedule in spec.schedules, spec.name
        for label in spec.schedules:
            sch = S.find_schedule(label)
            assert sch is not None
            assert set(sch.required_params) <= params, (spec.name, label)
        assert not set(spec.custom) & set(spec.schedules), spec.name
        assert all(S.find_schedule(label) is not None for label in (*spec.custom, *spec.same_as)), spec.name
        assert all(native in spec.schedules for native in spec.same_as.values()), spec.name
        if spec.custom:  # sigma lists need a scheduler that works in sigmas
            assert spec.scheduler_class not in ("DDIMScheduler", "PNDMScheduler", "LCMScheduler"), spec.name


def test_native_gaps_are_filled_by_sigma_lists() -> None:
    """Euler a has no sigma options and DPM-Solver single-step no timestep spacing: the A1111 pairs
    those would need run as sigma lists instead."""
    euler_a = set(inspect.signature(diffusers.EulerAncestralDiscreteScheduler.__init__).parameters)
    assert "use_karras_sigmas" not in euler_a
    assert {"Karras", "Exponential", "Beta"} <= set(S.find_sampler("Euler a").custom)
    singlestep = set(inspect.signature(diffusers.DPMSolverSinglestepScheduler.__init__).parameters)
    assert "timestep_spacing" not in singlestep
    assert "SGM Uniform" in S.find_sampler("DPM++ 2S a").custom


def test_euler_karras_and_uniform_start_at_a1111_sigma() -> None:
    karras = make_scheduler(SD15_CONFIG, "Euler", "Karras")
    karras.set_timesteps(20)
    assert [round(float(s), 4) for s in karras.sigmas[:4]] == pytest.approx(A1111_KARRAS_20, abs=2e-4)
    uniform = make_scheduler(SD15_CONFIG, "Euler", "Uniform")
    uniform.set_timesteps(20)
    assert float(uniform.sigmas[0]) == pytest.approx(A1111_SIGMA_MAX, abs=1e-3)
    assert float(uniform.sigmas[-1]) == 0.0
    # What the shipped "leading" spacing would have given instead (too low a starting sigma):
    for karras_flag in (False, True):
        leading = diffusers.EulerDiscreteScheduler.from_config(SD15_CONFIG, use_karras_sigmas=karras_flag)
        leading.set_timesteps(20)
        assert float(leading.sigmas[0]) < 12.0


def test_ddim_plms_use_a1111_timesteps() -> None:
    expected = list(range(951, 0, -50))  # A1111: range(0, 1000, 1000 // 20) + 1, reversed
    ddim = make_scheduler(SD15_CONFIG, "DDIM", None)
    ddim.set_timesteps(20)
    assert [int(t) for t in ddim.timesteps] == expected
    config_without_offset = {**SD15_CONFIG, "steps_offset": 0}
    plms = make_scheduler(config_without_offset, "PLMS", "Automatic")
    plms.set_timesteps(20)
    assert int(plms.timesteps[0]) == 951


@pytest.mark.parametrize(
    ("name", "schedule", "want_name", "want_schedule"),
    [
        ("Euler a", None, "Euler a", "Uniform"),
        ("euler A", None, "Euler a", "Uniform"),
        ("k_euler_ancestral", "", "Euler a", "Uniform"),
        ("DPM++ 2M", None, "DPM++ 2M", "Karras"),
        ("DPM++ 2M", "Automatic", "DPM++ 2M", "Karras"),
        ("DPM++ 2M", "automatic", "DPM++ 2M", "Karras"),
        ("DPM++ 2M", "uniform", "DPM++ 2M", "Uniform"),
        ("DPM++ 2M Karras", None, "DPM++ 2M", "Karras"),
        ("dpm++ 2m karras", "Automatic", "DPM++ 2M", "Karras"),
        ("DPM++ 2M Karras", "Exponential", "DPM++ 2M", "Exponential"),
        ("DPM++ 2M SDE", None, "DPM++ 2M SDE", "Exponential"),
        ("DPM++ 2M SDE Karras", None, "DPM++ 2M SDE", "Karras"),
        ("DPM++ 2M SDE Heun", None, "DPM++ 2M SDE Heun", "Exponential"),
        ("DPM++ 3M SDE", None, "DPM++ 3M SDE", "Exponential"),
        ("DPM++ SDE Karras", None, "DPM++ SDE", "Karras"),
        ("DPM2 a Karras", None, "DPM2 a", "Karras"),
        ("k_dpmpp_2m_ka", None, "DPM++ 2M", "Karras"),
        ("k_lms_ka", None, "LMS", "Karras"),
        ("Euler", "sgm_uniform", "Euler", "SGM Uniform"),
        ("Euler", "SGMUniform", "Euler", "SGM Uniform"),
        ("Euler SGM Uniform", None, "Euler", "SGM Uniform"),
        ("Euler", "beta", "Euler", "Beta"),
        ("UniPC", None, "UniPC", "Uniform"),
        ("LCM", None, "LCM", "Uniform"),
        ("  DDIM  ", None, "DDIM", "Uniform"),
        ("Euler a", "Karras", "Euler a", "Karras"),
        ("Euler a Karras", None, "Euler a", "Karras"),
        ("euler a", "beta", "Euler a", "Beta"),
        ("DPM++ 2S a", "sgm_uniform", "DPM++ 2S a", "SGM Uniform"),
        ("Euler", "polyexponential", "Euler", "Polyexponential"),
        ("Euler", "KL Optimal", "Euler", "KL Optimal"),
        ("DPM++ 2M", "align_your_steps", "DPM++ 2M", "Align Your Steps"),
        ("DPM++ 2M Align Your Steps", None, "DPM++ 2M", "Align Your Steps"),
        ("Heun", "simple", "Heun", "Simple"),
        ("LMS", "NORMAL", "LMS", "Normal"),
        ("DPM2 a", "ddim", "DPM2 a", "DDIM"),
        ("DDIM", "ddim", "DDIM", "DDIM"),
        ("PLMS", "DDIM", "PLMS", "DDIM"),
        ("UniPC", "kl_optimal", "UniPC", "KL Optimal"),
    ],
)
def test_resolve(name: str, schedule: str | None, want_name: str, want_schedule: str) -> None:
    spec, label = resolve(name, schedule)
    assert (spec.name, label) == (want_name, want_schedule)


def test_automatic_defaults_match_a1111() -> None:
    defaults = {spec.name: spec.default_schedule for spec in SAMPLERS}
    assert defaults == {
        "DPM++ 2M": "Karras",
        "DPM++ SDE": "Karras",
        "DPM++ 2M SDE": "Exponential",
        "DPM++ 2M SDE Heun": "Exponential",
        "DPM++ 2S a": "Karras",
        "DPM++ 3M SDE": "Exponential",
        "Euler a": "Uniform",
        "Euler": "Uniform",
        "LMS": "Uniform",
        "Heun": "Uniform",
        "DPM2": "Karras",
        "DPM2 a": "Karras",
        "DDIM": "Uniform",
        "PLMS": "Uniform",
        "UniPC": "Uniform",
        "LCM": "Uniform",
    }
    auto = make_scheduler(SD15_CONFIG, "DPM++ 2M", "Automatic")
    assert auto.config.use_karras_sigmas is True
    auto = make_scheduler(SD15_CONFIG, "DPM++ 2M SDE", None)
    assert auto.config.use_exponential_sigmas is True
    assert auto.config.algorithm_type == "sde-dpmsolver++"


def test_unknown_sampler_message_lists_names() -> None:
    with pytest.raises(UnknownSampler) as err:
        resolve("Euler b", None)
    message = str(err.value)
    assert "Euler b" in message
    for spec in SAMPLERS:
        assert spec.name in message
    with pytest.raises(ValueError):
        make_scheduler(SD15_CONFIG, "", None)
    with pytest.raises(UnknownSampler):
        resolve("DPM fast", None)  # A1111 has it, diffusers has no counterpart


def test_unknown_schedule_message_lists_types() -> None:
    with pytest.raises(UnknownSchedule) as err:
        resolve("Euler", "Laplace")
    for label in SCHEDULE_TYPES:
        assert label in str(err.value)


@pytest.mark.parametrize(
    ("sampler", "schedule"),
    [
        ("DDIM", "Karras"),
        ("DDIM Karras", None),
        ("PLMS", "Exponential"),
        ("DDIM", "align_your_steps"),
        ("PLMS", "Normal"),
        ("LCM", "Karras"),
        ("LCM", "SGM Uniform"),
        ("LCM", "DDIM"),
        ("DPM2", "KL Optimal"),
        ("DPM2 a", "kl_optimal"),
        ("DPM++ SDE", "KL Optimal"),
    ],
)
def test_disallowed_combinations_raise(sampler: str, schedule: str | None) -> None:
    with pytest.raises(UnsupportedSchedule) as err:
        make_scheduler(SD15_CONFIG, sampler, schedule)
    spec = S.split_combined_name(sampler)[0]  # type: ignore[index]
    assert f"allowed: {', '.join(S.schedules_for(spec.name))}" in str(err.value)
    assert isinstance(err.value, ValueError)
    with pytest.raises(UnsupportedSchedule):
        start_run(SD15_CONFIG, sampler, schedule or "Automatic", 8, [1], device=torch.device("cpu"))


def test_every_pair_outside_schedules_for_is_refused() -> None:
    for spec in SAMPLERS:
        offered = S.schedules_for(spec.name)
        for label in SCHEDULE_TYPES:
            if label in offered:
                assert resolve(spec.name, label)[1] in offered
                continue
            with pytest.raises(UnsupportedSchedule) as err:
                resolve(spec.name, label)
            assert all(valid in str(err.value) for valid in offered), (spec.name, label)


@pytest.mark.parametrize("sampler", [spec.name for spec in SAMPLERS])
def test_v_prediction_preserved(sampler: str) -> None:
    config = {**SD15_CONFIG, "prediction_type": "v_prediction", "rescale_betas_zero_snr": False}
    scheduler = make_scheduler(config, sampler, None)
    assert scheduler.config.prediction_type == "v_prediction"


def test_base_config_sigma_flags_do_not_leak() -> None:
    config = {**SD15_CONFIG, "_class_name": "DPMSolverMultistepScheduler", "use_karras_sigmas": True}
    scheduler = make_scheduler(config, "DPM++ 2M", "Uniform")
    assert scheduler.config.use_karras_sigmas is False
    scheduler.set_timesteps(20)
    karras = make_scheduler(config, "DPM++ 2M", "Karras")
    karras.set_timesteps(20)
    assert not torch.allclose(scheduler.sigmas, karras.sigmas)


def test_sdxl_config() -> None:
    sdxl = {
        "_class_name": "EulerDiscreteScheduler", "beta_start": 0.00085, "beta_end": 0.012,
        "beta_schedule": "scaled_linear", "num_train_timesteps": 1000, "steps_offset": 1,
        "timestep_spacing": "leading", "interpolation_type": "linear", "prediction_type": "epsilon",
        "use_karras_sigmas": False,
    }
    scheduler = make_scheduler(sdxl, "DPM++ 2M Karras", None)
    scheduler.set_timesteps(25)
    assert float(scheduler.sigmas[0]) == pytest.approx(A1111_SIGMA_MAX, abs=1e-3)


def test_infotext_schedule_label() -> None:
    assert infotext_schedule_label("Euler a", "karras") == "Karras"
    assert infotext_schedule_label("Euler", "align_your_steps") == "Align Your Steps"
    assert infotext_schedule_label("DPM++ 2M KL Optimal", None) == "KL Optimal"
    assert infotext_schedule_label("DDIM", "ddim") == "DDIM"
    assert infotext_schedule_label("Euler a", "Automatic") == "Automatic"
    assert infotext_schedule_label("Euler", "Uniform") == "Uniform"
    assert infotext_schedule_label("DPM++ 2M", "Automatic") == "Karras"
    assert infotext_schedule_label("DPM++ 2M Karras", None) == "Karras"
    assert infotext_schedule_label("DPM++ 2M SDE", None) == "Exponential"


def test_api_sampler_list() -> None:
    items = api_sampler_list()
    assert [i["name"] for i in items] == [s.name for s in SAMPLERS]
    assert items[0] == {"name": "DPM++ 2M", "aliases": ["k_dpmpp_2m"], "options": {"scheduler": "karras"}}
    by_name = {i["name"]: i for i in items}
    assert by_name["Euler a"]["aliases"] == ["k_euler_a", "k_euler_ancestral"]
    assert by_name["Euler"]["options"] == {}
    for item in items:
        assert set(item) == {"name", "aliases", "options"}
        assert all(isinstance(v, str) for v in item["options"].values())  # type: ignore[union-attr]


def test_api_scheduler_list() -> None:
    items = api_scheduler_list()
    assert [i["name"] for i in items] == [
        "automatic", "uniform", "karras", "exponential", "polyexponential", "sgm_uniform", "kl_optimal",
        "align_your_steps", "simple", "normal", "ddim", "beta",
    ]
    assert [i["label"] for i in items] == list(SCHEDULE_TYPES) == [
        "Automatic", "Uniform", "Karras", "Exponential", "Polyexponential", "SGM Uniform", "KL Optimal",
        "Align Your Steps", "Simple", "Normal", "DDIM", "Beta",
    ]
    assert next(i for i in items if i["name"] == "polyexponential")["default_rho"] == 1.0
    by_name = {i["name"]: i for i in items}
    assert by_name["karras"] == {
        "name": "karras", "label": "Karras", "aliases": None, "default_rho": 7.0, "need_inner_model": False,
    }
    assert by_name["sgm_uniform"]["aliases"] == ["SGMUniform"]
    assert by_name["uniform"]["need_inner_model"] is True
    for item in items:  # Euler a takes every type, by name and by label
        assert resolve("Euler a", str(item["name"]))[0].name == "Euler a"
        assert resolve("Euler a", str(item["label"]))[0].name == "Euler a"


def test_module_import_is_light() -> None:
    import subprocess
    import sys

    code = "import sys, webui.samplers, webui.infotext; print('diffusers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- schedule types per sampler, sigma lists -------------------------------------------------------

EVERY_TYPE = list(SCHEDULE_TYPES)
NO_KL = [label for label in SCHEDULE_TYPES if label != "KL Optimal"]


def test_schedules_for() -> None:
    expected = {
        "DPM++ 2M": EVERY_TYPE, "DPM++ SDE": NO_KL, "DPM++ 2M SDE": EVERY_TYPE, "DPM++ 2M SDE Heun": EVERY_TYPE,
        "DPM++ 2S a": EVERY_TYPE, "DPM++ 3M SDE": EVERY_TYPE, "Euler a": EVERY_TYPE, "Euler": EVERY_TYPE,
        "LMS": EVERY_TYPE, "Heun": EVERY_TYPE, "DPM2": NO_KL, "DPM2 a": NO_KL,
        "DDIM": ["Automatic", "Uniform", "SGM Uniform", "DDIM"], "PLMS": ["Automatic", "Uniform", "SGM Uniform", "DDIM"],
        "UniPC": EVERY_TYPE, "LCM": ["Automatic", "Uniform"],
    }
    assert {spec.name: S.schedules_for(spec.name) for spec in SAMPLERS} == expected
    assert S.schedules_for("k_euler_a") == EVERY_TYPE  # aliases and combined names work too
    assert S.schedules_for("dpm2 karras") == NO_KL
    assert S.schedules_for("DPM fast") == []


def test_native_pairs_keep_their_path() -> None:
    """Pairs that ran before sigma lists existed still go through plain ``set_timesteps``."""
    scheduler = make_scheduler(SD15_CONFIG, "Euler", None)  # only its training schedule is read
    for sampler, schedule in COMBOS:
        assert S.custom_sigmas(scheduler, sampler, schedule, 12) is None, (sampler, schedule)
    for sampler, schedule in ALL_PAIRS:
        if (sampler, schedule) not in COMBOS and not (schedule == "DDIM" and sampler in ("DDIM", "PLMS")):
            assert S.custom_sigmas(scheduler, sampler, schedule, 12) is not None, (sampler, schedule)


@pytest.mark.parametrize(("sampler", "schedule"), ALL_PAIRS)
def test_every_offered_pair_runs(sampler: str, schedule: str) -> None:
    """start_run (whole and partial) and one step on random tensors, for every offered pair."""
    for first_step in (0, 3):
        if first_step and sampler == "PLMS":
            continue  # PLMS cannot start part-way (checked in test_plan)
        if first_step and sampler in ("DPM2", "DPM2 a") and schedule not in ("Automatic", "DDIM"):
            continue  # building a KDPM2 scheduler takes a second; two partial runs suffice
        run = start_run(SD15_CONFIG, sampler, schedule, 8, [1, 2], device=torch.device("cpu"), first_step=first_step)
        start = None if first_step == 0 else torch.randn(2, 4, 8, 8)
        latents = run.initial_latents(torch.randn(2, 4, 8, 8), start)
        t = run.timesteps[run.index]
        scaled = run.scheduler.scale_model_input(latents, t)
        out = run.scheduler.step(torch.randn_like(scaled) * 0.1, t, latents, **run.step_kwargs).prev_sample
        assert out.shape == latents.shape and torch.isfinite(out).all(), (sampler, schedule, first_step)
        assert run.index == run.first_index and run.end_index == len(run.timesteps)


def _karras(n: int, lo: float, hi: float, rho: float = 7.0) -> list[float]:
    ramp = [i / (n - 1) for i in range(n)]
    return [(hi ** (1 / rho) + r * (lo ** (1 / rho) - hi ** (1 / rho))) ** rho for r in ramp] + [0.0]


def test_euler_a_karras_steps_through_karras_sigmas() -> None:
    """Euler a + Karras on a real scheduler: the model input is scaled by, and each ancestral step
    goes down to, the Karras sigmas (k-diffusion's sample_euler_ancestral, computed here)."""
    steps = 10
    run = start_run(SD15_CONFIG, "Euler a", "Karras", steps, [5], device=torch.device("cpu"))
    scheduler = run.scheduler
    acp = scheduler.alphas_cumprod.double()
    train = ((1 - acp) / acp).sqrt()
    sigmas = _karras(steps, float(train[0]), float(train[-1]))
    assert sigmas[0] == pytest.approx(A1111_SIGMA_MAX, abs=1e-3)
    assert len(run.timesteps) == steps
    assert float(scheduler.init_noise_sigma) == pytest.approx(sigmas[0], rel=1e-6)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(1, 4, 8, 8, generator=generator) * sigmas[0]
    for i, t in enumerate(run.timesteps):
        s, s_next = sigmas[i], sigmas[i + 1]
        scaled = scheduler.scale_model_input(x, t)
        assert torch.allclose(scaled, x / math.sqrt(s * s + 1), rtol=1e-5), i
        eps = torch.randn(x.shape, generator=generator)
        state = run.generators[0].get_state()
        out = scheduler.step(eps, t, x, **run.step_kwargs).prev_sample
        noise = torch.randn(x.shape, generator=torch.Generator().set_state(state))
        up = min(s_next, math.sqrt(s_next**2 * (s**2 - s_next**2) / s**2))
        down = math.sqrt(s_next**2 - up**2)
        want = x + eps * (down - s) + noise * up  # denoised = x - s * eps; d = eps
        assert torch.allclose(out, want, atol=1e-4), i
        x = out
    assert up == 0.0  # the last step lands on sigma 0 without noise


def test_partial_run_starts_at_its_sigma() -> None:
    steps, first = 12, 5
    run = start_run(SD15_CONFIG, "Euler", "Align Your Steps", steps, [1], device=torch.device("cpu"), first_step=first)
    sigmas = run.scheduler.sigmas
    assert run.index == run.first_index == first
    start, noise = torch.zeros(1, 4, 8, 8), torch.ones(1, 4, 8, 8)
    noised = run.initial_latents(noise, start)
    assert torch.allclose(noised, noise * sigmas[first]), "img2img noise must match the schedule's sigma"


def test_align_your_steps_follows_the_family() -> None:
    sd15 = start_run(SD15_CONFIG, "DPM++ 2M", "Align Your Steps", 10, [1], device=torch.device("cpu"))
    sdxl = start_run(SD15_CONFIG, "DPM++ 2M", "Align Your Steps", 10, [1], device=torch.device("cpu"),
                     family="sdxl-base")
    default = start_run(SD15_CONFIG, "DPM++ 2M", "Align Your Steps", 10, [1], device=torch.device("cpu"),
                        family="sd2-v")
    assert float(sd15.scheduler.sigmas[1]) != pytest.approx(float(sdxl.scheduler.sigmas[1]), rel=1e-3)
    assert torch.equal(sd15.scheduler.sigmas, default.scheduler.sigmas)
    eleven = start_run(SD15_CONFIG, "Euler", "Align Your Steps", 11, [1], device=torch.device("cpu"),
                       family="sdxl-refiner")
    assert [round(float(s), 3) for s in eleven.scheduler.sigmas] == [
        14.615, 6.315, 3.771, 2.181, 1.342, 0.862, 0.555, 0.380, 0.234, 0.113, 0.029, 0.0]


def test_ddim_type_is_the_ddim_samplers_own_grid() -> None:
    for sampler in ("DDIM", "PLMS"):
        own = make_scheduler(SD15_CONFIG, sampler, "DDIM")
        uniform = make_scheduler(SD15_CONFIG, sampler, "Uniform")
        assert dict(own.config) == dict(uniform.config)
    run = start_run(SD15_CONFIG, "DDIM", "DDIM", 20, [1], device=torch.device("cpu"))
    assert [int(t) for t in run.timesteps] == list(range(951, 0, -50))  # t = 1 + k * 1000 // 20


def test_ddim_type_may_run_more_steps_than_asked() -> None:
    run = start_run(SD15_CONFIG, "Euler", "DDIM", 30, [1], device=torch.device("cpu"))
    assert len(run.timesteps) == 31  # A1111: t = 1, 34, ..., 991
    assert run.steps == 30 and run.index_of_step(30) == run.end_index


def test_sigma_list_pairs_write_the_label() -> None:
    assert infotext_schedule_label("Euler a", "Karras") == "Karras"
    assert infotext_schedule_label("Heun", "kl_optimal") == "KL Optimal"
