"""The Gradio UI: a top bar (checkpoint, model notice) over one tab per module.

UI modules build GenerationRequests and show results; they never generate. ``build_ui`` returns
the Blocks and the keyword arguments for ``gr.mount_gradio_app`` (Gradio 6 takes theme/css there,
not in ``Blocks()``); ``head`` carries the extensions' page scripts (webui/ui/extension_assets.py).
Extensions' own tabs (``on_ui_tabs``) come between img2img and Settings, as in A1111.
"""

from __future__ import annotations

import html
import logging
import platform
from importlib import metadata
from typing import Any, NamedTuple

import gradio as gr

from webui.ui import (
    extension_assets,
    extensions_tab,
    extra_networks,
    styles_ui,
    token_counter,
)
from webui.ui.extensions_tab import build_extensions_tab
from webui.ui.extra_networks import ExtraNetworksPanel
from webui.ui.extras_tab import build_extras_tab
from webui.ui.generation_panel import GenerationTab
from webui.ui.img2img import Img2ImgTab, build_img2img_tab
from webui.ui.merger_tab import build_merger_tab
from webui.ui.paste_params import (
    PasteTab,
    script_paste_fields,
    studio_target,
    wire_paste,
)
from webui.ui.png_info_tab import build_png_info_tab, wire_png_info_send
from webui.ui.protocol import StudioView
from webui.ui.send_to import wire_send
from webui.ui.served_files import ServedFiles
from webui.ui.session import page_user
from webui.ui.settings_tab import SettingsTab, build_settings_tab, checkpoint_choices
from webui.ui.txt2img import HOTKEYS_JS, build_txt2img_tab
from webui.version import VERSION

# A1111's look where it matters to its users: a tall Generate button beside the prompts, the
# progress bar over the result area, compact tool buttons.
CSS = """
.sd-generate, .sd-stop { min-height: 5.5em; font-size: 1.1em; }
.sd-generate { min-height: 7.2em; }
.tool-button { max-width: 2.8em; min-width: 2.8em !important; height: 2.6em; align-self: end; padding: 0; }
#quicksettings { align-items: end; gap: 0.5em; }
#quicksettings > div { flex-grow: 0; }
#model_notice, #model_notice * { color: var(--color-accent); font-weight: 600; }
.sd-progress { position: relative; height: 1.6em; border-radius: 4px; overflow: hidden;
  background: var(--block-background-fill); border: 1px solid var(--border-color-primary); }
.sd-progress-bar { position: absolute; inset: 0 auto 0 0; background: var(--color-accent); opacity: 0.6; }
.sd-progress-text { position: relative; padding: 0 0.6em; line-height: 1.6em; font-size: 0.9em; }
.sd-error { color: #e03c3c; white-space: pre-wrap; }
.sd-timings { font-size: 0.85em; opacity: 0.8; }
.sd-tools { gap: 0.4em; }
.sd-warnings { color: #b7791f; font-size: 0.9em; margin-bottom: 0.4em; }
.sd-warnings ul { margin: 0.2em 0 0 1.2em; }
#model_notice_row { align-items: center; }
.tool-button { font-size: 1.25em; line-height: 1; }
.sd-dimensions-tools { justify-content: center; align-items: center; }
.sd-results-tools { gap: 0.4em; }
.sd-preview img { width: 100%; height: 100%; object-fit: contain !important; image-rendering: auto; }
#footer_row { justify-content: center; align-items: center; gap: 1em; margin-top: 1em; font-size: 0.85em;
  opacity: 0.85; }
#footer_row > * { flex: 0 1 auto !important; min-width: 0 !important; width: auto !important; }
.sd-versions { text-align: center; }
""" + token_counter.CSS + styles_ui.CSS + extra_networks.CSS + extensions_tab.CSS


log = logging.getLogger(__name__)

# Gradio's /gradio_api/upload (image inputs) stores what anyone logged in sends: cap each file, and
# delete uploads and cached outputs once a day old (checked hourly) instead of keeping them forever.
MAX_UPLOAD_MB = 50
UPLOAD_CACHE = (3600, 86400)  # Blocks(delete_cache=(every, older than)), in seconds


def _notice_update(studio: StudioView, error: str | None = None) -> dict:
    text = error or studio.model_notice()
    return gr.update(value=f"⚠️ {text}" if text else "", visible=bool(text))


def _build_top_bar(studio: StudioView) -> tuple[gr.Dropdown, gr.Button, gr.Markdown]:
    choices, active = checkpoint_choices(studio)
    with gr.Row(elem_id="quicksettings"):
        checkpoint = gr.Dropdown(choices=choices, value=active, label="Stable Diffusion checkpoint",
                                 elem_id="setting_sd_model_checkpoint", min_width=380, scale=0)
        refresh = gr.Button("\u21bb", elem_classes=["tool-button"], elem_id="refresh_sd_model_checkpoint",  # ↻
                            scale=0, min_width=40)
    with gr.Row(elem_id="model_notice_row"):
        notice = gr.Markdown(visible=False, elem_id="model_notice")
        dismiss = gr.Button("✕", elem_classes=["tool-button"], elem_id="model_notice_dismiss", scale=0, min_width=40)
    # The notice stays until it is dismissed or the next switch or refresh replaces it.
    dismiss.click(lambda: gr.update(value="", visible=False), outputs=notice, api_visibility="private", queue=False)
    return checkpoint, refresh, notice


def _wire_top_bar(studio: StudioView, demo: gr.Blocks, checkpoint: gr.Dropdown, refresh: gr.Button,
                  notice: gr.Markdown, settings: SettingsTab, networks: ExtraNetworksPanel) -> None:
    # Both checkpoint dropdowns (top bar, Settings tab) always show the active model, so an Apply
    # in Settings never switches back to a model chosen before a top-bar switch.
    def shown(error: str | None = None) -> tuple[dict, dict, dict]:
        choices, current = checkpoint_choices(studio)
        # One update object per output: Gradio consumes (mutates) each while post-processing.
        return (gr.update(choices=choices, value=current), gr.update(choices=list(choices), value=current),
                _notice_update(studio, error))

    def switch(title: str | None, request: gr.Request) -> tuple[dict, dict, dict]:
        if not title:
            return shown()
        if not page_user(studio, request).is_admin:
            # A user's pick applies to their own jobs only (an override per request).
            choices, _ = checkpoint_choices(studio)
            return (gr.update(choices=choices, value=title), gr.skip(),
                    gr.update(value=f"Your jobs will use {title}; only an admin switches the model for everyone.",
                              visible=True))
        try:
            studio.options.update({"sd_model_checkpoint": title})
        except Exception as e:  # the old model stays loaded; say why and show it again
            log.error("could not load %s: %s", title, e)
            return shown(f"Could not load {title}: {e}")
        return shown()

    def refresh_list() -> tuple[dict, dict, dict]:
        studio.refresh_checkpoints()
        return shown()

    outputs = [checkpoint, settings.checkpoint, notice]
    # .input, not .change: resetting the value programmatically must not trigger another switch.
    checkpoint.input(switch, inputs=checkpoint, outputs=outputs, api_visibility="private",
                     concurrency_id="model_switch", concurrency_limit=1, show_progress="minimal")
    refresh.click(refresh_list, outputs=outputs, api_visibility="private", queue=False)
    demo.load(refresh_list, outputs=outputs, api_visibility="private", queue=False)
    settings.applied.then(shown, outputs=outputs, api_visibility="private", queue=False)

    def card_clicked(evt: gr.EventData, request: gr.Request) -> tuple[dict, dict, dict]:  # a checkpoint card
        data = evt._data if isinstance(evt._data, dict) else {}
        return switch(data.get("title") if isinstance(data.get("title"), str) else None, request)

    networks.checkpoint_cards.click(card_clicked, outputs=outputs, api_visibility="private",
                                    concurrency_id="model_switch", concurrency_limit=1, show_progress="minimal")


def versions() -> dict[str, str]:
    """What A1111's footer lists: this program's version and those of what it runs on."""
    found = {"version": VERSION, "python": platform.python_version()}
    for name in ("torch", "diffusers", "gradio"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "N/A"
    return found


def _wire_between_tabs(studio: StudioView, tabs: gr.Tabs, txt2img: GenerationTab,
                       img2img: Img2ImgTab) -> dict[str, PasteTab]:
    """Send to (txt2img ↔ img2img / inpaint) and ↙ (parameters from an infotext) on both tabs;
    returns each tab's paste fields (PNG Info's Send to fills the same)."""
    assert img2img.inputs is not None

    def pasted(text: str, params: dict) -> None:  # extensions may read or change what ↙ parsed
        studio.plugins.callbacks.call("infotext_pasted", text, params)

    targets: dict[str, PasteTab] = {}
    for name, tab in (("txt2img", txt2img), ("img2img", img2img)):
        s = tab.sampling
        fields = {"prompt": tab.row.prompt, "negative_prompt": tab.row.negative, "styles": tab.row.styles,
                  "steps": s.steps, "sampler_name": s.sampler, "scheduler": s.schedule, "cfg_scale": s.cfg,
                  "seed": s.seed, "width": s.width, "height": s.height, "batch_size": s.batch_size,
                  "subseed": s.subseed, "subseed_strength": s.subseed_strength, "seed_resize_from_w": s.resize_w,
                  "seed_resize_from_h": s.resize_h, **getattr(tab, "extra_fields", {})}
        upscaler = fields.get("hr_upscaler")
        choices = (lambda u=upscaler: [c[1] if isinstance(c, tuple) else c for c in u.choices]) if upscaler else None
        scripted = script_paste_fields(studio, name)  # extensions' infotext_fields (ControlNet units...)
        fields.update({key: component for key, (component, _) in scripted.items()})
        targets[name] = PasteTab(fields, studio_target(studio, list(fields), choices), pasted,
                                 {key: read for key, (_, read) in scripted.items()})
    for tab in (txt2img, img2img):
        wire_send(tab.send, tab.results, tab.row.prompt, tab.row.negative, tabs, img2img.inputs, targets)
    for name, tab in (("txt2img", txt2img), ("img2img", img2img)):
        wire_paste(tab.send["paste"], tab.row.prompt, tab.results.info, targets[name], tab.send["message"])
    return targets


def _footer(studio: StudioView) -> None:
    """The API docs link, versions and Reload UI (A1111's footer; Gradio's own is turned off: its
    "Settings" beside our Settings tab confused); then who is logged in (with a way out), or a
    warning when the LAN can use this without one."""
    with gr.Row(elem_id="footer_row"):
        text = " \u2022 ".join(f"{name}: {html.escape(value)}" for name, value in versions().items())
        gr.HTML(f'<div class="sd-versions"><a href="/docs" target="_blank">API</a> \u2022 {text}</div>',
                elem_id="footer_versions")
        reload = gr.Button("Reload UI", size="sm", elem_id="reload_ui", scale=0, min_width=90)
    reload.click(None, js="() => { window.location.reload(); }")
    if studio.auth.enabled:
        gr.HTML('<div class="sd-footer"><a href="/logout">Log out</a></div>', elem_id="footer_user")
    elif studio.cmd.listen:
        gr.HTML('<div class="sd-warnings sd-footer">⚠️ Shared on the network without logins: anyone who can '
                'reach this page can use it and change its settings (see docs/lan.md).</div>',
                elem_id="footer_no_auth_warning")


# Tab ids of our own: an extension tab may not take one.
OWN_TABS = ("txt2img", "img2img", "extras", "pnginfo", "modelmerger", "settings", "extensions")


class ExtensionTab(NamedTuple):
    extension: str | None
    blocks: gr.Blocks
    title: str
    elem_id: str


def extension_tabs(studio: StudioView) -> list[ExtensionTab]:
    """The extensions' ``on_ui_tabs`` tabs as (blocks, title, id); anything else is a recorded problem.

    Called before the page's Blocks is entered: an extension builds its tab in a Blocks of its
    own (A1111 does the same), which is then rendered inside a tab of the page.
    """
    plugins = getattr(studio, "plugins", None)
    if plugins is None:
        return []
    tabs: list[ExtensionTab] = []
    taken = set(OWN_TABS)
    for extension, returned in plugins.callbacks.call("ui_tabs"):
        if returned is None:  # no tab this time
            continue
        for item in returned if isinstance(returned, (list, tuple)) else [returned]:
            if not (isinstance(item, (list, tuple)) and len(item) == 3 and isinstance(item[0], gr.Blocks)
                    and isinstance(item[1], str) and isinstance(item[2], str) and item[2]):
                plugins.problems.record(extension, "on_ui_tabs", TypeError(
                    f"expected a list of (gr.Blocks, title, elem_id), got {_short(item)}; this tab is not shown"))
                continue
            if item[2] in taken:
                plugins.problems.record(extension, "on_ui_tabs", ValueError(
                    f"tab id {item[2]!r} is taken; the tab {item[1]!r} is not shown"))
                continue
            taken.add(item[2])
            tabs.append(ExtensionTab(extension, item[0], item[1], item[2]))
    return tabs


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _render_extension_tab(studio: StudioView, tab: ExtensionTab) -> None:
    with gr.Tab(tab.title, id=tab.elem_id, elem_id=f"tab_{tab.elem_id}"):
        try:
            tab.blocks.render()
        except Exception as e:  # a tab Gradio cannot render: this tab says so, the page is built
            studio.plugins.problems.record(tab.extension, f"rendering the tab {tab.title!r}", e)
            gr.Markdown(f"This extension tab could not be shown: {type(e).__name__}: {e}")


def build_ui(studio: StudioView) -> tuple[gr.Blocks, dict[str, Any]]:
    served = ServedFiles()
    added_tabs = extension_tabs(studio)
    with gr.Blocks(title="Stable Diffusion", analytics_enabled=False, delete_cache=UPLOAD_CACHE) as demo:
        demo.served_files = served  # type: ignore[attr-defined]  # for wire_panel (Open folder, Save, Zip)
        checkpoint, refresh, notice = _build_top_bar(studio)
        with gr.Tabs(elem_id="tabs") as tabs:
            with gr.Tab("txt2img", id="txt2img", elem_id="tab_txt2img"):
                txt2img = build_txt2img_tab(studio, demo, served, checkpoint)
            with gr.Tab("img2img", id="img2img", elem_id="tab_img2img"):
                img2img = build_img2img_tab(studio, demo, served, checkpoint)
            with gr.Tab("Extras", id="extras", elem_id="tab_extras"):
                extras = build_extras_tab(studio, demo, served)  # its .image: "Send to extras"
            with gr.Tab("PNG Info", id="pnginfo", elem_id="tab_pnginfo"):
                png_info = build_png_info_tab()
            with gr.Tab("Checkpoint Merger", id="modelmerger", elem_id="tab_modelmerger"):  # after PNG Info
                build_merger_tab(studio, checkpoint)
            for added in added_tabs:
                _render_extension_tab(studio, added)
            with gr.Tab("Settings", id="settings", elem_id="tab_settings") as settings_tab:
                settings = build_settings_tab(studio, demo, settings_tab)
            with gr.Tab("Extensions", id="extensions", elem_id="tab_extensions"):  # after Settings, as A1111
                build_extensions_tab(studio, demo)
        targets = _wire_between_tabs(studio, tabs, txt2img, img2img)
        assert img2img.inputs is not None
        wire_png_info_send(png_info, tabs, targets, img2img.inputs, extras)
        _wire_top_bar(studio, demo, checkpoint, refresh, notice, settings, txt2img.row.networks)
        _footer(studio)
    # One event at a time per listener unless it says otherwise; generation itself is serialised
    # by the job queue, not by Gradio.
    demo.queue(default_concurrency_limit=1)
    launch_kwargs: dict[str, Any] = {
        "theme": gr.themes.Default(primary_hue="orange", secondary_hue="gray"),
        "css": CSS,
        "js": HOTKEYS_JS,
        "head": extension_assets.page_head(studio),
        "footer_links": [],  # Gradio's footer is off: ours (_footer) has the API link, versions, Reload UI
        # The one folder Gradio may serve files from, fixed here: copies of the images shown.
        "allowed_paths": [str(served.folder)],
        # The guard caps whole bodies; this caps each uploaded file, below that when it is higher.
        "max_file_size": min(MAX_UPLOAD_MB, studio.cmd.max_body_mb) * 2**20,
    }
    return demo, launch_kwargs
