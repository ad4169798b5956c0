"""txt2img in a real headless Chromium: type a prompt, make it tiny, Generate, see the saved PNG.

Uses Debian's /usr/bin/chromium through Playwright (never ``playwright install``: no downloads).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from PIL import Image

from tests.browser.conftest import needs_chromium, studio_page

SCREENSHOT = Path(os.environ.get("UI_SCREENSHOT", "/tmp/ui-txt2img.png"))

pytestmark = [
    pytest.mark.browser,
    needs_chromium,
]


@pytest.fixture
def page(browser, live_server):
    with studio_page(browser, live_server.base_url) as page:
        yield page


def _set_number(page, elem_id: str, value: int) -> None:
    """Type into the number box of a slider or number field; Gradio applies it on change/blur.

    The page's load event fills the defaults from the settings; on a busy machine it can land
    after our typing, so check that the value stuck and type again if it did not.
    """
    box = page.locator(f"#{elem_id} input[type=number]").first
    for _ in range(10):
        box.fill(str(value))
        box.press("Tab")
        page.wait_for_timeout(300)
        if box.input_value() == str(value):
            return
    raise AssertionError(f"{elem_id} would not keep the value {value}")


def test_generate_shows_saved_png(page, live_server) -> None:
    page.locator("#txt2img_prompt textarea").fill("a red bicycle, browser test")
    for elem_id, value in (("txt2img_width", 64), ("txt2img_height", 64), ("txt2img_steps", 2)):
        _set_number(page, elem_id, value)
    page.locator("#txt2img_seed input").first.fill("777")

    page.locator("#txt2img_generate").click()

    image = page.locator("#txt2img_gallery img").first
    image.wait_for(state="visible", timeout=60_000)
    page.locator("#txt2img_generate").wait_for(state="visible")  # back to idle: Interrupt/Skip hidden
    info = page.locator("#txt2img_generation_info textarea")
    info.wait_for()
    page.wait_for_function(
        "() => (document.querySelector('#txt2img_generation_info textarea')?.value || '').includes('Seed: 777')"
    )
    page.screenshot(path=str(SCREENSHOT), full_page=True)

    src = image.get_attribute("src")
    assert src
    response = page.request.get(src if src.startswith("http") else live_server.base_url + src)
    assert response.status == 200
    body = response.body()
    assert body[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(io.BytesIO(body)) as png:
        assert png.size == (64, 64)
        parameters = png.info["parameters"]
    assert parameters.startswith("a red bicycle, browser test\n")
    assert "Seed: 777" in parameters and "Steps: 2" in parameters and "Size: 64x64" in parameters
    assert "Time taken" in page.locator("#txt2img_html_log").inner_text()

    # Send to inpaint: the img2img tab opens on Inpaint with the picture and the prompt.
    page.locator("#txt2img_send_to_inpaint").click()
    page.locator("#img2maskimg canvas").first.wait_for(state="visible")
    page.wait_for_function("() => document.querySelector('#img2img_prompt textarea').value"
                           " === 'a red bicycle, browser test'")
    assert page.get_by_role("tab", name="Inpaint", exact=True).get_attribute("aria-selected") == "true"

    # ↙ in img2img: the infotext pasted into the prompt box fills the fields it names.
    page.locator("#img2img_prompt textarea").fill(parameters)
    page.locator("#img2img_paste").click()
    page.wait_for_function("() => document.querySelector('#img2img_seed input').value === '777'"
                           " && document.querySelector('#img2img_steps input[type=number]').value === '2'"
                           " && document.querySelector('#img2img_prompt textarea').value === 'a red bicycle, browser test'")


def test_the_schedule_dropdown_offers_only_what_the_sampler_can_run(page) -> None:
    """LCM runs on its model's own timesteps: Karras is not offered, and a Karras choice made
    for another sampler falls back to Automatic when LCM is picked."""
    for elem_id, choice in (("txt2img_sampling", "Euler a"), ("txt2img_scheduler", "Karras")):
        page.locator(f"#{elem_id} input").first.click()
        page.get_by_role("option", name=choice, exact=True).click()
    page.locator("#txt2img_sampling input").first.click()
    page.get_by_role("option", name="LCM", exact=True).click()
    page.wait_for_function("() => document.querySelector('#txt2img_scheduler input').value === 'Automatic'")
    page.locator("#txt2img_scheduler input").first.click()
    offered = page.get_by_role("option").all_inner_texts()
    assert "Uniform" in offered and "Karras" not in offered
    page.keyboard.press("Escape")


def _open(page, elem_id: str) -> None:
    """Open a Gradio accordion by clicking its header."""
    page.locator(f"#{elem_id} button.label-wrap, #{elem_id} .label-wrap").first.click()


def _choose(page, elem_id: str, choice: str) -> None:
    page.locator(f"#{elem_id} input").first.click()
    page.get_by_role("option", name=choice).first.click()


def test_hires_fix_refiner_and_warnings_from_the_page(page, live_server) -> None:
    page.locator("#txt2img_prompt textarea").fill("a stone tower <lora:missing-one:1>")
    for elem_id, value in (("txt2img_width", 64), ("txt2img_height", 64), ("txt2img_steps", 4)):
        _set_number(page, elem_id, value)
    page.locator("#txt2img_seed input").first.fill("321")

    _open(page, "txt2img_hr")
    page.locator("#txt2img_enable_hr input").check()
    page.wait_for_function("() => (document.querySelector('#txt2img_hires_summary')?.innerText || '').includes('128x128')")
    _open(page, "txt2img_refiner")
    _choose(page, "txt2img_refiner_checkpoint", "sdxl-base.safetensors")
    assert page.locator("#txt2img_enable_refiner input").is_checked()  # picking a refiner enables it
    _set_number(page, "txt2img_refiner_switch_at", 0.5)

    page.locator("#txt2img_generate").click()
    image = page.locator("#txt2img_gallery img").first
    image.wait_for(state="visible", timeout=90_000)
    page.locator("#txt2img_generate").wait_for(state="visible")
    page.screenshot(path=str(SCREENSHOT.with_name("ui-hires-refiner.png")), full_page=True)

    src = image.get_attribute("src")
    response = page.request.get(src if src.startswith("http") else live_server.base_url + src)
    with Image.open(io.BytesIO(response.body())) as png:
        assert png.size == (128, 128)
        parameters = png.info["parameters"]
    assert "Hires upscale: 2" in parameters and "Size: 64x64" in parameters
    assert "Refiner: sdxl-base [" in parameters and "Refiner switch at: 0.5" in parameters
    warning = page.locator("#txt2img_html_log .sd-warnings")
    assert "Lora not found: missing-one" in warning.inner_text()
