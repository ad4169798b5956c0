"""Settings tab: one control per option, grouped by section: the OPTIONS table's, then those the
extensions declared (``studio.options.infos()``), then A1111's ``localization`` (once an extension
ships one).

The table in webui/settings.py is the single source: adding an option there adds it here. The
tab only reads values and hands the changed ones to ``studio.options.update``, which validates,
runs listeners (a checkpoint switch) and persists config.json. Controls have A1111's element ids,
``setting_<key>`` (extensions' page scripts look them up), but for the checkpoint: the top bar's
dropdown is ``setting_sd_model_checkpoint``, as A1111's quick setting is.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import gradio as gr

from webui import samplers
from webui.models.manager import VAE_AUTOMATIC, VAE_NONE
from webui.settings import OptionInfo
from webui.ui.extension_assets import LOCALIZATION_OPTION, localization_choices
from webui.ui.protocol import StudioView
from webui.ui.session import page_user

log = logging.getLogger(__name__)

# Options shown as dropdowns of names known elsewhere rather than free text.
_CHECKPOINT, _VAE, _SAMPLER = "sd_model_checkpoint", "sd_vae", "txt2img_default_sampler"


def checkpoint_choices(studio: StudioView) -> tuple[list[tuple[str, str]], str | None]:
    """(label, title) per checkpoint, and the title of the active model (or None) as the value.

    A file that was refused (a pickle asking for code, a truncated file) is labelled with ⛔ and
    the reason. The value is taken from the catalog list itself, so a dropdown never holds a value
    missing from its choices (the active title may have gained its hash since it was stored).
    """
    files = studio.catalog.checkpoints
    choices = []
    for f in files:
        refused = studio.catalog.refused.reason(f.path)
        choices.append((f"⛔ {f.title} — refused: {refused}" if refused else f.title, f.title))
    active = studio.manager.selected
    if active is None:
        return choices, None
    match = next((f.title for f in files if f.path == active.file.path), None)
    if match is None:  # loaded, then deleted from disk: still show what is active
        choices.append((active.file.title, active.file.title))
        match = active.file.title
    return choices, match


def vae_choices(studio: StudioView) -> list[tuple[str, str]]:
    """(label, value) per VAE choice; a refused file is labelled with ⛔ and the reason."""
    choices = [(VAE_AUTOMATIC, VAE_AUTOMATIC), (VAE_NONE, VAE_NONE)]
    for f in studio.catalog.vaes:
        refused = studio.catalog.refused.reason(f.path)
        choices.append((f"⛔ {f.title} — refused: {refused}" if refused else f.title, f.title))
    return choices


def _component(key: str, info: OptionInfo, studio: StudioView) -> gr.components.Component:
    component = _make_component(key, info, studio)
    # A1111's ids; the checkpoint's is the top bar's (one element per id).
    component.elem_id = "settings_sd_model_checkpoint" if key == _CHECKPOINT else f"setting_{key}"
    return component


def _make_component(key: str, info: OptionInfo, studio: StudioView) -> gr.components.Component:
    label = info.label
    if key == _CHECKPOINT:
        choices, value = checkpoint_choices(studio)
        return gr.Dropdown(choices=choices, value=value, label=label, allow_custom_value=False)
    if key == _VAE:
        return gr.Dropdown(choices=vae_choices(studio), value=studio.options.get(key), label=label,
                           allow_custom_value=True)
    if key == _SAMPLER:
        names = [s.name for s in samplers.SAMPLERS]
        # An alias typed into config.json by hand stays selectable rather than failing the page.
        return gr.Dropdown(choices=names, value=studio.options.get(key), label=label, allow_custom_value=True)
    value = studio.options.get(key)
    if key == LOCALIZATION_OPTION:  # a value whose file is gone stays shown rather than failing the page
        return gr.Dropdown(choices=list(info.choices or ()), value=value, label=label, allow_custom_value=True)
    if info.kind is list and info.choices is None:  # an extension's free list: any values, kept as given
        return gr.Dropdown(choices=list(value), value=list(value), label=label, multiselect=True,
                           allow_custom_value=True)
    if info.kind is list:
        return gr.CheckboxGroup(choices=list(info.choices or ()), value=list(value), label=label)
    if info.choices is not None:
        return gr.Dropdown(choices=list(info.choices), value=value, label=label)
    if info.kind is bool:
        return gr.Checkbox(value=value, label=label)
    if info.kind in (int, float):
        precision = 0 if info.kind is int else None
        step = 1 if info.kind is int else 0.5
        if info.minimum is not None and info.maximum is not None:
            return gr.Slider(info.minimum, info.maximum, value=value, step=step, precision=precision, label=label)
        return gr.Number(value=value, precision=precision, label=label,
                         minimum=info.minimum, maximum=info.maximum)
    return gr.Textbox(value=value, label=label, lines=1)


def shown_options(studio: StudioView) -> dict[str, OptionInfo]:
    """Every option the tab shows, in the order of its controls (and of /apply_settings' inputs)."""
    # Hidden ones are set elsewhere (the Extensions tab switches extensions on and off).
    shown = {key: info for key, info in studio.options.infos().items() if not info.hidden}
    languages = localization_choices(studio)
    # A1111's option: which extension localization the page uses (offered once an extension has one).
    if LOCALIZATION_OPTION not in shown and len(languages) > 1:
        shown[LOCALIZATION_OPTION] = OptionInfo("None", "Localization (from the next start)", "User interface", str,
                                                choices=tuple(languages))
    return shown


def _current_values(studio: StudioView, options: dict[str, OptionInfo]) -> list[Any]:
    """What the controls should show now (also after changes made through the REST API)."""
    values = []
    for key in options:
        if key == _CHECKPOINT:
            choices, value = checkpoint_choices(studio)
            values.append(gr.Dropdown(choices=choices, value=value))
        elif key == _VAE:
            values.append(gr.Dropdown(choices=vae_choices(studio), value=studio.options.get(key)))
        else:
            values.append(studio.options.get(key))
    return values


def _changes(studio: StudioView, options: dict[str, OptionInfo], values: tuple[Any, ...]) -> dict[str, Any]:
    """Only what differs from the stored options, so apply never reloads the same model."""
    changes: dict[str, Any] = {}
    for (key, info), value in zip(options.items(), values):
        if value is None:
            continue
        if info.kind is int and isinstance(value, float) and value.is_integer():
            value = int(value)
        if key == _CHECKPOINT:
            active = studio.manager.selected
            chosen = studio.catalog.find_checkpoint(str(value))
            if active is not None and chosen is not None and chosen.path == active.file.path:
                continue
        current = studio.options.get(key)
        if (list(current) if info.kind is list else current) != value:
            changes[key] = value
    return changes


@dataclass
class SettingsTab:
    """What the top bar needs to stay in step with this tab (both can switch the checkpoint)."""

    checkpoint: gr.Dropdown
    applied: Any  # the Apply event, for chaining a top-bar refresh with .then()


def build_settings_tab(studio: StudioView, demo: gr.Blocks, tab: gr.Tab) -> SettingsTab:
    with gr.Row():
        apply = gr.Button("Apply settings", variant="primary", elem_id="settings_apply", scale=0, min_width=200)
        result = gr.Markdown("", elem_id="settings_result")
    options = shown_options(studio)
    sections: dict[str, list[tuple[str, OptionInfo]]] = {}
    for key, info in options.items():
        sections.setdefault(info.section, []).append((key, info))
    built: dict[str, gr.components.Component] = {}
    for section, entries in sections.items():
        with gr.Accordion(section, open=True):
            for key, info in entries:
                built[key] = _component(key, info, studio)
    controls: list[gr.components.Component] = [built[key] for key in options]  # options' order, whatever the sections

    def apply_settings(request: gr.Request, *values: Any) -> str:
        if not page_user(studio, request).is_admin:
            return "❌ Only an admin may change settings."
        try:
            changed = studio.options.update(_changes(studio, options, values))
        except Exception as e:  # OptionError, CheckpointError or a load failure: show, never crash
            log.error("settings not applied: %s", e)
            return f"❌ {e}"
        return f"{len(changed)} settings changed" + (f": {', '.join(changed)}." if changed else ".")

    applied = apply.click(apply_settings, inputs=controls, outputs=result, api_name="apply_settings",
                          concurrency_id="model_switch", concurrency_limit=1)
    # Values may change behind the page's back (top bar, REST API, another browser): reload them
    # on page load and whenever the tab is opened.
    demo.load(lambda: _current_values(studio, options), outputs=controls, api_visibility="private")
    tab.select(lambda: _current_values(studio, options), outputs=controls, api_visibility="private", queue=False)
    return SettingsTab(checkpoint=built[_CHECKPOINT], applied=applied)  # type: ignore[arg-type]
