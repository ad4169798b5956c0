"""PNG Info: generate → read the image's infotext back → fill the form as ↙ / Send to do →
generate again gives the same pixels; JPEG/WEBP EXIF and damaged files."""

from __future__ import annotations

import base64
import inspect
import io
from typing import Iterator

import numpy as np
import piexif
import piexif.helper
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

pytest.importorskip("gradio_client")
from gradio import utils as gradio_utils  # noqa: E402
from gradio_client import Client  # noqa: E402

from webui.ui.paste_fields import PasteTarget  # noqa: E402
from webui.ui.paste_params import fields_from_infotext  # noqa: E402
from webui.ui.png_info_tab import read_upload  # noqa: E402


@pytest.fixture(scope="module")
def client(live_server) -> Iterator[Client]:
    client = Client(live_server.base_url, verbose=False, download_files=True)
    yield client
    client.close()


def _pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


def _png_info(live_server, data: bytes) -> dict:
    response = live_server.post("/sdapi/v1/png-info", json={"image": base64.b64encode(data).decode()})
    assert response.status_code == 200, response.text
    return response.json()


def _form_fields(client: Client) -> set[str]:
    """The txt2img form's named parameters (the UI's Generate event)."""
    api = client.view_api(print_info=False, return_format="dict")
    return {p["parameter_name"] for p in api["named_endpoints"]["/txt2img"]["parameters"]}


def test_an_image_pasted_back_into_txt2img_renders_the_same_pixels(live_server, client: Client) -> None:
    # Every field that matters differs from the form's defaults; hires fix too (one run: tests are slow here).
    body = dict(prompt="a lighthouse, \"stormy\": night", negative_prompt="blurry, lowres", steps=2, width=64,
                height=72, sampler_name="DPM++ 2M", scheduler="Karras", cfg_scale=5.5, seed=424242, subseed=77,
                subseed_strength=0.3, enable_hr=True, hr_scale=1.5, hr_upscaler="Latent (bicubic)",
                hr_second_pass_steps=2, denoising_strength=0.55, hr_sampler_name="Euler", hr_prompt="a lighthouse, sharp")
    made = live_server.post("/sdapi/v1/txt2img", json=body)
    assert made.status_code == 200, made.text
    first = base64.b64decode(made.json()["images"][0])

    info = _png_info(live_server, first)
    parsed = info["parameters"]
    assert (parsed["Sampler"], parsed["Schedule type"], parsed["Seed"]) == ("DPM++ 2M", "Karras", 424242)
    assert (parsed["Size-1"], parsed["Size-2"], parsed["Variation seed"]) == (64, 72, 77)

    # ↙ / Send to / PNG Info's table, for the txt2img form's fields, then the form itself.
    names = _form_fields(client)
    values, problems = fields_from_infotext(info["info"], target=PasteTarget(frozenset(names)))
    assert problems == []
    assert values["enable_hr"] is True and values["subseed_strength"] == 0.3
    assert (values["hr_scale"], values["hr_upscaler"], values["hr_sampler_name"]) == (1.5, "Latent (bicubic)", "Euler")
    assert values["hr_prompt"] == "a lighthouse, sharp" and values["seed_resize_from_w"] == 0
    gallery, _info, log, *_ = client.predict(**{"n_iter": 1, **values}, api_name="/txt2img")
    assert "sd-error" not in log, log
    with open(gallery[0]["image"], "rb") as f:
        again = f.read()
    assert _pixels(again).shape == _pixels(first).shape == (104, 96, 3)  # 72 × 1.5, in steps of 8
    assert np.array_equal(_pixels(again), _pixels(first))
    # And the second image says the same (but for the clock-free keys, everything).
    assert _png_info(live_server, again)["info"] == info["info"]


def _exif(text: str) -> bytes:
    return piexif.dump({"0th": {piexif.ImageIFD.Make: b"Studio Camera", piexif.ImageIFD.Software: b"sd-studio"},
                        "Exif": {piexif.ExifIFD.UserComment: piexif.helper.UserComment.dump(text, encoding="unicode")}})


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP"])
def test_jpeg_and_webp_carry_the_infotext_in_exif(live_server, fmt: str) -> None:
    text = "a fox, \"red\"\nNegative prompt: dull\nSteps: 3, Sampler: Euler a, CFG scale: 6, Seed: 9, Size: 32x48"
    buffer = io.BytesIO()
    Image.new("RGB", (32, 48), (200, 40, 40)).save(buffer, format=fmt, exif=_exif(text))
    body = _png_info(live_server, buffer.getvalue())
    assert body["info"] == text
    assert body["parameters"]["Prompt"] == 'a fox, "red"' and body["parameters"]["Size-2"] == 48
    assert body["items"]["exif comment"] == text  # as A1111 lists it
    assert body["items"]["Make"] == "Studio Camera" and body["items"]["Software"] == "sd-studio"


def test_other_png_chunks_are_listed_and_a_plain_image_has_none(live_server) -> None:
    buffer = io.BytesIO()
    chunks = PngInfo()
    chunks.add_text("Comment", "made by hand")
    Image.new("RGB", (16, 16)).save(buffer, format="PNG", pnginfo=chunks)
    body = _png_info(live_server, buffer.getvalue())
    assert body["info"] == "" and body["items"] == {"Comment": "made by hand"}
    assert body["parameters"]["Prompt"] == "" and body["parameters"]["Clip skip"] == 1  # A1111 parses "" too


def test_a_damaged_image_is_a_422_over_http_and_a_message_in_the_tab(live_server) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (1, 2, 3)).save(buffer, format="PNG", pnginfo=PngInfo())
    cut = buffer.getvalue()[:60]  # the header survives, the pixels do not
    response = live_server.post("/sdapi/v1/png-info", json={"image": base64.b64encode(cut).decode()})
    assert response.status_code == 422 and "image" in response.text

    folder = gradio_utils.get_upload_folder()
    for name, data in (("cut.png", cut), ("notes.png", b"just some text")):
        path = f"{folder}/test-png-info-{name}"
        with open(path, "wb") as f:
            f.write(data)
        text, shown = read_upload({"path": path})
        assert text == "" and "sd-error" in shown and "not a readable image" in shown
    # A path outside Gradio's uploads is never opened.
    assert read_upload({"path": inspect.getfile(Image)}) == ("", "")
