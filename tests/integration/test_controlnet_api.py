"""sd-webui-controlnet's API through real HTTP: its routes and the alwayson payload, and its 422s."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image, ImageDraw

from tests.kit.controlnets import write_controlnet

TINY = dict(prompt="a lighthouse", width=64, height=64, steps=2, sampler_name="Euler", seed=4,
            override_settings={"sd_model_checkpoint": "sd15"})


@pytest.fixture(scope="module")
def server(live_server):
    folder = live_server.data_dir / "models" / "ControlNet"
    write_controlnet(folder / "control_api_sd15.safetensors", "sd1")
    write_controlnet(folder / "control_api_sdxl.safetensors", "sdxl", layout="diffusers")
    yield live_server


def _square() -> str:
    image = Image.new("RGB", (64, 64), "black")
    ImageDraw.Draw(image).rectangle((16, 16, 47, 47), outline="white", width=3)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _txt2img(server, *units):
    return server.post("/sdapi/v1/txt2img", json={**TINY, "alwayson_scripts": {"controlnet": {"args": list(units)}}})


def test_routes_answer_in_the_extensions_shapes(server):
    assert server.get("/controlnet/version").json() == {"version": 3}
    assert server.get("/controlnet/settings").json() == {"control_net_unit_count": 3}
    models = server.get("/controlnet/model_list").json()["model_list"]  # update=true rescans the folder
    assert "None" not in models
    assert [m.split(" [")[0] for m in models if m.startswith("control_api")] == ["control_api_sd15", "control_api_sdxl"]
    assert all(m.endswith("]") and len(m.split(" [")[1]) == 9 for m in models)


def test_alwayson_payload_generates_with_the_unit_and_its_map(server):
    server.get("/controlnet/model_list")
    unit = {"enabled": True, "module": "canny", "model": "control_api_sd15", "input_image": _square(),
            "lowvram": False, "guidance": 0.9}
    answer = _txt2img(server, unit)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert len(body["images"]) == 2  # the image and canny's detected map
    infotext = body["info"]
    assert '"Module: canny, Model: control_api_sd15 [' in infotext and "Guidance End: 0.9" in infotext
    plain = server.post("/sdapi/v1/txt2img", json=TINY).json()
    off = _txt2img(server, {**unit, "enabled": False}).json()
    assert off["images"] == plain["images"] and body["images"][0] != plain["images"][0]


@pytest.mark.parametrize("unit, message", [
    ({"enabled": True, "module": "canny", "model": "control_api_sd15"}, "unit 0: has no image"),
    ({"enabled": True, "module": "canny", "model": "control_api_sdxl", "image": "SQUARE"},
     "SDXL ControlNet and the checkpoint is SD 1.x"),
    ({"enabled": True, "module": "canny", "model": "control_api_sd15", "image": "../../config.json"},
     "server-side file paths are not read"),
    ({"enabled": True, "module": "no_such_module", "model": "control_api_sd15", "image": "SQUARE"},
     "module 'no_such_module' not found"),
])
def test_units_that_cannot_run_are_422s(server, unit, message):
    server.get("/controlnet/model_list")
    if unit.get("image") == "SQUARE":
        unit = {**unit, "image": _square()}
    answer = _txt2img(server, {"enabled": False}, unit)
    assert answer.status_code == 422
    detail = str(answer.json()["detail"])
    assert message.replace("unit 0", "unit 1") in detail and "alwayson_scripts" in detail
