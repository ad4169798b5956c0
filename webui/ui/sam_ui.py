"""Click to mask: segment-anything on the Inpaint upload picture.

Each click on the picture adds a point (on the object, or "not the object") or a box corner
(two clicks make the box); SAM runs at once and the mask is shown over the picture. Dilate /
erode grows or shrinks it; "Use as mask" puts it in the mask slot. Without a SAM checkpoint in
models/sam the accordion says how to add one.
"""

from __future__ import annotations

from typing import Any

import gradio as gr
import numpy as np
from PIL import Image

from webui.segment import HOW_TO_ADD, SegmentError, grow_mask, list_sam_checkpoints
from webui.ui.protocol import StudioView

PRIVATE: dict[str, Any] = {"api_visibility": "private"}
CLICK_KINDS = ("object (+)", "not object (−)", "box corner")


def _overlay(picture: Image.Image, mask: Image.Image) -> Image.Image:
    """The picture with the mask tinted red, so the artist sees what will be repainted."""
    base = np.asarray(picture.convert("RGB"), dtype=np.float32)
    chosen = (np.asarray(mask.convert("L").resize(picture.size)) > 127)[..., None]
    tinted = np.where(chosen, base * 0.5 + np.array([255, 0, 0]) * 0.5, base)
    return Image.fromarray(tinted.astype(np.uint8))


def build_click_to_mask(studio: StudioView, picture: gr.Image, mask_slot: gr.Image) -> None:
    """The accordion, wired to ``picture`` (clicks) and ``mask_slot`` (where the mask goes)."""

    def names() -> list[str]:
        return [p.name for p in list_sam_checkpoints(studio.sam_dir)]

    with gr.Accordion("Click to mask (segment-anything)", open=False, elem_id="img2img_sam"):
        found = names()
        hint = gr.Markdown("" if found else HOW_TO_ADD.format(folder=studio.sam_dir), elem_id="img2img_sam_hint")
        with gr.Row():
            checkpoint = gr.Dropdown(found, value=found[0] if found else None, label="SAM checkpoint",
                                     elem_id="img2img_sam_checkpoint")
            kind = gr.Radio(list(CLICK_KINDS), value=CLICK_KINDS[0], label="A click on the picture adds",
                            elem_id="img2img_sam_click_kind")
        grow = gr.Slider(-64, 64, step=1, value=0, label="Dilate (+) / erode (−), pixels", elem_id="img2img_sam_grow")
        shown = gr.Image(label="Mask over the picture", type="pil", interactive=False, format="png", height=320,
                         elem_id="img2img_sam_preview")
        with gr.Row():
            clear = gr.Button("Clear points", size="sm", elem_id="img2img_sam_clear")
            use = gr.Button("Use as mask", size="sm", variant="primary", elem_id="img2img_sam_use")
        status = gr.HTML("", elem_id="img2img_sam_status")
    prompts = gr.State({"points": [], "corners": []})
    mask = gr.State(None)

    def segment(image: Image.Image | None, name: str | None, state: dict, amount: float) -> tuple:
        if image is None:
            return gr.skip(), None, "Add the picture first."
        path = studio.sam_dir / (name or "")
        if not name or not path.is_file():
            return gr.skip(), None, HOW_TO_ADD.format(folder=studio.sam_dir)
        corners = state["corners"]
        box = (min(corners[0][0], corners[1][0]), min(corners[0][1], corners[1][1]),
               max(corners[0][0], corners[1][0]), max(corners[0][1], corners[1][1])) if len(corners) == 2 else None
        if not state["points"] and box is None:
            return gr.skip(), None, "Click a second corner to make the box." if corners else ""
        try:
            found = studio.segmenter.predict(path, image, state["points"], box)
        except SegmentError as e:
            return gr.skip(), None, f'<div class="sd-error">{e}</div>'
        found = grow_mask(found, int(amount))
        return _overlay(image, found), found, ""

    def clicked(image, name, state, amount, click_kind, evt: gr.SelectData) -> tuple:
        x, y = (int(v) for v in evt.index[:2])
        if click_kind == "box corner":
            corners = state["corners"][-1:] if len(state["corners"]) < 2 else []
            state = {**state, "corners": [*corners, (x, y)]}
        else:
            state = {**state, "points": [*state["points"], (x, y, 0 if click_kind.startswith("not") else 1)]}
        return (state, *segment(image, name, state, amount))

    picture.select(clicked, inputs=[picture, checkpoint, prompts, grow, kind], outputs=[prompts, shown, mask, status],
                   **PRIVATE)
    grow.release(segment, inputs=[picture, checkpoint, prompts, grow], outputs=[shown, mask, status], **PRIVATE)
    clear.click(lambda: ({"points": [], "corners": []}, None, None, ""), outputs=[prompts, shown, mask, status],
                **PRIVATE, queue=False)
    picture.change(lambda: ({"points": [], "corners": []}, None, None), outputs=[prompts, shown, mask], **PRIVATE,
                   queue=False)
    use.click(lambda found: found if found is not None else gr.skip(), inputs=mask, outputs=mask_slot, **PRIVATE,
              queue=False)

    def refresh() -> tuple:
        found = names()
        return gr.update(choices=found, value=found[0] if found else None), ("" if found else
                                                                              HOW_TO_ADD.format(folder=studio.sam_dir))

    checkpoint.focus(refresh, outputs=[checkpoint, hint], **PRIVATE, queue=False)
