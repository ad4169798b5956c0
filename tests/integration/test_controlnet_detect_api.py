"""sd-webui-controlnet's preprocessor routes over real HTTP: module_list, control_types, detect."""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image, ImageDraw

from tests.integration.test_api import assert_error, decode
from webui.request_img2img import encode_png


def drawn_square(size: tuple[int, int] = (64, 48)) -> str:
    image = Image.new("RGB", size, "black")
    ImageDraw.Draw(image).rectangle([12, 12, 35, 35], fill="white")
    return encode_png(image)


def test_module_list_has_the_extensions_names_and_sliders(live_server):
    body = live_server.get("/controlnet/module_list").json()
    assert body["module_list"][0] == "none" and "depth" in body["module_list"]
    assert set(body["module_detail"]) == set(body["module_list"])
    assert body["module_detail"]["canny"]["sliders"][1] == {"name": "Low Threshold", "value": 100, "min": 1,
                                                            "max": 255, "step": 1}
    labels = live_server.get("/controlnet/module_list", params={"alias_names": True}).json()
    assert "depth_midas" in labels["module_list"] and "depth" not in labels["module_list"]
    assert labels["module_detail"]["depth_midas"]["unavailable"].startswith("needs dpt_hybrid-midas-501f0c75.pt")


def test_control_types_list_canny_with_its_module(live_server):
    types = live_server.get("/controlnet/control_types").json()["control_types"]
    assert types["Canny"]["default_option"] == "canny"
    assert types["Canny"]["module_list"][:2] == ["none", "canny"]
    assert types["Canny"]["model_list"][0] == "None"


def test_detect_returns_canny_maps_of_the_image_size(live_server):
    response = live_server.post("/controlnet/detect", json={
        "controlnet_module": "canny", "controlnet_input_images": [drawn_square(), drawn_square((48, 48))],
        "controlnet_processor_res": 48, "controlnet_threshold_a": 100, "controlnet_threshold_b": 200})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["info"] == "Success" and len(body["images"]) == 2
    first, second = (decode(b) for b in body["images"])
    assert first.size == (64, 48) and second.size == (48, 48)
    edges = np.asarray(first.convert("L"))
    assert (edges[10:14, 14:34].max(axis=0) == 255).all()  # the top border, all along
    assert edges[16:32, 16:32].max() == 0 and edges[40:, 40:].max() == 0  # not inside, not far outside


def test_detect_refuses_what_it_cannot_do_with_a_sentence(live_server):
    def detect(**body):
        return live_server.post("/controlnet/detect", json={"controlnet_input_images": [drawn_square()], **body})

    assert_error(detect(controlnet_module="openpose_full"), 422, "body_pose_model.pth")
    assert_error(detect(controlnet_module="no_such_module"), 422, "no_such_module")
    assert_error(detect(controlnet_module="canny", controlnet_input_images=[]), 422, "empty")
    corrupt = base64.b64encode(b"\x89PNG\r\n\x1a\n not really a png").decode()
    assert_error(detect(controlnet_module="canny", controlnet_input_images=[corrupt]), 422, "controlnet_input_images[0]")
    assert_error(detect(controlnet_module="canny", controlnet_input_images=[drawn_square()] * 9), 422, "at most 8")
    assert_error(detect(controlnet_module="inpaint_only"), 422, "mask")


def test_detect_inpaint_shows_the_mask(live_server):
    mask = Image.new("L", (64, 48), 0)
    ImageDraw.Draw(mask).rectangle([0, 0, 31, 47], fill=255)
    buffer = io.BytesIO()
    mask.save(buffer, format="PNG")
    response = live_server.post("/controlnet/detect", json={
        "controlnet_module": "inpaint_only", "controlnet_input_images": [drawn_square()],
        "controlnet_masks": [base64.b64encode(buffer.getvalue()).decode()]})
    assert response.status_code == 200, response.text
    shown = np.asarray(decode(response.json()["images"][0]).convert("L"))
    assert shown[40, 5] > 100 and shown[40, 60] == 0  # the masked half is faded, the rest untouched
