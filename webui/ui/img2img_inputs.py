"""The img2img tab's input sub-tabs (A1111's): img2img, Sketch, Inpaint, Inpaint sketch,
Inpaint upload, Batch — and what each gives the request: init image(s) and a mask.

Masks painted in the browser come from Gradio's ImageEditor: its value holds the background
(the picture), the layers (the strokes) and the composite. The mask is wherever a layer has
paint (alpha > 0); for the sketch modes the strokes are also part of the picture.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr
import numpy as np
from PIL import Image

from webui.ui.protocol import StudioView
from webui.ui.sam_ui import build_click_to_mask

MODES = ("img2img", "Sketch", "Inpaint", "Inpaint sketch", "Inpaint upload", "Batch")
INPAINT_MODES = ("Inpaint", "Inpaint sketch", "Inpaint upload")
_SOURCES = ["upload", "clipboard"]


class InputError(ValueError):
    """Something missing or unusable in the chosen sub-tab, said in the artist's words."""


@dataclass
class InputTabs:
    mode: gr.Dropdown  # the selected sub-tab's name (hidden; a component, so API clients can set it)
    group: gr.Tabs
    tabs: dict[str, gr.Tab]
    image: gr.Image
    sketch: gr.ImageEditor
    inpaint: gr.ImageEditor
    inpaint_sketch: gr.ImageEditor
    upload_image: gr.Image
    upload_mask: gr.Image
    batch_input: gr.Textbox
    batch_output: gr.Textbox
    batch_masks: gr.Textbox

    @property
    def inputs(self) -> list[Any]:
        return [self.mode, self.image, self.sketch, self.inpaint, self.inpaint_sketch, self.upload_image,
                self.upload_mask, self.batch_input, self.batch_output, self.batch_masks]


def _editor(label: str, elem_id: str, colour: bool) -> gr.ImageEditor:
    # The inpaint brush is white and fixed (it paints the mask); sketch brushes take any colour.
    brush = gr.Brush(default_size=24, colors=["#ffffff", "#000000", "#ff0000", "#00a000", "#0050ff"],
                     default_color="#ffffff" if not colour else "#000000", color_mode="defaults" if colour else "fixed")
    return gr.ImageEditor(label=label, type="pil", image_mode="RGBA", sources=_SOURCES, brush=brush,
                          eraser=gr.Eraser(default_size=24), layers=gr.LayerOptions(allow_additional_layers=False),
                          transforms=(), height=512, format="png", elem_id=elem_id)


def build_input_tabs(studio: StudioView) -> InputTabs:
    mode = gr.Dropdown(list(MODES), value="img2img", visible=False, label="Mode", elem_id="img2img_selected_mode")
    tabs: dict[str, gr.Tab] = {}
    with gr.Tabs(elem_id="mode_img2img") as group:
        with gr.Tab("img2img", id="img2img_img2img_tab") as tabs["img2img"]:
            image = gr.Image(label="Image for img2img", type="pil", image_mode="RGBA", sources=_SOURCES, height=512,
                             format="png", elem_id="img2img_image")
        with gr.Tab("Sketch", id="img2img_img2img_sketch_tab") as tabs["Sketch"]:
            sketch = _editor("Sketch: your strokes become part of the picture", "img2img_sketch", colour=True)
        with gr.Tab("Inpaint", id="img2img_inpaint_tab") as tabs["Inpaint"]:
            inpaint = _editor("Paint the area to repaint (white brush; the eraser takes it back)", "img2maskimg",
                              colour=False)
        with gr.Tab("Inpaint sketch", id="img2img_inpaint_sketch_tab") as tabs["Inpaint sketch"]:
            inpaint_sketch = _editor("Inpaint sketch: coloured strokes are the new content and the mask",
                                     "inpaint_sketch", colour=True)
        with gr.Tab("Inpaint upload", id="img2img_inpaint_upload_tab") as tabs["Inpaint upload"]:
            with gr.Row():
                upload_image = gr.Image(label="Image", type="pil", image_mode="RGBA", sources=_SOURCES, height=384,
                                        format="png", elem_id="img_inpaint_base")
                upload_mask = gr.Image(label="Mask (white = repaint)", type="pil", image_mode="RGBA", sources=_SOURCES,
                                       height=384, format="png", elem_id="img_inpaint_mask")
            build_click_to_mask(studio, upload_image, upload_mask)
        with gr.Tab("Batch", id="img2img_batch_tab") as tabs["Batch"]:
            gr.Markdown("Every image in the input folder is processed; a mask with the same file name in the mask "
                        "folder makes it an inpaint. Results keep the input's file name. The output folder must be "
                        "inside the data dir (or a folder named with --allow-output-dir); with logins on, users read only "
                        "from there too.")
            batch_input = gr.Textbox("", label="Input directory", elem_id="img2img_batch_input_dir")
            batch_output = gr.Textbox("", label="Output directory", placeholder="outputs/img2img-batch",
                                      elem_id="img2img_batch_output_dir")
            batch_masks = gr.Textbox("", label="Inpaint batch mask directory (optional)",
                                     elem_id="img2img_batch_inpaint_mask_dir")
    for name, tab in tabs.items():
        tab.select(lambda name=name: name, outputs=mode, api_visibility="private", queue=False)
    return InputTabs(mode, group, tabs, image, sketch, inpaint, inpaint_sketch, upload_image, upload_mask, batch_input,
                     batch_output, batch_masks)


# --- what a sub-tab gives the request --------------------------------------------------------------


def painted_mask(value: dict | None) -> Image.Image | None:
    """The mask painted on an ImageEditor: white wherever any layer has paint."""
    layers = [layer for layer in (value or {}).get("layers") or [] if isinstance(layer, Image.Image)]
    if not layers:
        return None
    alpha = np.zeros(layers[0].size[::-1], dtype=bool)
    for layer in layers:
        alpha |= np.asarray(layer.convert("RGBA").getchannel("A")) > 0
    return Image.fromarray((alpha * 255).astype(np.uint8))


def _background(value: dict | None, what: str) -> Image.Image:
    image = (value or {}).get("background")
    if not isinstance(image, Image.Image):
        raise InputError(f"{what}: add a picture first (upload, paste or drop one)")
    return image


def _composite(value: dict | None, what: str) -> Image.Image:
    image = (value or {}).get("composite")
    if not isinstance(image, Image.Image):
        return _background(value, what)
    return image


def chosen_inputs(mode: str, image: Image.Image | None, sketch: dict | None, inpaint: dict | None,
                  inpaint_sketch: dict | None, upload_image: Image.Image | None,
                  upload_mask: Image.Image | None) -> tuple[Image.Image, Image.Image | None]:
    """(init image, mask or None) of the selected sub-tab; InputError when something is missing."""
    if mode == "img2img":
        if image is None:
            raise InputError("img2img: add a picture first (upload, paste or drop one)")
        return image, None
    if mode == "Sketch":
        return _composite(sketch, "Sketch"), None
    if mode in ("Inpaint", "Inpaint sketch"):
        value = inpaint if mode == "Inpaint" else inpaint_sketch
        picture = _background(value, mode) if mode == "Inpaint" else _composite(value, mode)
        mask = painted_mask(value)
        if mask is None or mask.getbbox() is None:
            raise InputError(f"{mode}: paint over the area to repaint first")
        return picture, mask.resize(picture.size) if mask.size != picture.size else mask
    if mode == "Inpaint upload":
        if upload_image is None or upload_mask is None:
            raise InputError("Inpaint upload: add both the image and its mask")
        return upload_image, upload_mask
    raise InputError(f"unknown img2img mode {mode!r}")
