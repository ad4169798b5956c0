"""Inpaint in a real headless Chromium: upload a picture, paint a stroke on the canvas with the
mouse, Generate, and check that only the painted band of the picture changed."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from tests.browser.conftest import needs_chromium, studio_page
from tests.browser.test_txt2img_browser import _set_number
from tests.integration.test_img2img import picture

pytestmark = [pytest.mark.browser, needs_chromium, pytest.mark.timeout(300)]

SIZE = 128


@pytest.fixture
def page(browser, live_server):
    with studio_page(browser, live_server.base_url) as page:
        yield page


def _generate(page) -> Image.Image:
    """Generate and return the result. Headless Chromium exports the editor's WebGL canvas late
    when the machine is busy, so a submit may reach the server without the picture (then it says
    so and nothing runs); Generate is pressed again in that case, at most twice more, after the
    message is cleared and the canvas had a moment."""
    for attempt in range(3):
        if attempt:
            page.evaluate("() => document.querySelectorAll('#img2img_html_log .sd-error').forEach(e => e.remove())")
            page.locator("#img2img_generate").wait_for(state="visible")
            page.wait_for_timeout(3000)
        page.locator("#img2img_generate").click()
        page.wait_for_function("() => document.querySelector('#img2img_gallery img') || "
                               "document.querySelector('#img2img_html_log .sd-error')", timeout=90_000)
        error = page.locator("#img2img_html_log .sd-error")
        if not error.count():
            break
        assert attempt < 2 and "add a picture first" in error.inner_text(), error.inner_text()
    image = page.locator("#img2img_gallery img").first
    response = page.request.get(image.get_attribute("src"))
    assert response.ok
    return Image.open(io.BytesIO(response.body())).convert("RGB")


def test_a_painted_stroke_repaints_only_that_band(page, live_server, tmp_path) -> None:
    original = picture(SIZE, SIZE)
    original.save(tmp_path / "picture.png")
    page.get_by_role("tab", name="img2img").first.click()
    page.get_by_role("tab", name="Inpaint", exact=True).click()
    # The editor builds its WebGL canvas when its tab first shows; a file given before that is lost
    # (Gradio's editor has no layers yet: "reading 'reset_layers'"), so wait for the canvas.
    page.locator("#img2maskimg canvas").first.wait_for(state="attached", timeout=30_000)
    page.wait_for_timeout(500)
    page.locator("#img2maskimg input[type=file]").set_input_files(str(tmp_path / "picture.png"))
    page.wait_for_timeout(2000)  # the editor loads the picture into its canvas
    # A horizontal stroke across the middle of the picture, drawn with the mouse.
    canvas = page.locator("#img2maskimg canvas").first
    canvas.scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    box = canvas.bounding_box()
    side = min(box["width"], box["height"])  # the picture is centred in the canvas (zoomed to fit)
    left, top = box["x"] + (box["width"] - side) / 2, box["y"] + (box["height"] - side) / 2
    y = top + side / 2
    page.mouse.move(left + side * 0.25, y)
    page.mouse.down()
    for step in range(1, 21):
        page.mouse.move(left + side * (0.25 + 0.5 * step / 20), y)
    page.mouse.up()
    page.wait_for_timeout(1000)

    page.locator("#img2img_prompt textarea").fill("a stone wall")
    for elem_id, value in (("img2img_width", SIZE), ("img2img_height", SIZE), ("img2img_steps", 3)):
        _set_number(page, elem_id, value)
    _set_number_float(page, "img2img_denoising_strength", "1")
    page.get_by_label("latent noise").check()

    out = np.asarray(_generate(page)).astype(int)
    assert out.shape == (SIZE, SIZE, 3)
    changed = np.abs(out - np.asarray(original).astype(int)).sum(axis=-1) > 0
    assert changed[SIZE // 2, int(SIZE * 0.45):int(SIZE * 0.55)].mean() > 0.9  # under the stroke
    assert not changed[:SIZE // 6].any() and not changed[-SIZE // 6:].any()  # well above and below it


def _set_number_float(page, elem_id: str, value: str) -> None:
    box = page.locator(f"#{elem_id} input[type=number]").first
    box.fill(value)
    box.press("Tab")
