"""Extras: POST /sdapi/v1/extra-single-image and /extra-batch-images over real HTTP, and the tab.

Sizes by scale and by width/height with and without crop, the source's infotext kept with the
postprocessing keys added, two upscalers blended, a batch, clear 422s, files in the Extras folder.
"""

from __future__ import annotations

import base64
import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.integration.test_api import assert_error, decode
from tests.integration.test_img2img import picture
from webui import infotext
from webui.infotext import parse_infotext

pytestmark = pytest.mark.timeout(300)

SOURCE_TEXT = "a lighthouse, at dusk\nNegative prompt: fog\nSteps: 2, Sampler: Euler, CFG scale: 5, Seed: 77, Size: 40x30"


def b64(image: Image.Image, fmt: str = "PNG", text: str | None = SOURCE_TEXT) -> str:
    buffer = io.BytesIO()
    infotext.save_with_infotext(image, buffer, fmt, text)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def single(server, status: int = 200, **body) -> dict:
    response = server.post("/sdapi/v1/extra-single-image", json={"image": b64(picture(40, 30)), **body})
    assert response.status_code == status, response.text
    return response.json()


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def test_scale_by_keeps_the_infotext_and_adds_the_postprocess_keys(live_server):
    body = single(live_server, upscaler_1="lanczos", upscaling_resize=2, gfpgan_visibility=0.5)
    image = decode(body["image"])

    assert image.size == (80, 60)
    assert np.array_equal(pixels(image), pixels(picture(40, 30).resize((80, 60), Image.Resampling.LANCZOS)))
    assert image.info["parameters"] == SOURCE_TEXT  # the source's infotext, untouched
    assert parse_infotext(image.info["parameters"])["Seed"] == 77
    assert image.info["postprocessing"] == "Postprocess upscale by: 2, Postprocess upscaler: Lanczos"
    assert "Postprocess upscaler: Lanczos" in body["html_info"]
    assert "face restor" in body["html_info"].lower()  # GFPGAN asked for: accepted, and said it was not done


def test_scale_to_crops_to_the_box_or_keeps_the_aspect_ratio(live_server):
    source = b64(picture(40, 30), fmt="JPEG")  # the infotext rides in EXIF here
    cropped = decode(single(live_server, image=source, resize_mode=1, upscaling_resize_w=64, upscaling_resize_h=64,
                            upscaling_crop=True, upscaler_1="Nearest")["image"])
    free = decode(single(live_server, image=source, resize_mode=1, upscaling_resize_w=64, upscaling_resize_h=64,
                         upscaling_crop=False, upscaler_1="Nearest")["image"])

    assert free.size == (85, 64)  # scaled by max(64/40, 64/30): covers the box, aspect kept
    assert cropped.size == (64, 64)
    assert np.array_equal(pixels(cropped), pixels(free.crop((10, 0, 74, 64))))  # the centre of it
    assert cropped.info["parameters"] == SOURCE_TEXT
    assert cropped.info["postprocessing"] == ("Postprocess upscale to: 64x64, Postprocess crop to: 64x64, "
                                              "Postprocess upscaler: Nearest")
    assert "crop" not in free.info["postprocessing"]


def test_two_upscalers_are_blended(live_server):
    def run(**changes) -> Image.Image:
        return decode(single(live_server, upscaling_resize=3, **changes)["image"])

    lanczos, nearest = run(upscaler_1="Lanczos"), run(upscaler_1="Nearest")
    both = run(upscaler_1="Lanczos", upscaler_2="Nearest", extras_upscaler_2_visibility=0.5)

    assert both.size == lanczos.size == (120, 90)
    assert not np.array_equal(pixels(both), pixels(lanczos)) and not np.array_equal(pixels(both), pixels(nearest))
    assert np.array_equal(pixels(both), pixels(Image.blend(lanczos.convert("RGB"), nearest.convert("RGB"), 0.5)))
    assert parse_infotext("x\n" + both.info["postprocessing"])["Postprocess upscaler 2"] == "Nearest"


def test_a_batch_returns_every_image_in_order(live_server):
    body = {"upscaler_1": "Lanczos", "upscaling_resize": 2,
            "imageList": [{"data": b64(picture(40, 30)), "name": "first.png"},
                          {"data": b64(picture(24, 32, seed=3), text=None), "name": "second.png"}]}
    response = live_server.post("/sdapi/v1/extra-batch-images", json=body)
    assert response.status_code == 200, response.text
    images = [decode(data) for data in response.json()["images"]]

    assert [image.size for image in images] == [(80, 60), (48, 64)]
    assert images[0].info["parameters"] == SOURCE_TEXT and "parameters" not in images[1].info


def test_bad_requests_are_422_naming_the_field(live_server):
    post = live_server.post
    assert_error(post("/sdapi/v1/extra-single-image", json={"image": "not base64!", "upscaler_1": "Lanczos"}),
                 mentions="image: not valid base64")
    assert_error(post("/sdapi/v1/extra-single-image", json={"image": b64(picture(8, 8)), "upscaler_1": "Bicubic 9x"}),
                 mentions="upscaler_1: unknown upscaler 'Bicubic 9x'")
    oversize = assert_error(post("/sdapi/v1/extra-single-image", json={
        "image": b64(picture(8, 8)), "upscaler_1": "Nearest", "resize_mode": 1,
        "upscaling_resize_w": 16384, "upscaling_resize_h": 16384}), mentions="limit_extras_pixels")
    assert oversize["detail"][0]["loc"] == ["body", "image"]
    assert_error(post("/sdapi/v1/extra-batch-images", json={
        "upscaler_1": "Lanczos", "imageList": [{"data": b64(picture(8, 8)), "name": "a.png"},
                                               {"data": "@@@", "name": "b.png"}]}), mentions="imageList.1.data")


def test_the_tab_saves_into_the_extras_folder_with_a_model_upscaler(make_studio, tmp_path):
    from tests.kit.upscalers import write_esrgan
    from webui.auth.users import User
    from webui.extras import ExtrasSettings
    from webui.ui.extras_tab import BATCH, SINGLE, run_extras

    write_esrgan(tmp_path / "models" / "ESRGAN" / "tiny-4x.safetensors", scale=4)
    studio = make_studio(start=False)
    source = tmp_path / "in" / "dusk.png"
    source.parent.mkdir()
    picture(16, 16).save(source, pnginfo=infotext.embed_infotext_png(SOURCE_TEXT))
    admin = User("local", "admin")

    saved, text = run_extras(studio, admin, SINGLE, ExtrasSettings(upscaler_1="tiny-4x", upscaling_resize=4),
                             image=str(source))
    (path,) = saved
    assert path.parent == tmp_path / "outputs" / "extras-images"
    assert text == "Postprocess upscale by: 4, Postprocess upscaler: tiny-4x"
    with Image.open(path) as made:
        assert made.size == (64, 64)
        assert made.info["parameters"] == SOURCE_TEXT and made.info["extras"] == text
        by_model = pixels(made)
    assert not np.array_equal(by_model, pixels(picture(16, 16).resize((64, 64), Image.Resampling.LANCZOS)))

    # A batch keeps the uploaded files' names.
    saved, _ = run_extras(studio, admin, BATCH, ExtrasSettings(upscaler_1="Nearest", upscaling_resize=2),
                          files=[str(source)])
    assert [p.name for p in saved] == ["dusk.png"] and saved[0].parent == path.parent


def test_the_tab_through_the_gradio_client(live_server):
    pytest.importorskip("gradio_client")
    from gradio_client import Client, handle_file

    source = live_server.data_dir / "extras-source.png"
    picture(20, 10).save(source, pnginfo=infotext.embed_infotext_png(SOURCE_TEXT))
    client = Client(live_server.base_url, verbose=False, download_files=True)
    try:
        gallery, html = client.predict(
            mode=0, image=handle_file(str(source)), files=[], input_dir="", output_dir="", show_results=True,
            resize_mode=0, upscaling_resize=2, upscaling_resize_w=512, upscaling_resize_h=512, upscaling_crop=True,
            upscaler_1="Lanczos", upscaler_2="None", upscaler_2_visibility=0, api_name="/extras")
    finally:
        client.close()
    assert "sd-error" not in html, html
    assert "Postprocess upscaler: Lanczos" in html
    with Image.open(gallery[0]["image"]) as shown:
        assert shown.size == (40, 20) and shown.info["parameters"] == SOURCE_TEXT
        shown_bytes = Path(gallery[0]["image"]).read_bytes()
    saved = list((live_server.data_dir / "outputs" / "extras-images").glob("*.png"))
    assert any(p.read_bytes() == shown_bytes for p in saved)  # what the page shows is the saved file


def header_only_png(width: int, height: int) -> str:
    """A PNG whose header says ``width`` × ``height`` but whose pixel data is cut short: reading its
    size is fine, decoding it fails (so a limit that answers first never decoded it)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    return base64.b64encode(png).decode("ascii")


def test_sizes_are_checked_from_the_headers_before_any_image_is_decoded(live_server):
    # 8192x8192 (268 MB decoded) shrunk to 0.5: the result would fit, the input does not.
    for path, body in [
        ("/sdapi/v1/extra-batch-images", {"imageList": [{"data": b64(picture(8, 8)), "name": "a.png"},
                                                        {"data": header_only_png(8192, 8192), "name": "b.png"}]}),
        ("/sdapi/v1/extra-single-image", {"image": header_only_png(8192, 8192)}),
    ]:
        refused = assert_error(live_server.post(path, json={"upscaler_1": "Lanczos", "upscaling_resize": 0.5, **body}),
                               mentions="8192x8192 = 67108864 pixels; the limit (limit_extras_pixels)")
        assert refused["error"] == "LimitExceeded"  # not "not a readable image": it was never decoded


def test_a_batch_may_make_at_most_four_times_the_pixel_limit_in_all(live_server, restore_options):
    assert live_server.post("/sdapi/v1/options", json={"limit_extras_pixels": 4096}).status_code == 200
    body = {"upscaler_1": "Nearest", "upscaling_resize": 8}  # 8x8 → 64x64 = 4096 pixels each, at the limit
    image = {"data": b64(picture(8, 8), text=None), "name": "a.png"}
    refused = live_server.post("/sdapi/v1/extra-batch-images", json={**body, "imageList": [image] * 5})
    assert_error(refused, mentions="20480 pixels together")
    fits = live_server.post("/sdapi/v1/extra-batch-images", json={**body, "imageList": [image] * 4})
    assert fits.status_code == 200, fits.text
    assert [decode(data).size for data in fits.json()["images"]] == [(64, 64)] * 4


def test_a_factor_below_one_shrinks_the_image_as_in_a1111(live_server):
    body = single(live_server, upscaler_1="Lanczos", upscaling_resize=0.5)
    image = decode(body["image"])
    assert image.size == (20, 15)
    assert np.array_equal(pixels(image), pixels(picture(40, 30).resize((20, 15), Image.Resampling.LANCZOS)))
    assert image.info["postprocessing"] == "Postprocess upscale by: 0.5, Postprocess upscaler: Lanczos"
    assert_error(live_server.post("/sdapi/v1/extra-single-image", json={"image": b64(picture(8, 8)),
                                                                         "upscaling_resize": 0}), mentions="greater than 0")
