"""Extensions in a real headless Chromium: their tabs, page JavaScript and CSS, settings, scripts.

Its own server over a data dir whose extensions/ holds copies of the kit's native-style,
a1111-style (written with A1111's ``modules``) and broken-ui (its ``ui()`` raises) extensions.
Uses Debian's /usr/bin/chromium through Playwright (no downloads).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Iterator

import pytest

from tests.browser.conftest import needs_chromium, studio_page
from tests.browser.test_txt2img_browser import _set_number
from tests.conftest import copy_checkpoint
from tests.kit.servers import LiveServer, start_server

KIT = Path(__file__).resolve().parents[1] / "kit" / "extensions"
EXTENSIONS = ("native-style", "a1111-style", "broken-ui")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.timeout(300),
    needs_chromium,
]


@pytest.fixture(scope="module")
def server(tmp_path_factory, checkpoint_store) -> Iterator[LiveServer]:
    data = tmp_path_factory.mktemp("extensions-server")
    copy_checkpoint(checkpoint_store("sd15"), data / "models" / "Stable-diffusion", "sd15.safetensors")
    for name in EXTENSIONS:
        shutil.copytree(KIT / name, data / "extensions" / name)
    srv = start_server(data, extra_args=["--no-demo-model"])
    try:
        yield srv
    finally:
        srv.stop()


def _open_tab(page, name: str) -> None:
    page.locator("#tabs button[role=tab]", has_text=name).first.click()


def test_extension_tabs_js_css_settings_and_a_selectable_script(browser, server) -> None:
    with studio_page(browser, server.base_url) as page:
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        # marker.js ran with A1111's helpers, once the UI was there (onUiLoaded, gradioApp()).
        page.wait_for_function("() => document.body.dataset.a1111StyleJs === 'found-prompt'")

        # The extensions' tabs, with their text; style.css applies to the A1111-style one.
        _open_tab(page, "A1111 style")
        text = page.locator("#a1111_style_tab_text")
        text.wait_for(state="visible")
        assert "Hello from the A1111-style extension" in text.inner_text()
        outline = page.evaluate("() => getComputedStyle(document.querySelector('#a1111_style_tab_text')).outlineColor")
        assert outline == "rgb(255, 0, 255)"
        _open_tab(page, "Native")
        page.locator("#native_style_tab_text").wait_for(state="visible")

        # Settings lists the extensions' options under their sections, with A1111's ids.
        _open_tab(page, "Settings")
        greeting = page.locator("#setting_a1111_style_greeting textarea, #setting_a1111_style_greeting input").first
        greeting.wait_for(state="visible")
        assert greeting.input_value() == "hello"
        assert page.locator("#setting_native_style_color input").first.input_value() == "teal"

        # txt2img: the always-on scripts' controls are there (the broken one left the rest alone);
        # choosing "Run twice" shows its slider, and Generate gives both runs' images.
        _open_tab(page, "txt2img")
        container = page.locator("#txt2img_script_container")
        container.get_by_text("Sign images").wait_for(state="visible")
        page.locator("#txt2img_prompt textarea").fill("extensions browser test")
        for elem_id, value in (("txt2img_width", 64), ("txt2img_height", 64), ("txt2img_steps", 2)):
            _set_number(page, elem_id, value)
        container.locator("#script_list input").first.click()
        page.get_by_role("option", name="Run twice", exact=True).click()
        container.get_by_text("Seed offset of the second run").wait_for(state="visible")
        page.locator("#txt2img_generate").click()
        page.wait_for_function("() => document.querySelector('#txt2img_html_log .sd-error, "
                               "#txt2img_html_log .sd-timings')", timeout=60_000)
        page.locator("#txt2img_generate").wait_for(state="visible")  # back to idle
        log = page.locator("#txt2img_html_log").inner_text()
        assert "Error" not in log, log
        info = page.locator("#txt2img_generation_info textarea").input_value()
        assert "Signature: native/1" in info  # the always-on script's values went with the request
        assert page.locator("#txt2img_gallery img").count() == 2  # the first run's image and the second's
        assert not errors, errors
