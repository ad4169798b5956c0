"""txt2img through the Studio (queue → engine → outputs) on tiny real-layout checkpoints."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import build_studio
from tests.kit.servers import wait_for
from webui import infotext, samplers
from webui.jobs import JobState
from webui.request import GenerationRequest

SMALL = dict(width=64, height=64, steps=2)


def pixels(result, index: int = 0) -> np.ndarray:
    return np.asarray(result.images[index].image)


@pytest.fixture
def studio(make_studio):
    return make_studio(("sd15", "sdxl-base"))


def test_same_request_gives_bit_identical_images(studio):
    request = GenerationRequest(prompt="a lighthouse", seed=42, **SMALL)
    assert np.array_equal(pixels(studio.generate(request)), pixels(studio.generate(request)))
    other = studio.generate(request.model_copy(update={"seed": 43}))
    assert not np.array_equal(pixels(studio.generate(request)), pixels(other))


def test_batch_image_i_uses_seed_plus_i(studio):
    batch = studio.generate(GenerationRequest(prompt="x", seed=100, batch_size=2, n_iter=2, **SMALL))
    assert [g.seed for g in batch.images] == [100, 101, 102, 103]
    assert batch.info["all_seeds"] == [100, 101, 102, 103]
    unrelated = pixels(studio.generate(GenerationRequest(prompt="x", seed=999, **SMALL))).astype(int)
    for i in (1, 3):
        single = pixels(studio.generate(GenerationRequest(prompt="x", seed=100 + i, **SMALL))).astype(int)
        # Same noise; only BLAS rounding differs between batch sizes (as in A1111).
        assert np.abs(pixels(batch, i).astype(int) - single).max() <= 2
        assert np.abs(unrelated - single).mean() > 10


def test_outputs_are_pngs_with_infotext_and_a_grid(studio):
    result = studio.generate(GenerationRequest(prompt="a, b: c", negative_prompt="blur", seed=7, batch_size=2, **SMALL))
    paths = [g.path for g in result.images]
    assert [p.name.split("-", 1)[1] for p in paths] == ["7.png", "8.png"]
    assert all(p.parent.parent == studio.paths.data_dir / "outputs" / "txt2img-images" for p in paths)
    assert result.grid.path.name.startswith("grid-")
    with Image.open(paths[1]) as saved:
        parsed = infotext.parse_infotext(infotext.read_image_infotext(saved))
    assert parsed["Prompt"] == "a, b: c" and parsed["Negative prompt"] == "blur"
    assert (parsed["Seed"], parsed["Steps"], parsed["Size-1"], parsed["Size-2"]) == (8, 2, 64, 64)
    assert parsed["Model"] == "sd15"
    assert not list(studio.paths.data_dir.rglob(".partial-*"))


def test_infotext_parses_back_to_the_same_image(studio):
    request = GenerationRequest(
        prompt="a cat", negative_prompt="dog", seed=11, sampler_name="DPM++ 2M", scheduler="Karras",
        cfg_scale=5.5, steps=3, width=64, height=72, clip_skip=2,
    )
    first = studio.generate(request)
    parsed = infotext.parse_infotext(first.images[0].infotext)
    again = GenerationRequest(
        prompt=parsed["Prompt"], negative_prompt=parsed["Negative prompt"], seed=parsed["Seed"],
        sampler_name=parsed["Sampler"], scheduler=parsed["Schedule type"], cfg_scale=parsed["CFG scale"],
        steps=parsed["Steps"], width=parsed["Size-1"], height=parsed["Size-2"], clip_skip=parsed["Clip skip"],
    )
    assert np.array_equal(pixels(first), pixels(studio.generate(again)))


def test_variation_seed_and_resize_seed(studio):
    base_request = GenerationRequest(prompt="x", seed=5, subseed=9, **SMALL)
    base = pixels(studio.generate(base_request))
    varied = studio.generate(base_request.model_copy(update={"subseed_strength": 0.5}))
    assert not np.array_equal(base, pixels(varied))
    assert "Variation seed: 9, Variation seed strength: 0.5" in varied.images[0].infotext
    same_size = studio.generate(base_request.model_copy(update={"seed_resize_from_w": 64, "seed_resize_from_h": 64}))
    assert np.array_equal(base, pixels(same_size))
    resized = studio.generate(base_request.model_copy(update={"seed_resize_from_w": 128, "seed_resize_from_h": 96}))
    assert not np.array_equal(base, pixels(resized))


def test_random_seed_is_reported(studio):
    result = studio.generate(GenerationRequest(prompt="x", seed=-1, **SMALL))
    seed = result.info["seed"]
    assert 0 <= seed < 2**32 and result.images[0].seed == seed
    assert f"Seed: {seed}," in result.images[0].infotext


def test_clip_skip_and_tiling_change_the_image(studio):
    request = GenerationRequest(prompt="a tree", seed=3, **SMALL)
    base = pixels(studio.generate(request))
    skipped = studio.generate(request.model_copy(update={"clip_skip": 2}))
    assert not np.array_equal(base, pixels(skipped)) and "Clip skip: 2" in skipped.images[0].infotext
    tiled = studio.generate(request.model_copy(update={"tiling": True}))
    assert not np.array_equal(base, pixels(tiled))
    assert np.array_equal(base, pixels(studio.generate(request)))  # tiling was undone


def test_long_prompts_use_more_chunks(studio):
    long_prompt = ", ".join(f"word{i}" for i in range(60))  # well over 75 tokens
    result = studio.generate(GenerationRequest(prompt=long_prompt, negative_prompt="short", seed=1, **SMALL))
    short = studio.generate(GenerationRequest(prompt=long_prompt.split(",")[0], negative_prompt="short", seed=1, **SMALL))
    assert not np.array_equal(pixels(result), pixels(short))


@pytest.fixture(scope="module")
def sd15_studio(tmp_path_factory, checkpoint_store):
    """One studio for the sampler table keeps it fast."""
    studio = build_studio(tmp_path_factory.mktemp("sampler-table"), checkpoint_store, ("sd15",))
    yield studio
    studio.stop()


@pytest.mark.parametrize("sampler", [s.name for s in samplers.SAMPLERS])
def test_every_sampler_generates(sd15_studio, sampler):
    result = sd15_studio.generate(GenerationRequest(prompt="x", seed=1, sampler_name=sampler, save_images=False, **SMALL))
    assert result.images[0].image.size == (64, 64)
    assert np.asarray(result.images[0].image).std() > 0
    assert f"Sampler: {sampler}," in result.images[0].infotext


def test_sdxl_uses_both_encoders_and_generates(studio):
    studio.options.update({"sd_model_checkpoint": "sdxl-base.safetensors"})
    result = studio.generate(GenerationRequest(prompt="a castle", seed=2, **SMALL))
    assert result.info["sd_model_name"] == "sdxl-base"
    assert result.info["model_family"] == "sdxl-base"


def test_override_settings_switch_model_for_one_request(studio):
    result = studio.generate(GenerationRequest(
        prompt="x", seed=1, override_settings={"sd_model_checkpoint": "sdxl-base.safetensors", "CLIP_stop_at_last_layers": 2},
        **SMALL,
    ))
    assert result.info["sd_model_name"] == "sdxl-base" and result.info["clip_skip"] == 2
    assert studio.manager.active.file.name == "sd15.safetensors"


# --- the queue around the engine ------------------------------------------------------------


def test_progress_previews_and_interrupt(studio):
    studio.queue.preview_every = 1
    job = studio.submit(GenerationRequest(prompt="x", seed=1, width=128, height=128, steps=60))
    wait_for(lambda: job.progress.step >= 2 and job.progress.preview is not None)
    assert job.state is JobState.RUNNING and job.progress.total == 60
    assert isinstance(job.progress.preview, Image.Image)
    studio.queue.interrupt()
    finished = studio.queue.wait(job.id, timeout=60)
    assert finished.state is JobState.DONE and finished.interrupted
    assert len(finished.result.images) == 1  # A1111 returns the partial image
    assert studio.generate(GenerationRequest(prompt="next", seed=1, **SMALL)).images  # queue goes on


def test_skip_ends_only_the_current_image(studio):
    job = studio.submit(GenerationRequest(prompt="x", seed=1, width=128, height=128, steps=40, n_iter=2))
    wait_for(lambda: job.progress.step >= 2)
    studio.queue.skip()
    finished = studio.queue.wait(job.id, timeout=120)
    assert finished.state is JobState.DONE and not finished.interrupted
    assert len(finished.result.images) == 2


def test_a_failing_job_reports_and_the_worker_goes_on(studio, monkeypatch):
    from webui.engine import batch

    calls = {"n": 0}
    real = batch.denoise

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("CUDA out of memory (simulated)")
        return real(*args, **kwargs)

    monkeypatch.setattr(batch, "denoise", flaky)
    failed = studio.queue.run(GenerationRequest(prompt="x", **SMALL))
    assert failed.state is JobState.FAILED and "out of memory" in failed.error
    assert studio.generate(GenerationRequest(prompt="x", **SMALL)).images


# --- prompt encoder against diffusers' own ----------------------------------------------------

def test_encoder_matches_diffusers_for_plain_prompts(studio):
    from webui.prompts.encoder import PromptEncoder

    with studio.manager.use() as model:
        pipe = model.pipe
        ours = PromptEncoder(pipe, sdxl=False).encode(["a photo of a cat"])
        theirs, _ = pipe.encode_prompt("a photo of a cat", "cpu", 1, False)
    assert torch.allclose(ours.embeds, theirs, atol=1e-6)


def test_sdxl_encoder_matches_diffusers_including_pooled(studio):
    from webui.prompts.encoder import PromptEncoder

    studio.options.update({"sd_model_checkpoint": "sdxl-base.safetensors"})
    with studio.manager.use() as model:
        pipe = model.pipe
        ours = PromptEncoder(pipe, sdxl=True).encode(["a photo of a cat"])
        embeds, _, pooled, _ = pipe.encode_prompt("a photo of a cat", device="cpu", do_classifier_free_guidance=False)
    assert torch.allclose(ours.embeds, embeds, atol=1e-5)
    assert torch.allclose(ours.pooled, pooled, atol=1e-5)


# --- outputs -----------------------------------------------------------------------------------

def test_concurrent_saves_never_collide(tmp_path):
    from webui.outputs import save_png

    image = Image.new("RGB", (8, 8))
    saved: list = []
    threads = [threading.Thread(target=lambda: saved.append(save_png(image, tmp_path, "1", "p"))) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(saved)) == 16 and len(list(tmp_path.glob("*.png"))) == 16


def test_a_failed_write_leaves_no_file(tmp_path, monkeypatch):
    from webui import outputs

    def broken(path, image, text, extra=None):
        path.write_bytes(b"\x89PNG half")
        raise OSError("disk full")

    monkeypatch.setattr(outputs, "_png_bytes_to", broken)
    with pytest.raises(OSError):
        outputs.save_png(Image.new("RGB", (8, 8)), tmp_path, "1", None)
    assert list(tmp_path.iterdir()) == []


def test_kept_override_updates_the_setting(studio):
    studio.generate(GenerationRequest(
        prompt="x", override_settings={"sd_model_checkpoint": "sdxl-base.safetensors"},
        override_settings_restore_afterwards=False, **SMALL,
    ))
    assert studio.manager.active.file.name == "sdxl-base.safetensors"
    assert studio.options.sd_model_checkpoint == studio.manager.active.file.title


def test_a_failed_image_save_keeps_the_images_and_says_why(studio, monkeypatch):
    from webui import outputs

    def disk_full(path, image, text, extra=None):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(outputs, "_png_bytes_to", disk_full)
    result = studio.generate(GenerationRequest(prompt="x", seed=3, batch_size=2, save_images=True, **SMALL))
    assert len(result.images) == 2 and all(g.image is not None and g.path is None for g in result.images)
    assert pixels(result, 1).std() > 0  # real pictures, not placeholders
    assert any("image 1 was not saved (" in w and "No space left" in w for w in result.warnings), result.warnings
    assert any("the grid was not saved" in w for w in result.warnings)
    assert not list((studio.paths.data_dir / "outputs").rglob("*.png"))
