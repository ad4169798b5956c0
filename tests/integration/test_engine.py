"""The engine's own loop on tiny real-layout checkpoints: infotext, skip, samplers, hires fix, refiner.

Each test asserts what a user would see: the exact infotext, an image that changed (or did not),
an image size, which models are loaded afterwards.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from tests.conftest import build_studio
from webui import infotext, samplers
from webui.jobs import JobState
from webui.models.hashes import sha256_of_file
from webui.models.synthetic import write_vae
from webui.request import GenerationRequest
from webui.version import VERSION

SMALL = dict(width=64, height=64, steps=3, save_images=False)


def pixels(result, index: int = 0) -> np.ndarray:
    return np.asarray(result.images[index].image).astype(int)


@pytest.fixture(scope="module")
def studio(tmp_path_factory, checkpoint_store):
    data_dir = tmp_path_factory.mktemp("engine")
    write_vae(data_dir / "models" / "VAE" / "other.vae.safetensors", seed=7)
    studio = build_studio(data_dir, checkpoint_store, ("sd15", "sdxl-base", "sdxl-refiner"))
    studio.refresh_checkpoints()
    yield studio
    studio.stop()


def generate(studio, **fields):
    return studio.generate(GenerationRequest(**{"prompt": "a lighthouse", "seed": 11, **SMALL, **fields}))


# --- infotext ------------------------------------------------------------------------------------

def test_the_whole_infotext_of_one_image(studio):
    """Every key and value, in A1111's order: a renamed key or a wrong hash length fails here."""
    ckpt = studio.catalog.find_checkpoint("sd15.safetensors")
    vae_path = studio.paths.vae_dir / "other.vae.safetensors"
    result = studio.generate(GenerationRequest(
        prompt="a (lighthouse:1.2), dusk", negative_prompt="blurry", seed=11, subseed=5, subseed_strength=0.25,
        sampler_name="DPM++ 2M", scheduler="Karras", cfg_scale=6.5, batch_size=2, clip_skip=2,
        override_settings={"sd_vae": "other.vae.safetensors"}, **SMALL,
    ))
    second = result.images[1].infotext
    assert second == (
        "a (lighthouse:1.2), dusk\n"
        "Negative prompt: blurry\n"
        f"Steps: 3, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 12, Size: 64x64, "
        f"Model hash: {sha256_of_file(ckpt.path)[:10]}, Model: sd15, "
        f"VAE hash: {sha256_of_file(vae_path)[:10]}, VAE: other.vae.safetensors, Batch size: 2, Batch pos: 1, "
        f"Variation seed: 6, Variation seed strength: 0.25, Clip skip: 2, Version: {VERSION}"
    )


def test_automatic_schedule_type_is_left_out_and_the_text_parses_back(studio):
    result = generate(studio, sampler_name="Euler a")
    text = result.images[0].infotext
    assert "Schedule type" not in text and "Batch size" not in text and "VAE" not in text
    parsed = infotext.parse_infotext(text)
    again = generate(studio, sampler_name=parsed["Sampler"], scheduler=parsed["Schedule type"], seed=parsed["Seed"],
                     steps=parsed["Steps"], cfg_scale=parsed["CFG scale"])
    assert np.array_equal(pixels(result), pixels(again))


# --- samplers ------------------------------------------------------------------------------------

def test_every_sampler_makes_its_own_image(studio):
    # 6 steps: with fewer, 3rd-order solvers never get past their lower-order warm-up steps.
    images = {s.name: pixels(generate(studio, sampler_name=s.name, steps=6)) for s in samplers.SAMPLERS}
    names = list(images)
    same = [(a, b) for i, a in enumerate(names) for b in names[i + 1:] if np.array_equal(images[a], images[b])]
    assert same == []


def test_dpm_sde_is_reproducible_and_each_image_has_its_own_noise(studio):
    first = generate(studio, sampler_name="DPM++ SDE", batch_size=2)
    again = generate(studio, sampler_name="DPM++ SDE", batch_size=2)
    assert np.array_equal(pixels(first, 1), pixels(again, 1))
    alone = generate(studio, sampler_name="DPM++ SDE", seed=12)
    assert np.abs(pixels(first, 1) - pixels(alone)).max() <= 2  # BLAS rounding of the batch only
    assert not np.array_equal(pixels(first, 0), pixels(first, 1))


# --- skip and interrupt ------------------------------------------------------------------------------

class _At:
    """A loop callback that runs ``action`` once, at a given stage kind and step."""

    def __init__(self, kind: str, step: int, action):
        self.kind, self.step, self.action, self.fired = kind, step, action, threading.Event()

    def after_step(self, step) -> None:
        if step.stage.kind == self.kind and step.step >= self.step and not self.fired.is_set():
            self.fired.set()
            self.action()


@pytest.fixture
def with_callback(studio):
    def add(callback):
        studio.engine.callbacks = (callback,) if callback is not None else ()
        return callback

    yield add
    studio.engine.callbacks = ()


def test_skip_stops_the_current_image_and_the_next_is_its_own_seed(studio, with_callback):
    with_callback(_At("base", 1, studio.queue.skip))
    result = generate(studio, n_iter=2, steps=8, sampler_name="Euler")
    with_callback(None)
    full_first = generate(studio, steps=8, sampler_name="Euler")
    second_alone = generate(studio, seed=12, steps=8, sampler_name="Euler")
    assert not result.interrupted and [g.seed for g in result.images] == [11, 12]
    assert not np.array_equal(pixels(result, 0), pixels(full_first))  # stopped early
    assert np.array_equal(pixels(result, 1), pixels(second_alone))


def test_interrupt_during_hires_fix_keeps_the_first_pass(studio, with_callback):
    with_callback(_At("hires", 0, studio.queue.interrupt))
    result = generate(studio, enable_hr=True, steps=4)
    with_callback(None)
    assert result.interrupted
    image = result.images[0]
    assert image.image.size == (64, 64)  # the finished first pass, not a half-done hires image
    assert "Hires" not in image.infotext and "Denoising strength" not in image.infotext
    assert np.array_equal(pixels(result), pixels(generate(studio, steps=4)))


def test_interrupt_in_the_first_pass_returns_the_partial_image(studio, with_callback):
    with_callback(_At("base", 1, studio.queue.interrupt))
    result = generate(studio, enable_hr=True, steps=6, n_iter=2)
    with_callback(None)
    assert result.interrupted and len(result.images) == 1 and result.images[0].image.size == (64, 64)
    assert not np.array_equal(pixels(result), pixels(generate(studio, steps=6)))


# --- hires fix -------------------------------------------------------------------------------------

@pytest.mark.parametrize("upscaler", ["Latent", "Latent (nearest-exact)", "Lanczos", "None"])
def test_hires_fix_doubles_the_size_and_its_infotext_regenerates_it(studio, upscaler):
    base = generate(studio)
    result = generate(studio, enable_hr=True, hr_upscaler=upscaler, denoising_strength=0.6, hr_second_pass_steps=2)
    image = result.images[0]
    assert image.image.size == (128, 128)
    parsed = infotext.parse_infotext(image.infotext)
    assert (parsed["Size"], parsed["Hires upscale"], parsed["Hires upscaler"]) == ("64x64", 2, upscaler)
    assert (parsed["Denoising strength"], parsed["Hires steps"]) == (0.6, 2)
    again = generate(studio, seed=parsed["Seed"], steps=parsed["Steps"], enable_hr=True, hr_scale=parsed["Hires upscale"],
                     hr_upscaler=parsed["Hires upscaler"], denoising_strength=parsed["Denoising strength"],
                     hr_second_pass_steps=parsed["Hires steps"])
    assert np.array_equal(pixels(result), pixels(again))
    first_pass = np.asarray(base.images[0].image.resize((128, 128))).astype(int)
    assert np.abs(pixels(result) - first_pass).mean() > 1  # the second pass really denoised


def test_hires_resize_to_a_box_crops_and_records_it(studio):
    result = generate(studio, enable_hr=True, hr_resize_x=96, hr_resize_y=128)
    assert result.images[0].image.size == (96, 128)
    assert "Hires resize: 96x128" in result.images[0].infotext


def test_hires_prompt_sampler_and_checkpoint_are_used_and_recorded(studio):
    plain = generate(studio, enable_hr=True)
    other = generate(studio, enable_hr=True, hr_prompt="a castle", hr_sampler_name="DPM++ 2M",
                     hr_checkpoint_name="sdxl-base.safetensors")
    assert not np.array_equal(pixels(plain), pixels(other))
    params = infotext.parse_infotext(other.images[0].infotext)
    xl = studio.catalog.find_checkpoint("sdxl-base.safetensors")
    assert params["Hires prompt"] == "a castle" and params["Hires sampler"] == "DPM++ 2M"
    assert params["Hires checkpoint"] == f"sdxl-base [{xl.short_hash}]"
    assert params["Model"] == "sd15" and studio.manager.active.file.name == "sd15.safetensors"


def test_hires_at_denoising_zero_is_the_enlarged_first_pass(studio):
    result = generate(studio, enable_hr=True, denoising_strength=0.0, hr_upscaler="Lanczos")
    assert result.images[0].image.size == (128, 128)
    assert "Denoising strength: 0," in result.images[0].infotext


# --- refiner ---------------------------------------------------------------------------------------

def test_refiner_takes_over_and_both_models_stay_in_ram(studio):
    studio.options.update({"sd_model_checkpoint": "sdxl-base.safetensors"})
    try:
        base = generate(studio, steps=4)
        refined = generate(studio, steps=4, refiner_checkpoint="sdxl-refiner.safetensors", refiner_switch_at=0.5)
        assert not np.array_equal(pixels(base), pixels(refined))
        params = infotext.parse_infotext(refined.images[0].infotext)
        refiner = studio.catalog.find_checkpoint("sdxl-refiner.safetensors")
        assert params["Refiner"] == f"sdxl-refiner [{refiner.short_hash}]" and params["Refiner switch at"] == 0.5
        assert params["Model"] == "sdxl-base"
        assert studio.manager.active.file.name == "sdxl-base.safetensors"
        assert any(t.startswith("sdxl-refiner") for t in studio.manager.cached_titles())
        never = generate(studio, steps=4, refiner_checkpoint="sdxl-refiner.safetensors", refiner_switch_at=1.0)
        assert np.array_equal(pixels(base), pixels(never)) and "Refiner" not in never.images[0].infotext
    finally:
        studio.options.update({"sd_model_checkpoint": "sd15.safetensors"})


def test_refiner_continues_the_same_schedule_without_decoding(studio):
    """Switching at the last step with a refiner that is the base model itself changes nothing."""
    same = generate(studio, steps=4, refiner_checkpoint="sd15.safetensors", refiner_switch_at=0.5)
    assert np.array_equal(pixels(same), pixels(generate(studio, steps=4)))


def test_a_failing_refiner_leaves_the_base_model_active(studio, monkeypatch):
    from webui.engine import batch

    real = batch.denoise

    def fail_in_refiner(stage, *args, **kwargs):
        if stage.kind == "refiner":
            raise RuntimeError("out of memory in the refiner (simulated)")
        return real(stage, *args, **kwargs)

    monkeypatch.setattr(batch, "denoise", fail_in_refiner)
    job = studio.queue.run(GenerationRequest(prompt="x", refiner_checkpoint="sdxl-refiner.safetensors",
                                             refiner_switch_at=0.5, **SMALL))
    assert job.state is JobState.FAILED and "refiner" in job.error
    assert studio.manager.active.file.name == "sd15.safetensors"


def test_refiner_batches_with_no_ram_cache_match_single_images(studio):
    studio.options.update({"sd_checkpoint_cache": 0})
    try:
        batches = generate(studio, steps=4, n_iter=2, refiner_checkpoint="sdxl-refiner.safetensors",
                           refiner_switch_at=0.5)
        alone = generate(studio, steps=4, seed=12, refiner_checkpoint="sdxl-refiner.safetensors",
                         refiner_switch_at=0.5)
    finally:
        studio.options.update({"sd_checkpoint_cache": 1})
    assert np.array_equal(pixels(batches, 1), pixels(alone))  # models re-read per batch, nothing mixed up
    assert studio.manager.active.file.name == "sd15.safetensors"


def test_a_kept_vae_override_stays_and_is_saved(studio):
    result = generate(studio, override_settings={"sd_vae": "other.vae.safetensors"},
                      override_settings_restore_afterwards=False)
    try:
        assert "VAE: other.vae.safetensors" in result.images[0].infotext
        assert studio.options.sd_vae == "other.vae.safetensors"
        assert studio.manager.active.vae_file.path.name == "other.vae.safetensors"
    finally:
        studio.options.update({"sd_vae": "Automatic"})
    assert studio.manager.active.vae_file is None


# --- outputs -----------------------------------------------------------------------------------------

def test_grid_numbers_advance(studio):
    request = dict(batch_size=2, save_images=True, save_grid=True, width=64, height=64, steps=1)
    first = studio.generate(GenerationRequest(prompt="x", seed=3, **request))
    second = studio.generate(GenerationRequest(prompt="x", seed=3, **request))
    numbers = sorted(int(g.grid.path.name.split("-")[1]) for g in (first, second))
    assert numbers[1] == numbers[0] + 1
    assert first.grid.path.name.startswith("grid-") and first.grid.path.name.endswith("-3.png")
