"""The img2img scripts (SD upscale, Outpainting mk2, Poor man's outpainting, Loopback) through
POST /sdapi/v1/img2img with A1111's positional script_args, on the tiny sd15 model."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from tests.integration.test_api import SMALL, assert_error, decode
from tests.integration.test_api_img2img import b64
from tests.integration.test_img2img import picture
from webui.infotext import parse_infotext

pytestmark = pytest.mark.timeout(300)

BASE = {**SMALL, "steps": 2, "denoising_strength": 0.5}


def run_script(server, name: str, args: list, **changes) -> dict:
    body = {**BASE, "init_images": [b64(picture())], "script_name": name, "script_args": args, **changes}
    response = server.post("/sdapi/v1/img2img", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def pixels(image) -> np.ndarray:
    return np.asarray(image.convert("RGB")).astype(int)


def test_sd_upscale_makes_the_image_scale_times_larger_from_tiles(live_server):
    # A 64x64 input, x2 with Lanczos (index 1), in 64x64 tiles without overlap: 2x2 tiles, run two
    # at a time (batch size 2); batch count 2 makes two results, from seeds 1234 and 1235.
    body = run_script(live_server, "SD upscale", ["", 0, 1, 2], batch_size=2, n_iter=2)
    images = [decode(i) for i in body["images"]]
    assert [i.size for i in images] == [(128, 128), (128, 128)]
    params = [parse_infotext(i.info["parameters"]) for i in images]
    assert params[0]["SD upscale overlap"] == 0 and params[0]["SD upscale upscaler"] == "Lanczos"
    assert json.loads(body["info"])["all_seeds"] == [1234, 1235]
    upscaled = pixels(picture().resize((128, 128), Image.Resampling.LANCZOS))
    first, second = pixels(images[0]), pixels(images[1])
    assert np.abs(first - upscaled).mean() > 2  # the tiles were repainted...
    assert np.abs(first - second).mean() > 2  # ...each result from its own seed


def test_outpainting_mk2_grows_the_chosen_sides_and_keeps_the_picture(live_server):
    # 32 px to the left of a 64x64 image: A1111 rounds the canvas to 128 wide (64 new columns).
    body = run_script(live_server, "Outpainting mk2", ["", 32, 4, ["left"], 1.0, 0.05], denoising_strength=0.9)
    out = decode(body["images"][0])
    assert out.size == (128, 64)
    kept = pixels(out)[:, 64 + 16:]  # the original area, away from the seam
    assert np.abs(kept - pixels(picture())[:, 16:]).max() <= 2
    assert parse_infotext(out.info["parameters"])["Outpaint"].startswith("mk2 left 64 right 0")


def test_poor_mans_outpainting_grows_up_and_down(live_server):
    body = run_script(live_server, "Poor man's outpainting", [16, 2, "original", ["up", "down"]])
    out = decode(body["images"][0])
    assert out.size == (64, 128)  # 64 + 16 + 16 → 128: 32 rows on each side
    assert np.abs(pixels(out)[32 + 8:96 - 8] - pixels(picture())[8:56]).max() <= 2


def test_loopback_feeds_each_result_back(live_server):
    body = run_script(live_server, "Loopback", [3, 0.3, "Linear", "None"], denoising_strength=0.6)
    images = [decode(i) for i in body["images"]]
    info = json.loads(body["info"])
    assert len(images) == 4 and images[0].size == (192, 64)  # one-row grid of the 3 loops, then each loop
    loops = [pixels(i) for i in images[1:]]
    assert all(np.abs(a - b).mean() > 0.5 for a, b in zip(loops, loops[1:]))
    strengths = [parse_infotext(i.info["parameters"])["Denoising strength"] for i in images[1:]]
    assert strengths == pytest.approx([0.6, 0.45, 0.3])
    seeds = [parse_infotext(i.info["parameters"])["Seed"] for i in images[1:]]
    assert seeds == [1234, 1235, 1236] and info["all_seeds"] == seeds
    params = parse_infotext(images[1].info["parameters"])
    assert params["Final denoising strength"] == 0.3 and params["Denoising curve"] == "Linear"


@pytest.mark.parametrize(("name", "args", "mentions"), [
    ("SD upscale", ["", 16, 99, 2], "index 99 is out of range"),
    ("SD upscale", ["", 16, "Bicubic", 2], "'Bicubic' is not one of"),
    ("SD upscale", ["", 64, 1, 2], "overlap"),
    ("SD upscale", ["", 48, 1, 8], "tiles; the most is"),
    ("Outpainting mk2", ["", 32, 4, ["north"], 1.0, 0.05], "'north'"),
    ("Poor man's outpainting", [32, 4, 9, ["left"]], "Masked content"),
    ("Loopback", [3, 0.3, "Linear", "CLIP"], "not available"),
    ("Loopback", [0, 0.3, "Linear", "None"], "Loops must be from 1"),
])
def test_bad_script_args_are_a_422_with_a_sentence(live_server, name, args, mentions):
    body = {**BASE, "init_images": [b64(picture())], "script_name": name, "script_args": args}
    response = live_server.post("/sdapi/v1/img2img", json=body)
    assert_error(response, 422, mentions)
    assert name.lower() in response.json()["message"].lower()


def test_the_scripts_are_img2img_only(live_server):
    response = live_server.post("/sdapi/v1/txt2img", json={**BASE, "script_name": "SD upscale"})
    assert_error(response, 422, "not found")
    titles = live_server.get("/sdapi/v1/scripts").json()
    assert {"sd upscale", "outpainting mk2", "poor man's outpainting", "loopback"} <= {
        t.lower() for t in titles["img2img"]}


def test_sd_upscale_with_a_model_never_overshoots_the_upscaled_size(tmp_path, monkeypatch):
    # SD upscale gets its upscaled image from upscaler_choice.upscale_to(init, size, name), checking
    # only `size` against limit_extras_pixels: the passes on the way must stay near it. A 2× model
    # at 3× used to make 4× first (64x64, then down to 48x48).
    from tests.kit.upscalers import write_esrgan
    from webui.scripts import upscaler_choice
    from webui.upscaling import Upscalers

    write_esrgan(tmp_path / "ESRGAN" / "tiny-2x.safetensors", scale=2)
    service = Upscalers.for_models_dir(tmp_path)
    made, run = [], service._run

    def recorded(*args):
        out = run(*args)
        made.append(out.size)
        return out

    monkeypatch.setattr(service, "_run", recorded)
    monkeypatch.setattr(upscaler_choice, "_service", lambda: service)

    init = picture(16, 16)
    size = (round(init.width * 3), round(init.height * 3))  # sd_upscale's _plan
    assert upscaler_choice.upscale_to(init, size, "tiny-2x").size == (48, 48)
    assert len(made) == 2 and all(w <= 48 + 1 and h <= 48 + 1 for w, h in made), made  # 32², then 48²
