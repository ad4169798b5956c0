"""ControlNet units in real jobs: tiny random-weight ControlNets on the tiny checkpoints, no mocks."""

from __future__ import annotations

import base64
import importlib
import io

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from tests.conftest import build_studio
from tests.kit.controlnets import write_controlnet, write_t2i_adapter_like
from webui.control import infotext
from webui.engine.callbacks import LoopCallback
from webui.infotext import parse_infotext
from webui.plugins import context
from webui.plugins.script_set import ScriptArgsError
from webui.request import GenerationRequest
from webui.request_img2img import Img2ImgInput, InpaintSettings

SMALL = dict(prompt="a lighthouse", seed=3, width=64, height=64, steps=2, save_images=False, save_grid=False)


def _b64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def _square() -> Image.Image:
    image = Image.new("RGB", (64, 64), "black")
    ImageDraw.Draw(image).rectangle((16, 16, 47, 47), outline="white", width=3)
    return image


SQUARE = _b64(_square())


@pytest.fixture(scope="module")
def studio(tmp_path_factory, checkpoint_store):
    data = tmp_path_factory.mktemp("controlnet")
    folder = data / "models" / "ControlNet"
    write_controlnet(folder / "control_sd15_tiny.safetensors", "sd1")
    write_controlnet(folder / "control_sd15_other.pth", "sd1", seed=1)
    write_controlnet(folder / "controlnet_sdxl_tiny.safetensors", "sdxl", layout="diffusers")
    write_t2i_adapter_like(folder / "t2iadapter_canny_sd15.safetensors")
    studio = build_studio(data, checkpoint_store, ("sd15", "sd15-inpaint", "sdxl-base"))
    studio.options.update({"sd_model_checkpoint": "sd15"})
    yield studio
    studio.stop()


def unit(**fields) -> dict:
    return {"enabled": True, "module": "canny", "model": "control_sd15_tiny", "image": SQUARE, **fields}


def run(studio, units=None, *callbacks, **fields):
    context.activate(studio.plugins)
    scripts = {"controlnet": {"args": units}} if units is not None else {}
    studio.engine.callbacks = tuple(callbacks)
    try:
        return studio.generate(GenerationRequest(**{**SMALL, **fields}, alwayson_scripts=scripts))
    finally:
        studio.engine.callbacks = ()


def pixels(result, index: int = 0) -> np.ndarray:
    return np.asarray(result.images[index].image.convert("RGB")).astype(int)


def test_weight_zero_is_no_controlnet_and_the_infotext_and_map_are_the_extensions(studio):
    none = run(studio)
    zero = run(studio, [unit(weight=0)])
    full = run(studio, [unit()])
    assert np.array_equal(pixels(zero), pixels(none))
    assert np.abs(pixels(full) - pixels(none)).mean() > 1
    title = studio.controlnets.find("control_sd15_tiny").title
    written = parse_infotext(full.images[0].infotext)["ControlNet 0"]
    assert written == (f"Module: canny, Model: {title}, Weight: 1.0, Resize Mode: Crop and Resize, "
                       "Processor Res: 512, Threshold A: 100.0, Threshold B: 200.0, Guidance Start: 0.0, "
                       "Guidance End: 1.0, Pixel Perfect: False, Control Mode: Balanced")
    assert infotext.parse(written).model == title  # pasting it back restores the unit
    # The detected map follows the image: canny's edges of the drawn square, white on black.
    assert len(full.images) == 2
    edges = pixels(full, 1)
    assert edges.shape == (64, 64, 3) and edges[12:22, 30].max() == 255 and edges[24:40, 24:40].max() == 0
    assert edges[:8].max() == 0  # nothing far from the outline


class Latents(LoopCallback):
    def __init__(self):
        self.steps: list[torch.Tensor] = []

    def after_step(self, step):
        self.steps.append(step.latents.clone())


def test_a_unit_from_half_way_changes_only_the_late_steps(studio):
    none, late, full = Latents(), Latents(), Latents()
    plain = run(studio, None, none, steps=4)
    half = run(studio, [unit(guidance_start=0.5)], late, steps=4)
    whole = run(studio, [unit()], full, steps=4)
    assert all(torch.equal(a, b) for a, b in zip(none.steps[:2], late.steps[:2]))
    assert not torch.equal(none.steps[2], late.steps[2])
    assert not torch.equal(full.steps[0], none.steps[0])
    assert np.abs(pixels(half) - pixels(plain)).mean() > 0.5
    assert np.abs(pixels(half) - pixels(whole)).mean() > 0.5


def test_two_units_with_different_modes_and_models_run_together(studio):
    balanced = run(studio, [unit()])
    guess = run(studio, [unit(control_mode="ControlNet is more important")])
    both = run(studio, [unit(), unit(model="control_sd15_other", control_mode=2, module="invert (from white bg & black line)")])
    assert np.abs(pixels(guess) - pixels(balanced)).mean() > 0.5
    assert np.abs(pixels(both) - pixels(balanced)).mean() > 0.5
    params = parse_infotext(both.images[0].infotext)
    assert "Control Mode: ControlNet is more important" in params["ControlNet 1"]
    assert "Module: invert" in params["ControlNet 1"] and len(both.images) == 3


def test_sdxl_controlnet_on_an_sdxl_checkpoint(studio):
    sdxl = {"override_settings": {"sd_model_checkpoint": "sdxl-base"}}
    plain = run(studio, **sdxl)
    controlled = run(studio, [unit(model="controlnet_sdxl_tiny")], **sdxl)
    assert np.abs(pixels(controlled) - pixels(plain)).mean() > 0.5


def test_hires_option_keeps_a_unit_to_its_pass(studio):
    hires = dict(enable_hr=True, hr_scale=1.5, hr_upscaler="Latent", denoising_strength=0.6)
    plain = run(studio, **hires)
    low = run(studio, [unit(hr_option="Low res only")], **hires)
    both = run(studio, [unit()], **hires)
    assert low.images[0].image.size == (96, 96)
    assert np.abs(pixels(low) - pixels(plain)).mean() > 0.5
    assert np.abs(pixels(both) - pixels(low)).mean() > 0.5  # "Both" also steers the 96×96 pass


def test_inpaint_unit_takes_the_init_image_also_on_an_inpainting_checkpoint(studio):
    mask = Image.new("L", (64, 64), 0)
    ImageDraw.Draw(mask).rectangle((20, 20, 44, 44), fill=255)
    img2img = Img2ImgInput(init_images=[_square()], inpaint=InpaintSettings(mask=mask))
    inpaint_unit = unit(module="inpaint_only", image=None)
    for checkpoint in ("sd15", "sd15-inpaint"):
        fields = dict(img2img=img2img, denoising_strength=0.8, override_settings={"sd_model_checkpoint": checkpoint})
        plain = run(studio, **fields)
        controlled = run(studio, [inpaint_unit], **fields)
        assert np.abs(pixels(controlled) - pixels(plain)).mean() > 0.1, checkpoint


def test_units_that_cannot_run_are_refused_before_queueing(studio):
    context.activate(studio.plugins)
    with pytest.raises(ScriptArgsError, match="unit 1: has no image"):
        studio.submit(GenerationRequest(**SMALL, alwayson_scripts={"controlnet": {"args": [unit(), unit(image=None)]}}))
    with pytest.raises(ScriptArgsError, match="SDXL ControlNet and the checkpoint is SD 1.x"):
        studio.submit(GenerationRequest(**SMALL, alwayson_scripts={"controlnet": {"args": [unit(model="controlnet_sdxl")]}}))
    with pytest.raises(ScriptArgsError, match="server-side file paths are not read"):
        studio.submit(GenerationRequest(**SMALL, alwayson_scripts={"controlnet": {"args": [unit(image="/etc/hosts")]}}))
    with pytest.raises(ScriptArgsError, match="T2I-Adapter"):
        studio.submit(GenerationRequest(**SMALL, alwayson_scripts={"controlnet": {"args": [unit(model="t2iadapter")]}}))


def test_xyz_plot_weight_axis_and_external_code(studio):
    xyz = [ "[ControlNet] Weight", "0, 1", [], "Nothing", "", [], "Nothing", "", [],
           False, True, False, False, False, False, False, 0, False]
    plain = run(studio)
    plot = run(studio, [unit()], script_name="x/y/z plot", script_args=xyz)
    cells = [g for g in plot.images if g.image.size == (64, 64) and "ControlNet 0" in g.infotext]
    assert len(cells) == 2
    assert np.array_equal(pixels(plain), np.asarray(cells[0].image.convert("RGB")).astype(int))
    assert not np.array_equal(pixels(plain), np.asarray(cells[1].image.convert("RGB")).astype(int))

    external = importlib.import_module("extensions.sd-webui-controlnet.scripts.external_code")
    assert studio.controlnets.find("control_sd15_tiny").title in external.get_models()
    scripts = studio.jobs.scripts["txt2img"]
    script = external.find_cn_script(scripts)

    class P:  # what ADetailer hands over: a p with the job's scripts and args
        pass
    p = P()
    p.scripts, p.script_args = scripts, [None] * script.args_to
    external.update_cn_script_in_processing(p, [external.ControlNetUnit(model="control_sd15_tiny", enabled=True)])
    units = external.get_all_units_in_processing(p)
    assert [u.enabled for u in units] == [True] + [False] * (script.args_to - script.args_from - 1)
