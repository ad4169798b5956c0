"""The Styles row under Generate, as in A1111: a multi-select of styles.csv, ↻ reload, ✎ apply the
selected styles to the prompt boxes, ✚ save the current prompts as a style (A1111's 🔄 📋 💾: plain
symbols instead of emoji, which a browser without an emoji font draws as empty boxes).

The selection goes into the request's ``styles`` (the engine applies them); ✎ applies them to the
text instead and clears the selection, so they are not applied twice.
"""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass
from typing import Any

import gradio as gr

from webui.styles import StyleError
from webui.ui.protocol import StudioView
from webui.ui.session import page_user

log = logging.getLogger(__name__)

CSS = """
.sd-styles-row { align-items: end; gap: 0.4em; }
.sd-style-save-row { align-items: end; gap: 0.4em; }
.sd-style-message { font-size: 0.85em; }
"""


@dataclass
class StylesControls:
    dropdown: gr.Dropdown
    apply: gr.Button
    save: gr.Button


def build_styles(studio: StudioView, demo: gr.Blocks, prompt: gr.Textbox, negative: gr.Textbox, tools: gr.Row,
                 tab: str = "txt2img") -> StylesControls:
    """Create the controls: the ✎ and ✚ buttons inside ``tools`` (a row of tool buttons), then the
    Styles dropdown row and the (hidden) save row in the current column."""
    private: dict[str, Any] = {"api_visibility": "private", "queue": False}
    with tools:
        apply = gr.Button("\u270e", elem_classes=["tool-button"], elem_id=f"{tab}_style_apply", scale=0,
                          min_width=40)  # ✎
        save = gr.Button("\u271a", elem_classes=["tool-button"], elem_id=f"{tab}_style_create", scale=0,
                         min_width=40)  # ✚
    with gr.Row(elem_id=f"{tab}_styles_row", elem_classes=["sd-styles-row"]):
        dropdown = gr.Dropdown(choices=studio.styles.names(), value=[], multiselect=True, label="Styles",
                               elem_id=f"{tab}_styles", scale=1, min_width=120)
        refresh = gr.Button("\u21bb", elem_classes=["tool-button"], elem_id=f"{tab}_styles_refresh", scale=0,
                            min_width=40)  # ↻
    with gr.Row(elem_id=f"{tab}_style_save_row", elem_classes=["sd-style-save-row"], visible=False) as save_row:
        name = gr.Textbox(label="Style name", elem_id=f"{tab}_style_name", scale=1, min_width=100,
                          placeholder="new name, or an existing one to replace")
        confirm = gr.Button("Save", elem_id=f"{tab}_style_save", scale=0, min_width=60, size="sm")
    message = gr.HTML("", elem_classes=["sd-style-message"], js_on_load=None)

    def choices(selected: list[str] | None = None) -> dict:
        names = studio.styles.names()
        return gr.update(choices=names, value=[s for s in (selected or []) if s in names])

    def reload(selected: list[str] | None) -> tuple[dict, str]:
        studio.styles.reload()
        return choices(selected), ""

    def apply_styles(text: str, neg: str, selected: list[str] | None) -> tuple:
        try:
            # Capped like a job's prompt: a "{prompt}{prompt}" style doubles the text per use.
            new_text, new_neg = studio.styles.apply(text or "", neg or "", selected or [],
                                                    max_chars=int(studio.options.get("limit_prompt_chars")))
        except StyleError as e:
            log.error("styles not applied: %s", e)
            return gr.skip(), gr.skip(), gr.skip(), _message(str(e), error=True)
        return new_text, new_neg, gr.update(value=[]), ""

    def save_style(style_name: str, text: str, neg: str, selected: list[str] | None, request: gr.Request) -> tuple:
        if not page_user(studio, request).is_admin:  # styles.csv is shared: every user's jobs may use it
            return gr.skip(), gr.skip(), gr.skip(), _message("Only an admin may save styles.", error=True)
        try:
            style = studio.styles.save(style_name, text or "", neg or "")
        except (StyleError, OSError) as e:
            log.error("style %r not saved: %s", style_name, e)
            return gr.skip(), gr.skip(), gr.skip(), _message(f"Could not save the style: {e}", error=True)
        return (choices(selected), gr.update(value=""), gr.update(visible=False),
                _message(f"Saved style {style.name!r}."))

    refresh.click(reload, inputs=dropdown, outputs=[dropdown, message], **private)
    apply.click(apply_styles, inputs=[prompt, negative, dropdown], outputs=[prompt, negative, dropdown, message], **private)
    save.click(lambda: (gr.update(visible=True), ""), outputs=[save_row, message], **private)
    save_inputs = [name, prompt, negative, dropdown]
    save_outputs = [dropdown, name, save_row, message]
    confirm.click(save_style, inputs=save_inputs, outputs=save_outputs, **private)
    name.submit(save_style, inputs=save_inputs, outputs=save_outputs, **private)
    demo.load(lambda: choices([]), outputs=dropdown, **private)  # styles.csv may have changed since start
    return StylesControls(dropdown=dropdown, apply=apply, save=save)


def _message(text: str, error: bool = False) -> str:
    cls = "sd-error" if error else "sd-timings"
    return f'<div class="{cls}">{html.escape(text)}</div>'
