"""Prompt tools in a real headless Chromium: the token counter, the extra networks panel, styles.

Its own server: a fresh data dir with the tiny sd15 checkpoint, LoRA files (one with a preview)
and a styles.csv. Uses Debian's /usr/bin/chromium through Playwright (no downloads).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from tests.browser.conftest import needs_chromium, studio_page
from tests.conftest import copy_checkpoint
from tests.kit.servers import LiveServer, start_server

SCREENSHOT = Path(os.environ.get("UI_NETWORKS_SCREENSHOT", "/tmp/ui-extra-networks.png"))

pytestmark = [
    pytest.mark.browser,
    pytest.mark.timeout(300),
    needs_chromium,
]


@pytest.fixture(scope="module")
def server(tmp_path_factory, checkpoint_store) -> Iterator[LiveServer]:
    data = tmp_path_factory.mktemp("prompt-tools-server")
    copy_checkpoint(checkpoint_store("sd15"), data / "models" / "Stable-diffusion", "sd15.safetensors")
    copy_checkpoint(checkpoint_store("sd15", seed=1), data / "models" / "Stable-diffusion", "zz-other.safetensors")
    lora = data / "models" / "Lora"
    lora.mkdir(parents=True)
    for name in ("detail_tweaker", "pixel-art", "watercolor"):
        save_file({"lora_unet_x.lora_down.weight": torch.zeros(4, 8)}, lora / f"{name}.safetensors")
    Image.new("RGB", (96, 128), (40, 120, 200)).save(lora / "pixel-art.preview.png")
    (data / "styles.csv").write_text('name,prompt,negative_prompt\nsharp,"sharp focus, 8k",lowres\n', encoding="utf-8")
    srv = start_server(data, extra_args=["--no-demo-model"])
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def page(browser, server):
    with studio_page(browser, server.base_url) as page:
        yield page


def _counter(page, elem_id: str = "txt2img_token_counter") -> str:
    return page.locator(f"#{elem_id}").inner_text().strip()


def test_token_counter_grows_past_a_chunk(page) -> None:
    box = page.locator("#txt2img_prompt textarea")
    box.fill("a red bicycle")
    page.wait_for_function("() => /^[1-9]\\d*\\/75$/.test(document.querySelector('#txt2img_token_counter').innerText.trim())")
    box.fill(", ".join(f"word{i}" for i in range(40)))  # well over 75 CLIP tokens
    page.wait_for_function("() => /\\/150$/.test(document.querySelector('#txt2img_token_counter').innerText.trim())")
    used, limit = (int(v) for v in _counter(page).split("/"))
    assert 75 < used <= 150 and limit == 150
    assert _counter(page, "txt2img_negative_token_counter") == "0/75"


def test_extra_networks_card_inserts_lora(page) -> None:
    page.locator("#txt2img_prompt textarea").fill("a castle")
    page.wait_for_function("() => document.querySelector('#txt2img_token_counter').innerText.trim() === '2/75'")
    page.locator("#txt2img_extra_networks").click()
    page.get_by_role("tab", name="Lora").click()
    cards = page.locator("#txt2img_extra_lora_cards .sd-en-card")
    cards.first.wait_for()
    assert cards.count() == 3
    preview = page.locator("#txt2img_extra_lora_cards .sd-en-card[data-name='pixel-art'] img")
    page.wait_for_function("(img) => img.complete && img.naturalWidth === 96", arg=preview.element_handle())
    page.screenshot(path=str(SCREENSHOT), full_page=True)

    page.locator("#txt2img_extra_lora_cards .sd-en-card[data-name='detail_tweaker']").click()
    box = page.locator("#txt2img_prompt textarea")
    assert box.input_value() == "a castle <lora:detail_tweaker:1>"
    # Gradio has the new value, not only the DOM: 📋 with no style selected sends the prompt to the
    # server and puts back what it received.
    with page.expect_response(lambda r: "/gradio_api/" in r.url and r.request.method == "POST"):
        page.locator("#txt2img_style_apply").click()
    page.wait_for_timeout(200)  # the response applied to the page
    assert box.input_value() == "a castle <lora:detail_tweaker:1>"
    assert _counter(page) == "2/75"  # extra-network tags are not counted, as in A1111

    # The search narrows the cards (server-side filter).
    page.locator("#txt2img_extra_lora_search textarea, #txt2img_extra_lora_search input").first.fill("water")
    page.wait_for_function("() => document.querySelectorAll('#txt2img_extra_lora_cards .sd-en-card').length === 1")

    # Clicking the same card again takes its text back out, as in A1111.
    page.locator("#txt2img_extra_lora_search textarea, #txt2img_extra_lora_search input").first.fill("")
    page.wait_for_function("() => document.querySelectorAll('#txt2img_extra_lora_cards .sd-en-card').length === 3")
    page.locator("#txt2img_extra_lora_cards .sd-en-card[data-name='detail_tweaker']").click()
    assert box.input_value() == "a castle"


def test_apply_style_to_prompt(page) -> None:
    page.locator("#txt2img_prompt textarea").fill("a cat")
    page.locator("#txt2img_styles input").first.click()
    page.get_by_role("option", name="sharp", exact=True).click()
    page.locator("#txt2img_style_apply").click()
    page.wait_for_function("() => document.querySelector('#txt2img_prompt textarea').value === 'a cat, sharp focus, 8k'")
    assert page.locator("#txt2img_neg_prompt textarea").input_value() == "lowres"


def test_checkpoint_card_switches_the_model(page, server) -> None:
    page.locator("#txt2img_extra_networks").click()
    card = page.locator("#txt2img_extra_checkpoint_cards .sd-en-card[data-name='zz-other']")
    card.wait_for()
    assert "active" in page.locator("#txt2img_extra_checkpoint_cards .sd-en-card[data-name='sd15']").get_attribute("class")
    card.click()
    page.wait_for_function(
        "() => (document.querySelector('#setting_sd_model_checkpoint input')?.value || '').startsWith('zz-other.safetensors')",
        timeout=60_000)
    assert server.get("/sdapi/v1/options").json()["sd_model_checkpoint"].startswith("zz-other.safetensors")
