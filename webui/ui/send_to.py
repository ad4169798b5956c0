""""Send to img2img / inpaint / txt2img": the selected result, with its prompts, into another tab.

The image is the gallery's selected one (its served PNG, so nothing is re-encoded); the prompts
come along, and the page switches to the target tab (and sub-tab), as A1111's buttons do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image

from webui.ui.generation_panel import ResultsPanel
from webui.ui.img2img_inputs import InputTabs

PRIVATE: dict[str, Any] = {"api_visibility": "private", "queue": False}


def selected_image(state: dict | None) -> Image.Image | None:
    """The image the gallery shows as selected (the first when none is), from the files the
    server recorded for it (never a path the page sends)."""
    files = [f for f in (state or {}).get("files", []) if isinstance(f, str)]
    if not files:
        return None
    index = (state or {}).get("selected") or 0
    path = Path(files[index if 0 <= index < len(files) else 0])
    if not path.is_file():
        return None
    with Image.open(path) as image:
        return image.convert("RGB")


def send_buttons(tab: str) -> dict[str, gr.Button]:
    """The row under a tab's results: ↙ paste parameters, then Send to (txt2img ↔ img2img), with
    A1111's element ids; the "paste" entry is the ↙ button."""
    targets = ["img2img", "inpaint"] + (["txt2img"] if tab == "img2img" else [])
    with gr.Row(elem_classes=["sd-send-row"]):
        buttons = {"paste": gr.Button("\u2199 Read parameters", size="sm", elem_id=f"{tab}_paste")}
        buttons.update({target: gr.Button(f"Send to {target}", size="sm", elem_id=f"{tab}_send_to_{target}")
                        for target in targets})
    buttons["message"] = gr.HTML("", elem_id=f"{tab}_paste_message")  # type: ignore[assignment]
    return buttons


def wire_send(buttons: dict[str, gr.Button], source: ResultsPanel, prompt: gr.Textbox, negative: gr.Textbox,
              tabs: gr.Tabs, inputs: InputTabs, targets: dict[str, tuple[gr.Textbox, gr.Textbox]]) -> None:
    """``targets``: each tab's (prompt, negative prompt) boxes, by tab name."""
    img2img_prompt, img2img_negative = targets["img2img"]

    def to_img2img(state, text, negative_text, inpaint: bool):
        image = selected_image(state)
        if image is None:
            gr.Warning("Select an image in the results first.")
            return (gr.skip(),) * 6
        mode = "Inpaint" if inpaint else "img2img"
        picture = {"background": image, "layers": [], "composite": image} if inpaint else image
        return (picture, text, negative_text, mode, gr.Tabs(selected="img2img"),
                gr.Tabs(selected="img2img_inpaint_tab" if inpaint else "img2img_img2img_tab"))

    picture_outputs = {"img2img": inputs.image, "inpaint": inputs.inpaint}
    for target, inpaint in (("img2img", False), ("inpaint", True)):
        if target in buttons:
            buttons[target].click(
                lambda s, p, n, inpaint=inpaint: to_img2img(s, p, n, inpaint),
                inputs=[source.shown, prompt, negative],
                outputs=[picture_outputs[target], img2img_prompt, img2img_negative, inputs.mode, tabs, inputs.group],
                **PRIVATE)
    if "txt2img" in buttons:
        txt2img_prompt, txt2img_negative = targets["txt2img"]
        buttons["txt2img"].click(lambda p, n: (p, n, gr.Tabs(selected="txt2img")), inputs=[prompt, negative],
                                 outputs=[txt2img_prompt, txt2img_negative, tabs], **PRIVATE)
