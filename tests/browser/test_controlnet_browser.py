"""ControlNet in a real headless Chromium: a unit with canny and a tiny SD1 ControlNet, its preview,
a generation with the detected map beside the image, and ↙ putting the unit back.

Uses Debian's /usr/bin/chromium through Playwright (never ``playwright install``: no downloads).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from tests.browser.conftest import needs_chromium, studio_page
from tests.browser.test_txt2img_browser import _set_number
from tests.kit.controlnets import write_controlnet
from webui import infotext

pytestmark = [
    pytest.mark.browser,
    needs_chromium,
]

UNIT = "txt2img_controlnet_ControlNet-0"
MODEL_STEM = "control_sd15_canny_browser"
SCREENSHOT = Path(os.environ.get("UI_SCREENSHOT_CONTROLNET", "/tmp/ui-controlnet.png"))


def _fetch(page, base_url: str, src: str) -> bytes:
    response = page.request.get(src if src.startswith("http") else base_url + src)
    assert response.status == 200
    return response.body()


def _on_sd15(live_server) -> None:
    """The unit's ControlNet is SD1: the server's model must be the SD 1.5 checkpoint."""
    models = live_server.get("/sdapi/v1/sd-models").json()
    title = next(m["title"] for m in models if m["model_name"] == "sd15")
    if live_server.get("/sdapi/v1/options").json().get("sd_model_checkpoint") != title:
        assert live_server.post("/sdapi/v1/options", json={"sd_model_checkpoint": title}).status_code == 200


def test_a_unit_previews_generates_and_pastes_back(browser, live_server, restore_options, tmp_path) -> None:
    _on_sd15(live_server)
    write_controlnet(live_server.data_dir / "models" / "ControlNet" / f"{MODEL_STEM}.safetensors", "sd1", seed=3)
    picture = Image.new("RGB", (64, 64), "black")
    ImageDraw.Draw(picture).rectangle((16, 16, 47, 47), fill="white")
    picture.save(tmp_path / "square.png")

    with studio_page(browser, live_server.base_url) as page:
        page.locator("#txt2img_prompt textarea").fill("a square, controlnet browser test")
        for elem_id, value in (("txt2img_width", 64), ("txt2img_height", 64), ("txt2img_steps", 2)):
            _set_number(page, elem_id, value)
        page.locator("#txt2img_seed input").first.fill("321")

        page.locator("#txt2img_controlnet_accordion").get_by_text("ControlNet", exact=True).first.click()
        page.locator(f"#{UNIT}_input_image input[type=file]").set_input_files(str(tmp_path / "square.png"))
        page.locator(f"#{UNIT}_input_image img").first.wait_for(state="visible")
        page.locator(f"#{UNIT}_controlnet_enable_checkbox input").check()
        # The file came after the page: 🔄 lists it; the Canny type then picks canny and that model.
        page.locator(f"#{UNIT}_controlnet_refresh_models").click()
        page.locator(f"#{UNIT}_controlnet_type_filter_radio").get_by_text("Canny", exact=True).click()
        page.wait_for_function(
            f"() => document.querySelector('#{UNIT}_controlnet_preprocessor_dropdown input').value === 'canny'"
            f" && document.querySelector('#{UNIT}_controlnet_model_dropdown input').value.startsWith('{MODEL_STEM} [')")

        page.locator(f"#{UNIT}_controlnet_trigger_preprocessor").click()
        shown = page.locator(f"#{UNIT}_generated_image img").first
        shown.wait_for(state="visible", timeout=60_000)
        detected = np.asarray(Image.open(io.BytesIO(_fetch(page, live_server.base_url, shown.get_attribute("src"))))
                              .convert("L"))
        h, w = detected.shape
        # Canny finds the square's outline: bright on its edges, dark inside and outside.
        assert detected[h // 2, w // 2] < 32 and detected[h // 2, 2] < 32
        assert detected[h // 4 - 2:h // 4 + 3, w // 2].max() > 200  # the top edge (16/64 of the height)
        page.locator("#txt2img_controlnet_accordion").first.screenshot(path=str(SCREENSHOT))

        page.locator("#txt2img_generate").click()
        thumbs = page.locator("#txt2img_gallery img")
        thumbs.first.wait_for(state="visible", timeout=120_000)
        page.locator("#txt2img_generate").wait_for(state="visible")
        page.wait_for_function("() => document.querySelectorAll('#txt2img_gallery img').length >= 2")
        srcs = [thumbs.nth(i).get_attribute("src") for i in range(thumbs.count())]
        images = [Image.open(io.BytesIO(_fetch(page, live_server.base_url, src))) for src in srcs]
        assert len(images) == 2, srcs  # the image, then the detected map
        params = infotext.parse_infotext(images[0].info["parameters"])
        unit = params["ControlNet 0"]
        assert "Module: canny" in unit and f"Model: {MODEL_STEM} [" in unit and "Weight: 1.0" in unit
        assert images[0].size == (64, 64)
        assert np.asarray(images[1].convert("L")).max() > 200  # the map's white edges

        # Change the unit, then ↙ with an empty prompt box reads the last generation's infotext back.
        page.locator(f"#{UNIT}_controlnet_enable_checkbox input").uncheck()
        _set_number(page, f"{UNIT}_controlnet_control_weight_slider", 0.5)
        page.locator("#txt2img_prompt textarea").fill("")
        page.locator("#txt2img_paste").click()
        page.wait_for_function(
            f"() => document.querySelector('#{UNIT}_controlnet_enable_checkbox input').checked"
            f" && document.querySelector('#{UNIT}_controlnet_control_weight_slider input[type=number]').value === '1'")
