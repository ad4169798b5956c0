"""build_plan: what a job will do, decided once from the request and an options snapshot."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from webui.engine.plan import build_plan
from webui.engine.sampling import start_run
from webui.models import configs
from webui.models.identify import FAMILIES
from webui.request import GenerationRequest
from webui.settings import Options


@pytest.fixture
def options(tmp_path):
    return Options(tmp_path / "config.json")


def stages(plan) -> list[tuple]:
    return [(s.kind, s.pass_index, s.checkpoint, s.until_switch, s.from_switch) for s in plan.stages]


def test_plain_txt2img_is_one_base_stage(options):
    plan = build_plan(GenerationRequest(steps=20), options.snapshot())
    assert stages(plan) == [("base", 0, None, False, False)]
    assert len(plan.passes) == 1 and plan.steps_per_batch == 20


def test_the_refiner_takes_over_the_same_pass(options):
    plan = build_plan(GenerationRequest(steps=20, refiner_checkpoint="r.safetensors"), options.snapshot())
    assert stages(plan) == [("base", 0, None, True, False), ("refiner", 0, "r.safetensors", False, True)]


def run_of(steps: int, sampler: str = "Euler", first_step: int = 0):
    config = configs.shipped_config("sd15", "scheduler")
    return start_run(config, sampler, "Automatic", steps, [1], device=torch.device("cpu"), first_step=first_step)


def test_refiner_switch_step_by_timestep_and_by_sampling_steps():
    run = run_of(20)
    # A1111 (default): the first step whose timestep t has (999 − t) / 1000 ≥ switch_at.
    expected = next(k for k in range(20) if (999 - float(run.timesteps[k])) / 1000 >= 0.8)
    assert run.switch_step(0.8) == expected
    # Old behaviour: by share of steps; 0.8·20 is 16.000000000000004 in floats, still step 16.
    assert run.switch_step(0.8, by_sampling_steps=True) == 16
    assert run.switch_step(1.0) == 20 and run.switch_step(1.0, by_sampling_steps=True) == 20  # never
    assert run.switch_step(0.0) == 0


@pytest.mark.parametrize("sampler", ["Euler", "Heun", "DPM2", "PLMS", "DPM++ 2M"])
def test_step_boundaries_in_the_timestep_list(sampler):
    run = run_of(6, sampler)
    starts = [run.index_of_step(k) for k in range(7)]
    assert starts[0] == 0 and starts[-1] == len(run.timesteps)
    if sampler in ("Heun", "DPM2"):
        assert starts[:3] == [0, 2, 4]  # two model calls per step
    elif sampler == "PLMS":
        assert starts[:3] == [0, 2, 3]  # its first step runs on a repeated timestep
    else:
        assert starts == list(range(7))


def test_hires_pass_runs_a1111s_steps(options):
    plan = build_plan(GenerationRequest(steps=20, enable_hr=True, denoising_strength=0.7, width=512, height=512),
                      options.snapshot())
    first, hires = plan.passes
    # A1111's setup_img2img_steps with explicit steps: 20 steps at the end of an int(20 / 0.7) schedule.
    assert (hires.width, hires.height, hires.steps, hires.first_step, hires.run_steps) == (1024, 1024, 28, 8, 20)
    assert stages(plan) == [("base", 0, None, False, False), ("hires", 1, None, False, False)]
    assert plan.steps_per_batch == 40
    own = build_plan(GenerationRequest(steps=20, enable_hr=True, hr_second_pass_steps=10, denoising_strength=1.0),
                     options.snapshot())
    assert (own.passes[1].steps, own.passes[1].run_steps) == (10, 10)  # strength 1 is capped at 0.999
    none = build_plan(GenerationRequest(steps=20, enable_hr=True, denoising_strength=0.0), options.snapshot())
    assert none.passes[1].run_steps == 0
    tiny = GenerationRequest(steps=150, enable_hr=True, denoising_strength=0.01)
    assert tiny.hires_steps == (1000, 850)  # capped at the 1000 training timesteps


@pytest.mark.parametrize(("refiner_pass", "expected"), [
    ("second pass", [("base", 0, None, False, False), ("hires", 1, "h", True, False), ("refiner", 1, "r", False, True)]),
    ("first pass", [("base", 0, None, True, False), ("refiner", 0, "r", False, True), ("hires", 1, "h", False, False)]),
    ("both passes", [("base", 0, None, True, False), ("refiner", 0, "r", False, True), ("hires", 1, "h", True, False),
                     ("refiner", 1, "r", False, True)]),
])
def test_hires_with_refiner_follows_the_refiner_pass_setting(options, refiner_pass, expected):
    options.update({"hires_fix_refiner_pass": refiner_pass})
    request = GenerationRequest(steps=20, enable_hr=True, hr_checkpoint_name="h", refiner_checkpoint="r")
    assert stages(build_plan(request, options.snapshot())) == expected


def test_the_hires_pass_runs_on_the_jobs_model_after_a_first_pass_refiner(options):
    options.update({"hires_fix_refiner_pass": "first pass"})
    plan = build_plan(GenerationRequest(steps=20, enable_hr=True, refiner_checkpoint="r"), options.snapshot())
    assert stages(plan)[-1] == ("hires", 1, None, False, False)  # A1111 reloads the hires (or own) model


@pytest.mark.parametrize(("fields", "expected"), [
    ({}, ("DPM++ 2M", "Karras")),  # the first pass's sampler and schedule
    ({"hr_sampler_name": "Euler a"}, ("Euler a", "Karras")),  # k-diffusion samplers take every schedule
    ({"hr_sampler_name": "LCM"}, ("LCM", "Automatic")),  # Karras does not apply to it: its default
    ({"hr_sampler_name": "LMS Karras"}, ("LMS", "Karras")),  # a combined name brings its schedule
    ({"hr_sampler_name": "LMS", "hr_scheduler": "Exponential"}, ("LMS", "Exponential")),
    ({"hr_sampler_name": "DPM++ 2M"}, ("DPM++ 2M", "Karras")),
])
def test_hires_sampler_and_schedule_follow_a1111(options, fields, expected):
    request = GenerationRequest(sampler_name="DPM++ 2M Karras", enable_hr=True, **fields)
    hires = build_plan(request, options.snapshot()).passes[1]
    assert (hires.sampler, hires.schedule) == expected


def test_hires_refuses_what_cannot_run(options):
    with pytest.raises(ValidationError, match="does not support"):
        GenerationRequest(enable_hr=True, hr_sampler_name="LCM", hr_scheduler="Karras")
    with pytest.raises(ValidationError, match="PLMS"):
        GenerationRequest(enable_hr=True, sampler_name="PLMS")
    GenerationRequest(enable_hr=True, sampler_name="PLMS", hr_sampler_name="DDIM")  # PLMS for the first pass only


def test_every_family_has_a_scheduler_config():
    for family in FAMILIES:
        assert configs.shipped_config(family, "scheduler")["num_train_timesteps"] == 1000


def test_options_are_read_once(options):
    snapshot = options.snapshot()
    plan = build_plan(GenerationRequest(prompt="a # note"), snapshot)
    options.update({"emphasis": "No norm", "enable_prompt_comments": False})
    assert plan.options["emphasis"] == "Original" and plan.prompt.strip() == "a"
    with pytest.raises(TypeError):
        plan.options["emphasis"] = "x"  # a snapshot is read-only


def test_seeds_batches_and_network_tags_per_pass(options):
    plan = build_plan(GenerationRequest(seed=7, batch_size=2, n_iter=2, prompt="cat <lora:a:1>", enable_hr=True,
                                        hr_prompt="dog <lora:b:0.5>"), options.snapshot())
    assert plan.batch(1) == ((9, 10), plan.subseeds[2:4])
    assert plan.prompt == "cat <lora:a:1>"  # infotext keeps the tags, as A1111
    assert plan.passes[0].prompt.strip() == "cat" and [r.name for r in plan.passes[0].networks] == ["a"]
    assert plan.passes[1].prompt.strip() == "dog" and [r.name for r in plan.passes[1].networks] == ["b"]


def test_hires_size_rules(options):
    assert GenerationRequest(width=512, height=768, enable_hr=True, hr_resize_x=1024).hires_size == (1024, 1536)
    boxed = GenerationRequest(width=512, height=768, enable_hr=True, hr_resize_x=1024, hr_resize_y=1024)
    assert (boxed.hires_upscale_to, boxed.hires_crop, boxed.hires_size) == ((1024, 1536), (0, 64), (1024, 1024))
    with pytest.raises(ValidationError, match="2048"):
        GenerationRequest(width=1536, height=512, enable_hr=True, hr_scale=2)
    # Built-in names are made canonical here; a model name is checked against the upscaler folders
    # where the request meets the studio (the API's 422, Engine.run), not by the pure request.
    assert GenerationRequest(enable_hr=True, hr_upscaler="latent (BICUBIC)").hr_upscaler == "Latent (bicubic)"
    assert GenerationRequest(enable_hr=True, hr_upscaler="R-ESRGAN 4x+").hr_upscaler == "R-ESRGAN 4x+"


@pytest.mark.parametrize("tag", ["<lora:x:nan>", "<lora:x:inf>", "<lora:x:1:-inf>", "<hypernet:y:NaN>",
                                 "<lora:x:te=nan>"])
def test_non_finite_network_weights_are_refused(tag):
    with pytest.raises(ValidationError, match="not a finite number"):
        GenerationRequest(prompt=f"a cat {tag}")
    GenerationRequest(prompt="a cat <lora:x:0.5> <lora:y:abc>")  # a word is the engine's warning, not a 422
