"""POST /sdapi/v1/img2img through real HTTP, with A1111's body: img2img, inpaint, bad input."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from tests.integration.test_api import SMALL, assert_error, decode
from tests.integration.test_img2img import box_mask, picture
from webui.infotext import parse_infotext

pytestmark = pytest.mark.timeout(300)


def b64(image: Image.Image, fmt: str = "PNG") -> str:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def img2img(server, **changes) -> dict:
    body = {**SMALL, "steps": 4, "init_images": [b64(picture())], **changes}
    response = server.post("/sdapi/v1/img2img", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def test_an_a1111_client_gets_an_img2img_with_its_infotext(live_server):
    body = img2img(live_server, denoising_strength=0.5)
    image = decode(body["images"][0])
    assert image.size == (64, 64)
    params = parse_infotext(image.info["parameters"])
    assert params["Denoising strength"] == 0.5 and params["Size-1"] == 64
    info = json.loads(body["info"])
    assert info["denoising_strength"] == 0.5
    assert body["parameters"]["init_images"] is None  # left out of the echo unless asked
    echoed = img2img(live_server, include_init_images=True)["parameters"]["init_images"]
    assert echoed and len(echoed) == 1


def test_strength_and_seed_mean_what_they_say(live_server):
    init = np.asarray(picture()).astype(int)
    low = np.asarray(decode(img2img(live_server, denoising_strength=0.2)["images"][0])).astype(int)
    high = np.asarray(decode(img2img(live_server, denoising_strength=0.9)["images"][0])).astype(int)
    again = np.asarray(decode(img2img(live_server, denoising_strength=0.2)["images"][0])).astype(int)
    assert np.abs(low - init).mean() < np.abs(high - init).mean()
    assert np.array_equal(low, again)


def test_inpaint_with_a1111_defaults_keeps_the_rest_of_the_picture(live_server):
    """A1111's API defaults: inpaint_full_res on (only masked), fill, blur 4. A JPEG data URL mask
    of another size is resized to the image."""
    mask = box_mask((128, 128), (64, 64, 112, 112))  # bottom-right quarter, at twice the size
    body = img2img(live_server, mask="data:image/jpeg;base64," + b64(mask.convert("RGB"), "JPEG"),
                   denoising_strength=1.0, inpaint_full_res_padding=8)
    out = np.asarray(decode(body["images"][0])).astype(int)
    init = np.asarray(picture()).astype(int)
    assert out.shape == (64, 64, 3)
    assert np.array_equal(out[:20, :], init[:20, :]) and np.array_equal(out[:, :20], init[:, :20])
    assert np.abs(out[36:56, 36:56] - init[36:56, 36:56]).mean() > 10
    params = parse_infotext(decode(body["images"][0]).info["parameters"])
    assert (params["Inpaint area"], params["Masked content"], params["Mask blur"]) == ("Only masked", "fill", 4)


def test_outpaint_through_the_api(live_server):
    body = img2img(live_server, outpaint={"right": 32, "method": "poor man"})
    assert decode(body["images"][0]).size == (96, 64)


@pytest.mark.parametrize(("changes", "status", "mentions"), [
    ({"init_images": []}, 422, "init_images"),
    ({"init_images": None}, 422, "init_images"),
    ({"init_images": ["not base64 at all!"]}, 422, "base64"),
    ({"init_images": [base64.b64encode(b"GIF89a but not really").decode()]}, 422, "not a readable image"),
    ({"init_images": [""]}, 422, "init_images"),
    ({"mask": "////"}, 422, "mask"),
    ({"inpainting_fill": 7, "mask": None}, 422, "inpainting_fill"),
    ({"resize_mode": 9}, 422, "resize_mode"),
    ({"mask_blur": 500, "mask": "MASK"}, 422, "mask_blur"),
    ({"sampler_name": "PLMS"}, 422, "PLMS"),
    ({"init_images": ["A", "B"], "batch_size": 1}, 422, "2 init images"),
    ({"outpaint": {"right": 4000}}, 422, "outpaint"),
])
def test_bad_img2img_input_is_a_422_with_a_message(live_server, changes, status, mentions):
    changes = dict(changes)
    if changes.get("mask") == "MASK":
        changes["mask"] = b64(box_mask((64, 64), (0, 0, 8, 8)))
    if changes.get("init_images") == ["A", "B"]:
        changes["init_images"] = [b64(picture()), b64(picture(seed=1))]
    response = live_server.post("/sdapi/v1/img2img", json={**SMALL, "init_images": [b64(picture())], **changes})
    assert_error(response, status, mentions)
    assert live_server.get("/sdapi/v1/progress").status_code == 200  # the server is fine


def test_an_image_over_the_pixel_limit_is_refused_before_it_is_queued(live_server):
    huge = Image.new("RGB", (4096, 2048), "white")  # 8 M pixels; the default limit is 2048² = 4 M
    response = live_server.post("/sdapi/v1/img2img", json={**SMALL, "init_images": [b64(huge)]})
    assert_error(response, 422, "limit_pixels_per_image")


def test_an_async_img2img_job_runs_from_its_stored_request(live_server):
    """The job store keeps the request as JSON: the init images must survive that round trip."""
    from tests.kit.servers import wait_for

    body = {**SMALL, "steps": 4, "init_images": [b64(picture())], "denoising_strength": 0.3}
    submitted = live_server.post("/api/v1/jobs/img2img", json=body)
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["id"]
    done = wait_for(lambda: (j := live_server.get(f"/api/v1/jobs/{job_id}").json())["state"] == "done" and j, 120)
    image = Image.open(io.BytesIO(live_server.get(f"/api/v1/jobs/{job_id}/images/0").content))
    sync = decode(img2img(live_server, denoising_strength=0.3)["images"][0])
    assert done["info"]["denoising_strength"] == 0.3
    assert image.tobytes() == sync.tobytes()
