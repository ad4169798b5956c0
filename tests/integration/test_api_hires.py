"""Hires fix, the refiner and extra-network problems through A1111's API, as its clients send them."""

from __future__ import annotations

import json

import pytest

from tests.integration.test_api import SMALL, assert_error, decode, txt2img
from webui.infotext import parse_infotext

pytestmark = pytest.mark.timeout(300)


def test_an_a1111_client_asking_for_hires_fix_gets_twice_the_size(live_server):
    body = txt2img(live_server, enable_hr=True)  # 64x64, hr_scale defaults to 2 as in A1111
    image = decode(body["images"][0])
    assert image.size == (128, 128)
    params = parse_infotext(image.info["parameters"])
    assert (params["Size"], params["Hires upscale"], params["Hires upscaler"]) == ("64x64", 2, "Latent")
    assert params["Denoising strength"] == 0.75  # A1111's API default
    info = json.loads(body["info"])
    assert info["denoising_strength"] == 0.75 and info["extra_generation_params"]["Hires upscale"] == 2
    # png-info reads the keys back as A1111 does.
    read = live_server.post("/sdapi/v1/png-info", json={"image": body["images"][0]}).json()["parameters"]
    assert read["Hires upscaler"] == "Latent" and read["Size-1"] == 64


def test_hires_settings_from_infotext_regenerate_the_same_image(live_server):
    first = txt2img(live_server, enable_hr=True, hr_resize_x=96, hr_resize_y=96, hr_upscaler="Lanczos",
                    hr_second_pass_steps=2, denoising_strength=0.5)
    text = decode(first["images"][0]).info["parameters"]
    again = txt2img(live_server, infotext=text, **{k: v for k, v in SMALL.items() if k not in ("prompt", "seed")})
    assert decode(again["images"][0]).size == (96, 96)
    assert decode(again["images"][0]).tobytes() == decode(first["images"][0]).tobytes()


def test_refiner_through_the_api(live_server):
    body = txt2img(live_server, steps=4, refiner_checkpoint="sdxl-base.safetensors", refiner_switch_at=0.5)
    params = parse_infotext(decode(body["images"][0]).info["parameters"])
    assert params["Refiner"].startswith("sdxl-base [") and params["Refiner switch at"] == 0.5
    assert params["Model"] == "sd15"


@pytest.mark.parametrize(("changes", "mentions"), [
    ({"prompt": "a cat <lora:x:nan>"}, "not a finite number"),
    ({"prompt": "a cat <lora:x:1:inf>"}, "not a finite number"),
    ({"enable_hr": True, "hr_upscaler": "R-ESRGAN 4x+"}, "unknown upscaler"),
    ({"enable_hr": True, "hr_checkpoint_name": "nope.safetensors"}, "checkpoint not found"),
    ({"refiner_checkpoint": "nope.safetensors"}, "checkpoint not found"),
    ({"enable_hr": True, "hr_scale": 64}, "hr_scale"),
    ({"enable_hr": True, "width": 2048, "height": 2048}, "2048"),
])
def test_bad_hires_refiner_and_network_input_is_a_422(live_server, changes, mentions):
    assert_error(live_server.post("/sdapi/v1/txt2img", json={**SMALL, **changes}), 422, mentions)


def test_hires_fields_are_ignored_when_hires_fix_is_off(live_server):
    body = txt2img(live_server, enable_hr=False, hr_upscaler="R-ESRGAN 4x+", hr_scale=2)
    assert decode(body["images"][0]).size == (64, 64)


def test_missing_networks_are_warnings_in_info(live_server):
    body = txt2img(live_server, prompt="a cat <lora:does-not-exist:1> <hypernet:nor-this:1>")
    info = json.loads(body["info"])
    assert "Lora not found: does-not-exist" in info["warnings"]
    assert "Hypernetwork not found: nor-this" in info["warnings"]
