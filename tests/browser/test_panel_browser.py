"""The shared generation panel in a real headless Chromium, as a user sees it: tool buttons with a
visible symbol and a title, swap and clear, sizes snapped to 8, a fractional seed refused, the live
preview filling its box, Save / Zip / Open folder, one "Settings", and our footer.

Uses the session's live server and Debian's /usr/bin/chromium (no downloads).
"""

from __future__ import annotations

import hashlib
import io
import zipfile

import gradio
import pytest

from tests.browser.conftest import needs_chromium, studio_page
from webui.version import VERSION

pytestmark = [
    pytest.mark.browser,
    pytest.mark.timeout(300),
    needs_chromium,
]

TAB = "txt2img"
TOOL_BUTTONS = [
    "refresh_sd_model_checkpoint", f"{TAB}_clear_prompt", f"{TAB}_extra_networks", f"{TAB}_style_apply",
    f"{TAB}_style_create", f"{TAB}_styles_refresh", f"{TAB}_res_switch_btn", f"{TAB}_random_seed",
    f"{TAB}_reuse_seed", f"{TAB}_random_subseed", f"{TAB}_reuse_subseed", f"{TAB}_open_folder", f"{TAB}_save",
    f"{TAB}_save_zip", "reload_ui",
]

# Each character of a button's text drawn in the button's font: it must leave ink, and not be the
# "no glyph" box (what a private-use character nobody has is drawn as).
GLYPHS_JS = """
([ids, probe]) => {
  const canvas = document.createElement('canvas');
  canvas.width = canvas.height = 64;
  const ctx = canvas.getContext('2d', {willReadFrequently: true});
  const draw = (ch, font) => {
    ctx.clearRect(0, 0, 64, 64);
    ctx.font = font;
    ctx.textBaseline = 'middle';
    ctx.fillText(ch, 8, 32);
    return Array.from(ctx.getImageData(0, 0, 64, 64).data);
  };
  const inked = (px) => px.some((v, i) => i % 4 === 3 && v > 0);
  const same = (a, b) => a.length === b.length && a.every((v, i) => v === b[i]);
  const found = {};
  for (const id of ids) {
    const button = document.getElementById(id);
    if (!button) { found[id] = null; continue; }
    const font = `32px ${getComputedStyle(button).fontFamily}`;
    const box = draw('\\uE000', font);
    const text = button.innerText.trim();
    const missing = [...text].filter((ch) => ch.trim() && (!inked(draw(ch, font)) || same(draw(ch, font), box)));
    const rect = button.getBoundingClientRect();
    found[id] = {title: button.title, text, missing, width: rect.width, height: rect.height};
  }
  // The check itself: a character no font has is found missing, a symbol DejaVu Sans has is not.
  const font = `32px ${getComputedStyle(document.body).fontFamily}`;
  const box = draw('\uE000', font);
  found.probe = [...probe].filter((ch) => !inked(draw(ch, font)) || same(draw(ch, font), box));
  return found;
}
"""


@pytest.fixture
def page(browser, live_server):
    with studio_page(browser, live_server.base_url) as page:
        yield page


def _number(page, elem_id: str):
    return page.locator(f"#{elem_id} input[type=number]").first


def _type_number(page, elem_id: str, value: str, expect: str) -> None:
    """Type into a slider's number box and leave it; the page's load event may still reset it once
    (it fills the defaults), so type again until ``expect`` stays."""
    box = _number(page, elem_id)
    for _ in range(10):
        box.fill(value)
        box.press("Tab")
        page.wait_for_timeout(300)
        if box.input_value() == expect:
            return
    raise AssertionError(f"{elem_id}: typed {value}, shows {box.input_value()}, expected {expect}")


def _fetch(page, base_url: str, src: str) -> bytes:
    response = page.request.get(src if src.startswith("http") else base_url + src)
    assert response.status == 200, src
    return response.body()


def test_tool_buttons_show_a_symbol_and_a_title(page) -> None:
    page.locator(f"#{TAB}_seed_extras .label-wrap").first.click()  # the variation seed's buttons
    page.locator(f"#{TAB}_random_subseed").wait_for()
    page.wait_for_function("(ids) => ids.every((id) => document.getElementById(id)?.title)", arg=TOOL_BUTTONS)
    found = page.evaluate(GLYPHS_JS, [TOOL_BUTTONS, "\ue001\u21c5"])
    assert found.pop("probe") == ["\ue001"]
    for elem_id, button in found.items():
        assert button is not None, f"no #{elem_id}"
        assert button["title"].strip(), elem_id
        assert button["text"], f"#{elem_id} has no text"
        assert not button["missing"], f"#{elem_id} draws {button['missing']} as empty boxes"
        assert button["width"] > 0 and button["height"] > 0, elem_id


def test_swap_clear_and_size_snapping(page) -> None:
    _type_number(page, f"{TAB}_width", "320", "320")
    _type_number(page, f"{TAB}_height", "100", "104")  # snapped to the nearest multiple of 8, and shown
    page.locator(f"#{TAB}_res_switch_btn").click()
    page.wait_for_function(f"""() => document.querySelector('#{TAB}_width input[type=number]').value === '104'
        && document.querySelector('#{TAB}_height input[type=number]').value === '320'""")
    _type_number(page, f"{TAB}_width", "5000", "2048")  # and kept within the slider's range

    prompt, negative = page.locator(f"#{TAB}_prompt textarea"), page.locator(f"#{TAB}_neg_prompt textarea")
    prompt.fill("a red bicycle")
    negative.fill("blurry")
    page.locator(f"#{TAB}_clear_prompt").click()
    page.wait_for_function(f"""() => document.querySelector('#{TAB}_prompt textarea').value === ''
        && document.querySelector('#{TAB}_neg_prompt textarea').value === ''""")
    assert page.locator(f"#{TAB}_token_counter").inner_text().strip().startswith("0/")


def test_fractional_seed_is_refused_not_rounded(page) -> None:
    page.locator(f"#{TAB}_prompt textarea").fill("x")
    seed = page.locator(f"#{TAB}_seed input").first
    seed.fill("1.5")
    seed.press("Tab")
    page.locator(f"#{TAB}_generate").click()
    error = page.locator(f"#{TAB}_html_log .sd-error")
    error.wait_for(timeout=30_000)
    assert "Seed" in error.inner_text() and "whole number" in error.inner_text()
    assert seed.input_value() == "1.5"
    page.locator(f"#{TAB}_generate").wait_for(state="visible")


def test_one_settings_and_our_footer(page, live_server) -> None:
    settings = page.evaluate("""() => [...document.querySelectorAll('button, a')].filter((e) =>
        e.textContent.trim() === 'Settings' && !e.closest('.visually-hidden')
        && e.getBoundingClientRect().height > 4).length""")
    assert settings == 1  # our tab; Gradio's footer (its own Settings and API links) is off
    footer = page.locator("#footer_versions").inner_text()
    assert f"version: {VERSION}" in footer and f"gradio: {gradio.__version__}" in footer
    for name in ("python: 3.", "torch: ", "diffusers: "):
        assert name in footer
    assert page.request.get(live_server.base_url + "/docs").status == 200  # the footer's API link
    page.evaluate("() => { window.sdBeforeReload = true; }")
    with page.expect_navigation():
        page.locator("#reload_ui").click()
    page.locator(f"#{TAB}_prompt textarea").wait_for()
    assert page.evaluate("() => window.sdBeforeReload === undefined")


def test_preview_fills_its_box_then_save_zip_and_folder(page, live_server, restore_options) -> None:
    live_server.post("/sdapi/v1/options", json={"show_progress_every_n_steps": 1})
    page.locator(f"#{TAB}_prompt textarea").fill("a lighthouse, panel test")
    for elem_id, value in ((f"{TAB}_width", "64"), (f"{TAB}_height", "64"), (f"{TAB}_steps", "30"),
                           (f"{TAB}_batch_size", "2")):
        _type_number(page, elem_id, value, value)
    page.locator(f"#{TAB}_seed input").first.fill("4242")

    page.locator(f"#{TAB}_generate").click()
    # A 64x64 preview in a 512 px box: drawn at the box's size, not at 64 px. The <img> element
    # always spans the box; what counts is the picture in it (Gradio's object-fit: scale-down
    # would keep it at 64 px).
    page.wait_for_function(f"() => document.querySelector('#{TAB}_preview img')?.naturalWidth > 0",
                           timeout=60_000, polling="raf")
    sizes = page.evaluate(f"""() => {{
        const img = document.querySelector('#{TAB}_preview img'), box = document.querySelector('#{TAB}_preview');
        const rect = img.getBoundingClientRect(), fit = getComputedStyle(img).objectFit;
        let k = Math.min(rect.width / img.naturalWidth, rect.height / img.naturalHeight);
        if (fit === 'scale-down') k = Math.min(k, 1);
        if (fit === 'none') k = 1;
        const drawn = fit === 'fill' ? [rect.width, rect.height] : [img.naturalWidth * k, img.naturalHeight * k];
        return [...drawn, box.clientWidth, box.clientHeight, img.naturalWidth]; }}""")
    img_w, img_h, box_w, box_h, natural = sizes
    assert natural < 0.5 * min(box_w, box_h)
    assert min(img_w, img_h) >= 0.9 * min(box_w, box_h), sizes  # a square image fills the box's short side

    thumbs = page.locator(f"#{TAB}_gallery img")
    thumbs.first.wait_for(state="visible", timeout=120_000)
    page.locator(f"#{TAB}_generate").wait_for(state="visible")
    srcs = [thumbs.nth(i).get_attribute("src") for i in range(thumbs.count())]
    assert len(srcs) == 3  # the grid and two images
    shown = {hashlib.sha256(_fetch(page, live_server.base_url, src)).hexdigest() for src in srcs}

    page.locator(f"#{TAB}_save_zip").click()
    link = page.locator(f"#{TAB}_download_files a[href]").first
    link.wait_for()
    with zipfile.ZipFile(io.BytesIO(_fetch(page, live_server.base_url, link.get_attribute("href")))) as archive:
        names = archive.namelist()
        zipped = {hashlib.sha256(archive.read(name)).hexdigest() for name in names}
    assert zipped == shown and len(names) == 3
    assert all(name.endswith(".png") and ("-4242" in name or "-4243" in name) for name in names), names

    links = f"() => new Set([...document.querySelectorAll('#{TAB}_download_files a[href]')].map((a) => a.href)).size"
    page.locator(f"#{TAB}_save").click()  # nothing selected: every shown image
    page.wait_for_function(f"({links})() === 3")
    thumbs.nth(2).click()  # the second image (after the grid): Save offers it alone
    page.wait_for_function(f"""() => (document.querySelector('#{TAB}_generation_info textarea')?.value || '')
        .includes('Seed: 4243')""")
    page.locator(f"#{TAB}_save").click()
    page.wait_for_function(f"({links})() === 1")
    saved = page.locator(f"#{TAB}_download_files a[href]").first.get_attribute("href")
    assert _fetch(page, live_server.base_url, saved) == _fetch(page, live_server.base_url, srcs[2])

    page.locator(f"#{TAB}_open_folder").click()
    page.locator(f"#{TAB}_folder_gallery img").first.wait_for()
    assert "outputs/txt2img-images" in page.locator(f"#{TAB}_folder_info").inner_text()
    count = page.locator(f"#{TAB}_folder_gallery img").count()
    assert 2 <= count <= 50
