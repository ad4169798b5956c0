"""A1111 sampler / schedule names -> diffusers schedulers."""

from __future__ import annotations

import inspect

import diffusers
import pytest
import torch

from webui import samplers as S
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

COMBOS = [(spec.name, schedule) for spec in SAMPLERS for schedule in spec.allowed_schedules]


@pytest.mark.parametrize(("sampler", "schedule"), COMBOS)
def test_every_allowed_combination_builds(sampler: str, schedule: str) -> None:
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
    """Every schedule a sampler allows needs constructor arguments its class really has."""
    for spec in SAMPLERS:
        cls = getattr(diffusers, spec.scheduler_class)
        params = set(inspect.signature(cls.__init__).parameters)
        assert set(spec.kwargs) <= params, spec.name
        assert spec.default_schedule in spec.schedules, spec.name
        for label in spec.schedules:
            sch = S.find_schedule(label)
            assert sch is not None
            assert set(sch.required_params) <= params, (spec.name, label)


def test_disallowed_schedules_lack_support_or_are_refused_on_purpose() -> None:
    euler_a = set(inspect.signature(diffusers.EulerAncestralDiscreteScheduler.__init__).parameters)
    assert "use_karras_sigmas" not in euler_a
    singlestep = set(inspect.signature(diffusers.DPMSolverSinglestepScheduler.__init__).parameters)
    assert "timestep_spacing" not in singlestep


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
        resolve("Euler", "Polyexponential")
    for label in SCHEDULE_TYPES:
        assert label in str(err.value)


@pytest.mark.parametrize(
    ("sampler", "schedule"),
    [
        ("Euler a", "Karras"),
        ("Euler a Karras", None),
        ("Euler a", "Exponential"),
        ("Euler a", "Beta"),
        ("DPM++ 2S a", "SGM Uniform"),
        ("DDIM", "Karras"),
        ("PLMS", "Exponential"),
        ("LCM", "Karras"),
        ("LCM", "SGM Uniform"),
    ],
)
def test_disallowed_combinations_raise(sampler: str, schedule: str | None) -> None:
    with pytest.raises(UnsupportedSchedule) as err:
        make_scheduler(SD15_CONFIG, sampler, schedule)
    assert "allowed: Automatic" in str(err.value)
    assert isinstance(err.value, ValueError)


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
    assert [i["name"] for i in items] == ["automatic", "uniform", "karras", "exponential", "sgm_uniform", "beta"]
    assert [i["label"] for i in items] == list(SCHEDULE_TYPES)
    by_name = {i["name"]: i for i in items}
    assert by_name["karras"] == {
        "name": "karras", "label": "Karras", "aliases": None, "default_rho": 7.0, "need_inner_model": False,
    }
    assert by_name["sgm_uniform"]["aliases"] == ["SGMUniform"]
    assert by_name["uniform"]["need_inner_model"] is True
    for item in items:
        assert resolve("Euler", str(item["name"]))[0].name == "Euler"
        assert resolve("Euler", str(item["label"]))[0].name == "Euler"


def test_module_import_is_light() -> None:
    import subprocess
    import sys

    code = "import sys, webui.samplers, webui.infotext; print('diffusers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
