""""Send to img2img / inpaint / txt2img": the selected result, with its prompts, into another tab.

The image is the gallery's selected one (its served PNG, so nothing is re-encoded); its infotext
fills the target tab's fields as ↙ would (webui/ui/paste_params.py; the image's size is img2img's
size), and the page switches to the target tab (and sub-tab), as A1111's buttons do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image

from webui.ui.generation_panel import ResultsPanel
from webui.ui.img2img_inputs import InputTabs
from webui.ui.paste_params import PasteTab

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


def selected_infotext(state: dict | None) -> str:
    """The infotext of the image the gallery shows as selected (the first when none is)."""
    texts = (state or {}).get("infotexts", [])
    index = (state or {}).get("selected") or 0
    text = texts[index if 0 <= index < len(texts) else 0] if texts else ""
    return text if isinstance(text, str) else ""


def sent_updates(tab: PasteTab, text: str | None, prompts: tuple[str, str] | None = None,
                 size: tuple[int, int] | None = None) -> list[Any]:
    """One output per field of ``tab``: the infotext's values; without one, just ``prompts``;
    ``size`` (an image sent to img2img) wins over the text's, as A1111's "send size"."""
    updates, note = tab.updates(text or "")
    names = list(tab.fields)
    given: dict[str, Any] = {}
    if note is None and prompts is not None:
        given.update(prompt=prompts[0], negative_prompt=prompts[1])
    if size is not None:
        given.update(width=size[0], height=size[1])
    for name, value in given.items():
        if name in names:
            updates[names.index(name)] = value
    return updates


def wire_send(buttons: dict[str, gr.Button], source: ResultsPanel, prompt: gr.Textbox, negative: gr.Textbox,
              tabs: gr.Tabs, inputs: InputTabs, targets: dict[str, PasteTab]) -> None:
    """``targets``: each tab's fields by tab name; the selected image's infotext fills them (the
    prompt boxes alone when the image has none)."""
    img2img = targets["img2img"]

    def to_img2img(state, text, negative_text, inpaint: bool):
        image = selected_image(state)
        if image is None:
            gr.Warning("Select an image in the results first.")
            return (gr.skip(),) * (4 + len(img2img.fields))
        picture = {"background": image, "layers": [], "composite": image} if inpaint else image
        fields = sent_updates(img2img, selected_infotext(state), (text, negative_text), image.size)
        return (picture, *fields, "Inpaint" if inpaint else "img2img", gr.Tabs(selected="img2img"),
                gr.Tabs(selected="img2img_inpaint_tab" if inpaint else "img2img_img2img_tab"))

    picture_outputs = {"img2img": inputs.image, "inpaint": inputs.inpaint}
    for target, inpaint in (("img2img", False), ("inpaint", True)):
        if target in buttons:
            buttons[target].click(
                lambda s, p, n, inpaint=inpaint: to_img2img(s, p, n, inpaint),
                inputs=[source.shown, prompt, negative],
                outputs=[picture_outputs[target], *img2img.fields.values(), inputs.mode, tabs, inputs.group],
                **PRIVATE)
    if "txt2img" in buttons:
        txt2img = targets["txt2img"]
        buttons["txt2img"].click(
            lambda s, p, n: (*sent_updates(txt2img, selected_infotext(s), (p, n)), gr.Tabs(selected="txt2img")),
            inputs=[source.shown, prompt, negative], outputs=[*txt2img.fields.values(), tabs], **PRIVATE)
