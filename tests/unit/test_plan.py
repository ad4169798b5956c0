"""build_plan: what a job will do, decided once from the request and an options snapshot."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from webui.engine.plan import build_plan, refiner_switch_step
from webui.request import GenerationRequest
from webui.settings import Options


@pytest.fixture
def options(tmp_path):
    return Options(tmp_path / "config.json")


def stages(plan) -> list[tuple]:
    return [(s.kind, s.pass_index, s.checkpoint, s.start_step, s.end_step) for s in plan.stages]


def test_plain_txt2img_is_one_base_stage(options):
    plan = build_plan(GenerationRequest(steps=20), options.snapshot())
    assert stages(plan) == [("base", 0, None, 0, 20)]
    assert len(plan.passes) == 1 and plan.steps_per_batch == 20


def test_refiner_switches_where_a1111_does(options):
    plan = build_plan(GenerationRequest(steps=20, refiner_checkpoint="r.safetensors", refiner_switch_at=0.8),
                      options.snapshot())
    assert stages(plan) == [("base", 0, None, 0, 16), ("refiner", 0, "r.safetensors", 16, 20)]
    # A1111 compares step/steps < switch_at in floats: 0.8·20 is 16.000000000000004, still 16.
    assert refiner_switch_step(20, 0.8) == 16 and refiner_switch_step(3, 0.8) == 3 and refiner_switch_step(10, 0.0) == 0
    never = build_plan(GenerationRequest(steps=20, refiner_checkpoint="r", refiner_switch_at=1.0), options.snapshot())
    assert stages(never) == [("base", 0, None, 0, 20)]


def test_hires_pass_runs_a1111s_img2img_steps(options):
    plan = build_plan(GenerationRequest(steps=20, enable_hr=True, denoising_strength=0.7, width=512, height=512),
                      options.snapshot())
    first, hires = plan.passes
    assert (hires.width, hires.height, hires.steps, hires.run_steps) == (1024, 1024, 20, 15)  # int(0.7·20) + 1
    assert stages(plan) == [("base", 0, None, 0, 20), ("hires", 1, None, 0, 15)]
    assert plan.steps_per_batch == 35
    own = build_plan(GenerationRequest(steps=20, enable_hr=True, hr_second_pass_steps=10, denoising_strength=1.0),
                     options.snapshot())
    assert own.passes[1].run_steps == 10  # strength 1 is capped at 0.999: all 10 steps


@pytest.mark.parametrize(("refiner_pass", "expected"), [
    ("second pass", [("base", 0, None, 0, 20), ("hires", 1, "h", 0, 12), ("refiner", 1, "r", 12, 15)]),
    ("first pass", [("base", 0, None, 0, 16), ("refiner", 0, "r", 16, 20), ("hires", 1, "h", 0, 15)]),
    ("both passes", [("base", 0, None, 0, 16), ("refiner", 0, "r", 16, 20), ("hires", 1, "h", 0, 12),
                     ("refiner", 1, "r", 12, 15)]),
])
def test_hires_with_refiner_follows_the_refiner_pass_setting(options, refiner_pass, expected):
    options.update({"hires_fix_refiner_pass": refiner_pass})
    request = GenerationRequest(steps=20, enable_hr=True, hr_checkpoint_name="h", refiner_checkpoint="r",
                                refiner_switch_at=0.8)
    assert stages(build_plan(request, options.snapshot())) == expected


def test_refiner_keeps_the_hires_pass_when_it_took_over_first(options):
    options.update({"hires_fix_refiner_pass": "first pass"})
    plan = build_plan(GenerationRequest(steps=20, enable_hr=True, refiner_checkpoint="r"), options.snapshot())
    assert stages(plan)[-1] == ("hires", 1, "r", 0, 15)  # A1111 keeps the refiner loaded for hires fix


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
    with pytest.raises(ValidationError, match="unknown upscaler"):
        GenerationRequest(enable_hr=True, hr_upscaler="R-ESRGAN 4x+")
    GenerationRequest(enable_hr=False, hr_upscaler="R-ESRGAN 4x+")  # ignored when hires fix is off, as A1111


@pytest.mark.parametrize("tag", ["<lora:x:nan>", "<lora:x:inf>", "<lora:x:1:-inf>", "<hypernet:y:NaN>",
                                 "<lora:x:te=nan>"])
def test_non_finite_network_weights_are_refused(tag):
    with pytest.raises(ValidationError, match="not a finite number"):
        GenerationRequest(prompt=f"a cat {tag}")
    GenerationRequest(prompt="a cat <lora:x:0.5> <lora:y:abc>")  # a word is the engine's warning, not a 422
