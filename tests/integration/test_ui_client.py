"""The Gradio UI's named events, driven with gradio_client against the real server.

The txt2img event must hand back the saved PNG (with its A1111 infotext), show bad requests as a
message instead of raising, and the Settings tab's Apply must persist to config.json.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pytest
from PIL import Image

pytest.importorskip("gradio_client")
from gradio_client import Client  # noqa: E402

from webui.settings import OPTIONS  # noqa: E402

TINY = dict(steps=2, width=64, height=64, cfg_scale=5.0, sampler_name="Euler", scheduler="Automatic",
            n_iter=1, batch_size=1, subseed=-1, subseed_strength=0.0, seed_resize_from_w=0, seed_resize_from_h=0)


@pytest.fixture(scope="module")
def client(live_server) -> Iterator[Client]:
    client = Client(live_server.base_url, verbose=False, download_files=True)
    yield client
    client.close()  # its open event stream would otherwise hold up the server's shutdown


def _txt2img(client: Client, **fields) -> tuple:
    values = {**TINY, "prompt": "", "negative_prompt": "", "seed": -1, **fields}
    return client.predict(**values, api_name="/txt2img")


def test_txt2img_returns_saved_png_with_infotext(client: Client, live_server) -> None:
    gallery, info, log, _progress, _preview = _txt2img(client, prompt="a lighthouse at dusk", seed=4242)

    assert "sd-error" not in log, log
    assert "Time taken" in log
    assert len(gallery) == 1
    downloaded = Path(gallery[0]["image"])
    with Image.open(downloaded) as image:
        assert image.format == "PNG"
        assert image.size == (64, 64)
        parameters = image.info["parameters"]
    assert parameters.startswith("a lighthouse at dusk\n")
    assert "Seed: 4242" in parameters and "Steps: 2" in parameters
    assert info == parameters  # the info box shows the selected (first) image's infotext

    # What Gradio served is the very file the engine saved under the data dir.
    saved = [p for p in (live_server.data_dir / "outputs").rglob("*-4242.png")]
    assert any(p.read_bytes() == downloaded.read_bytes() for p in saved)


def test_txt2img_bad_request_shows_a_message(client: Client) -> None:
    # LCM runs on its model's own timesteps: a Karras schedule cannot apply (API clients can ask).
    gallery, info, log, _progress, _preview = _txt2img(client, prompt="x", sampler_name="LCM", scheduler="Karras")

    assert "sd-error" in log
    assert "Karras" in log and "LCM" in log
    assert not isinstance(gallery, list) or gallery == []  # no images, the previous ones left alone


def test_txt2img_batch_shows_grid_first(client: Client) -> None:
    gallery, info, log, *_ = _txt2img(client, prompt="pair", seed=7, batch_size=2)

    assert "sd-error" not in log, log
    assert len(gallery) == 3  # grid, then both images
    with Image.open(gallery[0]["image"]) as grid:
        assert grid.size == (128, 64)
    seeds = []
    for item in gallery[1:]:
        with Image.open(item["image"]) as image:
            seeds.append(image.info["parameters"].split("Seed: ")[1].split(",")[0])
    assert seeds == ["7", "8"]


def _settings_values(live_server, **changes) -> list:
    current = {**live_server.get("/sdapi/v1/options").json(), **changes}
    return [current[key] for key, info in OPTIONS.items() if not info.hidden]  # one control per shown option


@pytest.mark.usefixtures("restore_options")
def test_apply_settings_persists_to_config_json(client: Client, live_server) -> None:
    before = live_server.get("/sdapi/v1/options").json()
    new_steps = 12 if before["txt2img_default_steps"] != 12 else 13
    values = _settings_values(live_server, txt2img_default_steps=new_steps, return_grid=not before["return_grid"])

    message = client.predict(*values, api_name="/apply_settings")

    assert message.startswith("2 settings changed"), message
    stored = json.loads((live_server.data_dir / "config.json").read_text())
    assert stored["txt2img_default_steps"] == new_steps
    assert stored["return_grid"] is (not before["return_grid"])
    assert live_server.get("/sdapi/v1/options").json()["txt2img_default_steps"] == new_steps


@pytest.mark.usefixtures("restore_options")
def test_apply_settings_error_is_shown_and_nothing_changes(client: Client, live_server) -> None:
    before = json.loads((live_server.data_dir / "config.json").read_text())
    values = _settings_values(live_server, sd_vae="no-such-vae.safetensors", txt2img_default_steps=33)

    message = client.predict(*values, api_name="/apply_settings")

    assert message.startswith("❌") and "no-such-vae" in message, message
    after = json.loads((live_server.data_dir / "config.json").read_text())
    assert after.get("sd_vae") == before.get("sd_vae")
