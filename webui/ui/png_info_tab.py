"""PNG Info tab: an image's infotext and other metadata, and Send to the generation tabs/Extras.

A1111's layout and element ids: the image (``pnginfo_image``) on the left; on the right what was
found (``pnginfo_html``: the parameters first, then the other PNG text chunks and EXIF fields),
the raw infotext (hidden, ``pnginfo_generation_info``) and the buttons "Send to txt2img / img2img
/ inpaint / extras" (``txt2img_tab``, ``img2img_tab``, ``inpaint_tab``, ``extras_tab``). Sending
fills the target tab as ↙ does (webui/ui/paste_params.py), puts the image in img2img's input, the
inpaint canvas or Extras' source, and switches tab.

The upload is read here, not by Gradio's image preprocessing, so that a file that is not an
image, or a damaged one, gets a message instead of an error; only files in Gradio's upload
folder are opened.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
from gradio import utils as gradio_utils
from PIL import Image, UnidentifiedImageError

from webui.image_metadata import read_metadata
from webui.request_img2img import MAX_INPUT_SIDE
from webui.ui.img2img_inputs import InputTabs
from webui.ui.paste_params import PasteTab
from webui.ui.send_to import sent_updates

PRIVATE: dict[str, Any] = {"api_visibility": "private", "queue": False}
TARGETS = ("txt2img", "img2img", "inpaint", "extras")


class UnreadableImage(ValueError):
    pass


@dataclass
class PngInfoTab:
    image: gr.Image
    info: gr.Textbox  # the raw infotext, what Send to reads
    html: gr.HTML
    buttons: dict[str, gr.Button]


def uploaded_path(payload: Any) -> Path | None:
    """The file behind an image input's raw value, when it is one Gradio stored from an upload."""
    path = payload.get("path") if isinstance(payload, dict) else None
    if not isinstance(path, str) or not path:
        return None
    found = Path(path).resolve()
    if not found.is_relative_to(Path(gradio_utils.get_upload_folder()).resolve()) or not found.is_file():
        return None
    return found


def open_image(path: Path) -> Image.Image:
    """The image at ``path``, loaded; ``UnreadableImage`` with a reason otherwise."""
    try:
        image = Image.open(path)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise UnreadableImage(f"this file is not a readable image ({type(e).__name__})") from None
    try:
        if max(image.size) > MAX_INPUT_SIDE or min(image.size) < 1:
            raise UnreadableImage(f"the image is {image.width}x{image.height}; each side may be at most {MAX_INPUT_SIDE}")
        image.load()
    except UnreadableImage:
        image.close()
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        image.close()
        raise UnreadableImage(f"this file is not a readable image ({type(e).__name__})") from None
    return image


def info_html(text: str, items: dict[str, Any]) -> str:
    """A1111's listing: each entry as a bold name over its (escaped) value."""
    entries = {"parameters": text, **items} if text else dict(items)
    if not entries:
        return "<div><p>Nothing found in the image.</p></div>"
    return "\n".join(f"<div><p><b>{html.escape(str(k))}</b></p><p>{html.escape(str(v)).replace(chr(10), '<br>')}</p></div>"
                     for k, v in entries.items())


def read_upload(payload: Any) -> tuple[str, str]:
    """(raw infotext, HTML listing) for the image input's raw value."""
    path = uploaded_path(payload)
    if path is None:
        return "", ""
    try:
        with open_image(path) as image:
            text, items = read_metadata(image)
    except UnreadableImage as e:
        return "", f'<div class="sd-error">PNG Info: {html.escape(str(e))}</div>'
    return text, info_html(text, items)


def build_png_info_tab() -> PngInfoTab:
    with gr.Row(equal_height=False):
        with gr.Column(variant="panel"):
            image = gr.Image(label="Source", type="filepath", image_mode=None, sources=["upload", "clipboard"],
                             elem_id="pnginfo_image", height=512)
        with gr.Column(variant="panel"):
            info = gr.Textbox(visible=False, elem_id="pnginfo_generation_info")
            shown = gr.HTML("", elem_id="pnginfo_html")
            with gr.Row():
                buttons = {t: gr.Button(f"Send to {t}", elem_id=f"{t}_tab") for t in TARGETS}
    # preprocess=False: the raw upload reaches read_upload, which opens it (see the docstring).
    image.change(read_upload, inputs=image, outputs=[info, shown], preprocess=False, **PRIVATE)
    return PngInfoTab(image, info, shown, buttons)


def wire_png_info_send(png: PngInfoTab, tabs: gr.Tabs, targets: dict[str, PasteTab], inputs: InputTabs,
                       extras: Any | None) -> None:
    """Send to: ``targets`` are txt2img's and img2img's fields; ``extras`` the Extras tab
    (webui/ui/extras_tab.py ``ExtrasTab``), or None when there is none."""

    def picture(payload: Any) -> Image.Image | None:
        path = uploaded_path(payload)
        if path is None:
            return None
        try:
            with open_image(path) as image:
                return image.convert("RGB")
        except UnreadableImage:
            return None

    txt2img, img2img = targets["txt2img"], targets["img2img"]
    png.buttons["txt2img"].click(
        lambda text: (*sent_updates(txt2img, text), gr.Tabs(selected="txt2img")),
        inputs=png.info, outputs=[*txt2img.fields.values(), tabs], **PRIVATE)

    def to_img2img(payload: Any, text: str, inpaint: bool) -> tuple:
        image = picture(payload)
        if image is None:
            gr.Warning("PNG Info: open an image first.")
            return (gr.skip(),) * (4 + len(img2img.fields))
        canvas = {"background": image, "layers": [], "composite": image} if inpaint else image
        return (canvas, *sent_updates(img2img, text, size=image.size), "Inpaint" if inpaint else "img2img",
                gr.Tabs(selected="img2img"), gr.Tabs(selected="img2img_inpaint_tab" if inpaint else "img2img_img2img_tab"))

    for name, inpaint, output in (("img2img", False, inputs.image), ("inpaint", True, inputs.inpaint)):
        png.buttons[name].click(
            lambda payload, text, inpaint=inpaint: to_img2img(payload, text, inpaint), inputs=[png.image, png.info],
            outputs=[output, *img2img.fields.values(), inputs.mode, tabs, inputs.group], preprocess=False, **PRIVATE)

    if extras is None:
        png.buttons["extras"].visible = False
        return
    from webui.ui import extras_tab

    def to_extras(payload: Any) -> tuple:
        path = uploaded_path(payload)
        if path is None or picture(payload) is None:
            gr.Warning("PNG Info: open an image first.")
            return (gr.skip(),) * 4
        # The file itself, so Extras keeps its infotext.
        return (str(path), extras_tab.SINGLE, gr.Tabs(selected=extras_tab.MODE_TAB_IDS[extras_tab.SINGLE]),
                gr.Tabs(selected=extras_tab.TAB_ID))

    png.buttons["extras"].click(to_extras, inputs=png.image, outputs=[extras.image, extras.mode, extras.modes, tabs],
                                preprocess=False, **PRIVATE)
