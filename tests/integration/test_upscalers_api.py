"""Upscaler listings as A1111 serves them, and hires fix with a model upscaler through the API."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.conftest import build_studio
from tests.integration.test_api import SMALL, assert_error, decode
from tests.kit.upscalers import write_compact, write_esrgan
from webui.app import GenerationFailed
from webui.infotext import parse_infotext
from webui.request import GenerationRequest
from webui.server import create_app
from webui.ui.hires_ui import _upscalers
from webui.upscaling import Upscalers

pytestmark = pytest.mark.timeout(300)

HIRES = {**SMALL, "enable_hr": True, "hr_scale": 1.5, "hr_second_pass_steps": 2, "denoising_strength": 0.3}


@pytest.fixture(scope="module")
def client(tmp_path_factory, checkpoint_store):
    data_dir = tmp_path_factory.mktemp("upscalers-api")
    write_esrgan(data_dir / "models" / "ESRGAN" / "4x_tiny.pth")
    write_compact(data_dir / "models" / "RealESRGAN" / "realesr-general-x4v3.pth")
    studio = build_studio(data_dir, checkpoint_store, ("sd15",), start=False)
    with TestClient(create_app(studio, with_ui=False), base_url="http://127.0.0.1") as client:
        client.data_dir = data_dir
        client.studio = studio
        yield client


def txt2img(client, **changes) -> dict:
    response = client.post("/sdapi/v1/txt2img", json={**HIRES, **changes})
    assert response.status_code == 200, response.text
    return response.json()


def test_listings_have_a1111s_shapes(client):
    upscalers = client.get("/sdapi/v1/upscalers").json()
    assert [u["name"] for u in upscalers] == ["None", "Lanczos", "Nearest", "4x_tiny", "realesr-general-x4v3"]
    assert upscalers[0] == {"name": "None", "model_name": None, "model_path": None, "model_url": None, "scale": 4}
    esrgan = upscalers[3]
    assert set(esrgan) == {"name", "model_name", "model_path", "model_url", "scale"}
    assert (esrgan["model_name"], esrgan["model_url"], esrgan["scale"]) == ("ESRGAN", None, 4)
    assert esrgan["model_path"] == str(client.data_dir / "models" / "ESRGAN" / "4x_tiny.pth")  # admin: full path
    modes = client.get("/sdapi/v1/latent-upscale-modes").json()
    assert modes[0] == {"name": "Latent"} and {"name": "Latent (nearest-exact)"} in modes and len(modes) == 6
    realesrgan = client.get("/sdapi/v1/realesrgan-models").json()
    assert realesrgan == [{"name": "realesr-general-x4v3", "scale": 4,
                           "path": str(client.data_dir / "models" / "RealESRGAN" / "realesr-general-x4v3.pth")}]
    assert client.get("/sdapi/v1/face-restorers").json() == []


def test_refresh_lists_a_new_file(client):
    path = write_compact(client.data_dir / "models" / "SwinIR" / "zz_new.pth")
    try:
        assert "zz_new" not in [u["name"] for u in client.get("/sdapi/v1/upscalers").json()]
        assert client.post("/sdapi/v1/refresh-upscalers").status_code == 200
        assert "zz_new" in [u["name"] for u in client.get("/sdapi/v1/upscalers").json()]
    finally:
        path.unlink()
        client.post("/sdapi/v1/refresh-upscalers")


def test_hires_fix_with_a_model_upscaler_and_its_infotext_round_trip(client):
    body = txt2img(client, hr_upscaler="4X_Tiny")  # names match case-insensitively, as A1111's
    image = decode(body["images"][0])
    assert image.size == (96, 96)
    params = parse_infotext(image.info["parameters"])
    assert (params["Hires upscaler"], params["Hires upscale"], params["Size"]) == ("4x_tiny", 1.5, "64x64")
    # The infotext alone regenerates the same picture.
    again = client.post("/sdapi/v1/txt2img", json={"infotext": image.info["parameters"], "steps": 2,
                                                   "save_images": False}).json()
    assert decode(again["images"][0]).tobytes() == image.tobytes()
    # The model really enlarged the first pass: Lanczos gives another picture from the same seed.
    lanczos = decode(txt2img(client, hr_upscaler="Lanczos")["images"][0])
    assert np.abs(np.asarray(lanczos, dtype=np.float32) - np.asarray(image, dtype=np.float32)).mean() > 2


def test_an_unknown_upscaler_is_a_422_naming_the_field(client):
    body = assert_error(client.post("/sdapi/v1/txt2img", json={**HIRES, "hr_upscaler": "R-ESRGAN 4x+"}), 422,
                        "unknown upscaler")
    assert body["detail"][0]["loc"] == ["body", "hr_upscaler"]
    assert "4x_tiny" in body["message"] and "Latent (bicubic)" in body["message"]  # the choices
    # Ignored when hires fix is off, as A1111.
    off = client.post("/sdapi/v1/txt2img", json={**HIRES, "enable_hr": False, "hr_upscaler": "R-ESRGAN 4x+"})
    assert off.status_code == 200 and decode(off.json()["images"][0]).size == (64, 64)


def test_the_engine_refuses_an_unknown_upscaler_before_it_starts(client):
    """Requests that do not come through the API (scripts, extensions) meet the same check in the engine."""
    request = GenerationRequest(prompt="a cat", steps=2, width=64, height=64, save_images=False, enable_hr=True,
                                hr_upscaler="4x_gone")  # the request itself has no catalog to ask
    with pytest.raises(GenerationFailed, match="unknown upscaler '4x_gone'.*4x_tiny"):
        client.studio.generate(request)


def test_the_hires_dropdown_lists_latent_modes_then_upscalers(tmp_path):
    class View:  # what the accordion reads of a studio: its upscaler service
        upscalers = Upscalers.for_models_dir(tmp_path)

    write_compact(tmp_path / "DAT" / "4x_dat_like.pth")  # found by the refresh the dropdown does
    names = _upscalers(View())
    assert names[:6] == ["Latent", "Latent (antialiased)", "Latent (bicubic)", "Latent (bicubic antialiased)",
                         "Latent (nearest)", "Latent (nearest-exact)"]
    assert names[6:] == ["None", "Lanczos", "Nearest", "4x_dat_like"]
