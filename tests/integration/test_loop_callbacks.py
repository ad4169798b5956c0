"""The loop's callback points, as ControlNet, inpainting and extensions will use them."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import build_studio
from webui.engine.callbacks import Callbacks, LoopCallback
from webui.engine.sampling import start_run
from webui.models import configs
from webui.request import GenerationRequest

SMALL = dict(prompt="a lighthouse", seed=5, width=64, height=64, steps=4, save_images=False)


@pytest.fixture(scope="module")
def studio(tmp_path_factory, checkpoint_store):
    studio = build_studio(tmp_path_factory.mktemp("callbacks"), checkpoint_store, ("sd15",))
    yield studio
    studio.stop()


def run_with(studio, *callbacks, **fields):
    studio.engine.callbacks = tuple(callbacks)
    try:
        return studio.generate(GenerationRequest(**{**SMALL, **fields}))
    finally:
        studio.engine.callbacks = ()


def pixels(result) -> np.ndarray:
    return np.asarray(result.images[0].image).astype(int)


class Recorder(LoopCallback):
    def __init__(self, name: str, order: int, calls: list):
        self.name, self.order, self.calls = name, order, calls

    def before_loop(self, stage):
        self.calls.append((self.name, "before_loop", stage.kind))

    def after_step(self, step):
        self.calls.append((self.name, "after_step", step.step))

    def after_stage(self, stage):
        self.calls.append((self.name, "after_stage", stage.kind))

    def after_decode(self, decoded):
        self.calls.append((self.name, "after_decode", len(decoded.images)))


def test_points_run_in_order_and_callbacks_by_their_order(studio):
    calls: list = []
    run_with(studio, Recorder("late", 5, calls), Recorder("early", -1, calls), steps=2)
    assert calls == [
        ("early", "before_loop", "base"), ("late", "before_loop", "base"),
        ("early", "after_step", 0), ("late", "after_step", 0), ("early", "after_step", 1), ("late", "after_step", 1),
        ("early", "after_stage", "base"), ("late", "after_stage", "base"),
        ("early", "after_decode", 1), ("late", "after_decode", 1),
    ]
    assert [type(c).__name__ for c in Callbacks([Recorder("b", 1, []), object(), Recorder("a", 0, [])])] == [
        "object", "Recorder", "Recorder"]


class Residuals(LoopCallback):
    """What a ControlNet unit does: add residuals to every down block and the mid block."""

    def __init__(self, scale: float):
        self.scale = scale
        self.calls = 0

    def before_unet(self, call):
        self.calls += 1
        unet = call.stage.model.pipe.unet
        batch, _, height, width = call.sample.shape
        down, size = [], (height, width)
        # conv_in, then each block's resnets and its downsampler, at the sizes the UNet makes them.
        residual_shapes = [(unet.config.block_out_channels[0], size)]
        for index, block in enumerate(unet.down_blocks):
            channels = unet.config.block_out_channels[index]
            residual_shapes += [(channels, size)] * len(block.resnets)
            if block.downsamplers:
                size = (size[0] // 2, size[1] // 2)
                residual_shapes.append((channels, size))
        generator = torch.Generator().manual_seed(0)
        for channels, (h, w) in residual_shapes:
            down.append(torch.randn(batch, channels, h, w, generator=generator) * self.scale)
        mid = torch.randn(batch, unet.config.block_out_channels[-1], *size, generator=generator) * self.scale
        call.unet_kwargs["down_block_additional_residuals"] = tuple(down)
        call.unet_kwargs["mid_block_additional_residual"] = mid


def test_unet_kwargs_from_before_unet_reach_the_unet(studio):
    base = pixels(run_with(studio))
    zero = Residuals(0.0)
    assert np.array_equal(pixels(run_with(studio, zero)), base) and zero.calls == 4
    assert np.abs(pixels(run_with(studio, Residuals(1.0))) - base).mean() > 1


class Denoised(LoopCallback):
    def __init__(self, replace_with_zeros: bool = False):
        self.zeros = replace_with_zeros

    def after_cfg(self, step):
        x0 = step.denoised
        step.denoised = torch.zeros_like(x0) if self.zeros else x0


@pytest.mark.parametrize("sampler", ["Euler", "DPM++ 2M", "DDIM", "Heun"])
def test_denoised_round_trips_and_replacing_it_steers_the_image(studio, sampler):
    base = pixels(run_with(studio, sampler_name=sampler))
    same = pixels(run_with(studio, Denoised(), sampler_name=sampler))
    assert np.abs(same - base).max() <= 1  # x0 → model output → x0 only rounds
    grey = pixels(run_with(studio, Denoised(replace_with_zeros=True), sampler_name=sampler))
    assert np.abs(grey - base).mean() > 5


@pytest.mark.parametrize(("sampler", "prediction"), [("Euler", "epsilon"), ("Euler", "v_prediction"),
                                                     ("DPM++ 2M", "epsilon"), ("DDIM", "v_prediction"),
                                                     ("LMS", "epsilon"), ("UniPC", "v_prediction")])
def test_x0_conversions_invert_each_other(studio, sampler, prediction):
    spec = studio.manager.active.spec
    config = {**configs.scheduler_config(spec), "prediction_type": prediction}
    run = start_run(config, sampler, "Automatic", 10, [1], device=torch.device("cpu"))
    generator = torch.Generator().manual_seed(3)
    sample, output = torch.randn(1, 4, 8, 8, generator=generator), torch.randn(1, 4, 8, 8, generator=generator)
    for index in (0, 4, 9):
        x0 = run.to_denoised(output, sample, index)
        assert torch.allclose(run.from_denoised(x0, sample, index), output, atol=1e-4)


def test_stop_from_a_callback_ends_the_stage_and_the_image_is_kept(studio):
    class StopAt(LoopCallback):
        def after_step(self, step):
            if step.step == 1:
                step.stop()

    stopped = run_with(studio, StopAt(), steps=6)
    assert len(stopped.images) == 1 and not np.array_equal(pixels(stopped), pixels(run_with(studio, steps=6)))


def test_after_decode_can_replace_the_images_that_are_saved(studio):
    class Stamp(LoopCallback):
        def after_decode(self, decoded):
            decoded.images = [Image.new("RGB", image.size, (255, 0, 0)) for image in decoded.images]

    result = run_with(studio, Stamp(), save_images=True)
    with Image.open(result.images[0].path) as saved:
        assert saved.getpixel((3, 3)) == (255, 0, 0)


def test_model_patches_are_undone_even_when_the_job_fails(studio):
    events: list[str] = []

    class Patch(LoopCallback):
        @contextlib.contextmanager
        def patch_models(self, stage):
            events.append("on")
            try:
                yield
            finally:
                events.append("off")

        def after_step(self, step):
            raise RuntimeError("a broken extension")

    studio.engine.callbacks = (Patch(),)
    try:
        failed = studio.queue.run(GenerationRequest(**SMALL))
    finally:
        studio.engine.callbacks = ()
    assert "a broken extension" in failed.error
    assert events == ["on", "off"]
    assert studio.generate(GenerationRequest(**SMALL)).images  # the next job runs clean
