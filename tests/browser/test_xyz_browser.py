"""X/Y/Z plot in a real headless Chromium: pick it in txt2img's Script dropdown, plot Steps × CFG.

Uses Debian's /usr/bin/chromium through Playwright (never ``playwright install``: no downloads).
"""

from __future__ import annotations

import io

import pytest
from PIL import Image

from tests.browser.conftest import needs_chromium, studio_page
from tests.browser.test_txt2img_browser import _set_number
from webui import infotext
from webui.scripts.grid_labels import grid_layout

pytestmark = [
    pytest.mark.browser,
    needs_chromium,
]

PLOT = "script_txt2img_xyz_plot"


def _choose(page, elem_id: str, choice: str) -> None:
    page.locator(f"#{elem_id} input").first.click()
    page.get_by_role("option", name=choice, exact=True).first.click()


def test_a_2x2_plot_from_the_script_dropdown(browser, live_server) -> None:
    with studio_page(browser, live_server.base_url) as page:
        page.locator("#txt2img_prompt textarea").fill("a windmill, xyz browser test")
        for elem_id, value in (("txt2img_width", 64), ("txt2img_height", 64), ("txt2img_steps", 1)):
            _set_number(page, elem_id, value)
        page.locator("#txt2img_seed input").first.fill("4242")

        page.locator("#txt2img_script_container #script_list input").first.click()
        page.get_by_role("option", name="X/Y/Z plot", exact=True).click()
        page.locator(f"#{PLOT}_x_type").wait_for(state="visible")
        _choose(page, f"{PLOT}_x_type", "Steps")
        page.locator(f"#{PLOT}_x_values textarea, #{PLOT}_x_values input").first.fill("1,2")
        _choose(page, f"{PLOT}_y_type", "CFG Scale")
        page.locator(f"#{PLOT}_y_values textarea, #{PLOT}_y_values input").first.fill("3,4")
        # A dropdown axis swaps the text box for a value picker.
        _choose(page, f"{PLOT}_z_type", "Sampler")
        page.locator(f"#{PLOT}_z_values_dropdown").wait_for(state="visible")
        assert not page.locator(f"#{PLOT}_z_values").is_visible()
        _choose(page, f"{PLOT}_z_type", "Nothing")
        page.locator(f"#{PLOT}_z_values_dropdown").wait_for(state="hidden")

        page.locator("#txt2img_generate").click()
        image = page.locator("#txt2img_gallery img").first
        image.wait_for(state="visible", timeout=90_000)
        page.locator("#txt2img_generate").wait_for(state="visible")
        src = image.get_attribute("src")
        assert src
        response = page.request.get(src if src.startswith("http") else live_server.base_url + src)
        assert response.status == 200
        with Image.open(io.BytesIO(response.body())) as png:
            size = png.size
            params = infotext.parse_infotext(png.info["parameters"])
    expected = grid_layout(4, (64, 64), ["Steps: 1", "Steps: 2"], ["CFG Scale: 3.0", "CFG Scale: 4.0"]).size
    assert size == expected and size[0] > 128 and size[1] > 128
    assert params["Script"] == "X/Y/Z plot" and params["X Type"] == "Steps" and params["Y Type"] == "CFG Scale"
    assert params["Seed"] == 4242
