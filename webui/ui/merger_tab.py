"""The Checkpoint Merger tab, laid out as A1111's (same elem ids), for admins only.

A merge reads up to three checkpoints and writes one more into the shared models folder, so a
LAN user is refused with a sentence. The work runs in Gradio's worker thread (a sync function,
never on the event loop), one merge at a time; the merger itself is webui/models/merge.py.
"""

from __future__ import annotations

import html
from typing import Any

import gradio as gr
from pydantic import ValidationError

from webui.models.merge import MergeError, MergeRecipe, merge_checkpoints, merged_title
from webui.models.merge_recipe import CONFIG_SOURCES, INTERP_METHODS
from webui.ui.protocol import StudioView
from webui.ui.session import page_user
from webui.ui.settings_tab import checkpoint_choices

NOT_ADMIN = "only an admin may merge checkpoints"
DESCRIPTIONS = {
    "No interpolation": "No interpolation will be used. Requires one model; A. Allows for format conversion "
                        "and VAE baking.",
    "Weighted sum": "A weighted sum will be used for interpolation. Requires two models; A and B. "
                    "The result is calculated as A * (1 - M) + B * M",
    "Add difference": "The difference between the last two models will be added to the first. Requires three "
                      "models; A, B and C. The result is calculated as A + (B - C) * M",
}


def describe(method: str) -> str:
    return f"<p style='margin-bottom: 2.5em'>{html.escape(DESCRIPTIONS.get(method, ''))}</p>"


def vae_choices(studio: StudioView) -> list[str]:
    return ["None"] + [f.name for f in studio.catalog.vaes]


def _refresh_button(elem_id: str) -> gr.Button:
    return gr.Button("\u21bb", elem_classes=["tool-button"], elem_id=elem_id, scale=0, min_width=40)  # ↻


def _problem(message: str) -> str:
    return f"<p class='sd-error'>❌ {html.escape(message)}</p>"


def _validation_message(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        msg = str(item.get("msg", "invalid")).removeprefix("Value error, ")
        where = ".".join(str(p) for p in item.get("loc", ()))
        parts.append(f"{where}: {msg}" if where else msg)
    return "; ".join(parts)


def run_merge(studio: StudioView, values: dict[str, Any], admin: bool, progress=None) -> str:
    """One merge from the tab's values; the HTML shown under it (the result or why not)."""
    if not admin:
        return _problem(NOT_ADMIN)
    if not values.get("primary_model_name"):
        return _problem("Merging requires a primary model (A).")
    try:
        recipe = MergeRecipe(**values)
    except ValidationError as e:
        return _problem(_validation_message(e))
    report = None
    if progress is not None:
        def report(done: int, total: int) -> None:
            progress(done / total, desc=f"Merging: {done}/{total} tensors")
    try:
        path = merge_checkpoints(recipe, studio.catalog, progress=report)
        title = merged_title(studio.catalog, path)
    except MergeError as e:
        return _problem(f"Error merging checkpoints: {e}")
    return f"<p>✅ Checkpoint saved to {html.escape(str(path))}</p><p>Listed as <b>{html.escape(title)}</b></p>"


def build_merger_tab(studio: StudioView, top_checkpoint: gr.Dropdown | None = None) -> None:
    choices, _ = checkpoint_choices(studio)
    with gr.Row(equal_height=False):
        with gr.Column(variant="compact"):
            description = gr.HTML(describe("Weighted sum"), elem_id="modelmerger_interp_description")
            models = []
            with gr.Row(elem_id="modelmerger_models"):
                for role, letter in (("primary", "A"), ("secondary", "B"), ("tertiary", "C")):
                    dropdown = gr.Dropdown(choices=choices, value=None, label=f"{role.capitalize()} model ({letter})",
                                           elem_id=f"modelmerger_{role}_model_name")
                    models.append((dropdown, _refresh_button(f"refresh_checkpoint_{letter}")))
            custom_name = gr.Textbox(label="Custom Name (Optional)", elem_id="modelmerger_custom_name")
            amount = gr.Slider(minimum=0.0, maximum=1.0, step=0.05, value=0.3, elem_id="modelmerger_interp_amount",
                               label="Multiplier (M) - set to 0 to get model A")
            method = gr.Radio(choices=list(INTERP_METHODS), value="Weighted sum", label="Interpolation Method",
                              elem_id="modelmerger_interp_method")
            with gr.Row():
                # safetensors only: a .ckpt is a pickle, which can carry code (see docs/merger.md)
                fmt = gr.Radio(choices=["safetensors"], value="safetensors", label="Checkpoint format",
                               elem_id="modelmerger_checkpoint_format")
                half = gr.Checkbox(value=False, label="Save as float16", elem_id="modelmerger_save_as_half")
            with gr.Row():
                config = gr.Radio(choices=list(CONFIG_SOURCES), value="A, B or C", label="Copy config from",
                                  elem_id="modelmerger_config_method")
                with gr.Row():
                    vae = gr.Dropdown(choices=vae_choices(studio), value="None", label="Bake in VAE",
                                      elem_id="modelmerger_bake_in_vae")
                    vae_refresh = _refresh_button("modelmerger_refresh_bake_in_vae")
            discard = gr.Textbox(value="", label="Discard weights with matching name",
                                 elem_id="modelmerger_discard_weights")
            with gr.Accordion("Metadata", open=False):
                with gr.Row():
                    add_recipe = gr.Checkbox(value=True, label="Add merge recipe metadata",
                                             elem_id="modelmerger_add_recipe")
                    copy_meta = gr.Checkbox(value=True, label="Copy metadata from merged models",
                                            elem_id="modelmerger_copy_metadata")
            overwrite = gr.Checkbox(value=False, label="Overwrite a checkpoint of the same name",
                                    elem_id="modelmerger_overwrite")
            merge = gr.Button("Merge", variant="primary", elem_id="modelmerger_merge")
        with gr.Column(variant="compact", elem_id="modelmerger_results_container"):
            result = gr.HTML(elem_id="modelmerger_result")

    method.change(describe, inputs=method, outputs=description, api_visibility="private", queue=False)

    def listed() -> dict:
        return gr.update(choices=checkpoint_choices(studio)[0])

    def refreshed() -> dict:
        studio.refresh_checkpoints()
        return listed()

    for dropdown, button in models:
        button.click(refreshed, outputs=dropdown, api_visibility="private", queue=False)

    def vae_refreshed() -> dict:
        studio.refresh_checkpoints()  # one rescan covers both folders
        return gr.update(choices=vae_choices(studio))

    vae_refresh.click(vae_refreshed, outputs=vae, api_visibility="private", queue=False)

    names = ("primary_model_name", "secondary_model_name", "tertiary_model_name", "interp_method", "multiplier",
             "save_as_half", "custom_name", "checkpoint_format", "config_source", "bake_in_vae", "discard_weights",
             "add_merge_recipe", "copy_metadata", "overwrite")
    inputs = [m for m, _ in models] + [method, amount, half, custom_name, fmt, config, vae, discard, add_recipe,
                                       copy_meta, overwrite]
    dropdowns = [m for m, _ in models] + ([top_checkpoint] if top_checkpoint is not None else [])

    def do_merge(a: str | None, b: str | None, c: str | None, interp: str, m: float, fp16: bool, name: str,
                 checkpoint_format: str, config_source: str, bake_in_vae: str, discard_weights: str,
                 add_merge_recipe: bool, copy_metadata: bool, replace: bool, request: gr.Request,
                 progress=gr.Progress()) -> tuple[Any, ...]:  # noqa: B008  (Gradio's way of asking for it)
        values = (a, b, c, interp, m, fp16, name or "", checkpoint_format, config_source, bake_in_vae or "None",
                  discard_weights or "", add_merge_recipe, copy_metadata, replace)
        shown = run_merge(studio, dict(zip(names, values)), page_user(studio, request).is_admin, progress)
        return (*[listed() for _ in dropdowns], shown)

    merge.click(lambda: "", outputs=result, api_visibility="private", queue=False)
    merge.click(do_merge, inputs=inputs, outputs=dropdowns + [result], api_visibility="private",
                concurrency_id="modelmerger", concurrency_limit=1)
