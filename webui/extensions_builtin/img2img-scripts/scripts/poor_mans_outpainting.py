"""Poor man's outpainting (A1111's img2img script): grow the canvas, fill the new area with the
chosen masked content, repaint it.

API args, as A1111 v1.10.1: ``[pixels, mask_blur, inpainting_fill, direction]`` —
``inpainting_fill`` an index into fill / original / latent noise / latent nothing (or the name),
``direction`` a list of "left", "right", "up", "down". The canvas grows to multiples of 64 as in
A1111; the img2img outpaint (method "poor man") repaints the new area in one pass instead of
A1111's tile by tile.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from webui.plugins.api import Processed, Processing, Script, process_images
from webui.request_img2img import MASKED_CONTENT
from webui.scripts import outpaint_job
from webui.scripts.script_args import DIRECTIONS, choice


def _plan(p: Processing, pixels: Any, mask_blur: Any, inpainting_fill: Any,
          direction: Any) -> tuple[outpaint_job.OutpaintPlan, int]:
    content = MASKED_CONTENT.index(choice(inpainting_fill, MASKED_CONTENT, "Masked content"))
    return outpaint_job.plan(p, pixels, mask_blur, direction), content


class PoorMansOutpainting(Script):
    def title(self) -> str:
        return "Poor man's outpainting"

    def show(self, is_img2img: bool) -> bool:
        return is_img2img

    def ui(self, is_img2img: bool) -> list[Any]:
        pixels = gr.Slider(minimum=8, maximum=256, step=8, value=128, label="Pixels to expand",
                           elem_id=self.elem_id("pixels"))
        mask_blur = gr.Slider(minimum=0, maximum=64, step=1, value=4, label="Mask blur",
                              elem_id=self.elem_id("mask_blur"))
        inpainting_fill = gr.Radio(choices=list(MASKED_CONTENT), value="fill", type="index", label="Masked content",
                                   elem_id=self.elem_id("inpainting_fill"))
        direction = gr.CheckboxGroup(choices=list(DIRECTIONS), value=list(DIRECTIONS), label="Outpainting direction",
                                     elem_id=self.elem_id("direction"))
        return [pixels, mask_blur, inpainting_fill, direction]

    def check_args(self, p: Processing, pixels: Any = 128, mask_blur: Any = 4, inpainting_fill: Any = 0,
                   direction: Any = DIRECTIONS) -> None:
        _plan(p, pixels, mask_blur, inpainting_fill, direction)

    def run(self, p: Processing, pixels: Any = 128, mask_blur: Any = 4, inpainting_fill: Any = 0,
            direction: Any = DIRECTIONS) -> Processed:
        plan, content = _plan(p, pixels, mask_blur, inpainting_fill, direction)
        outpaint_job.apply(p, plan, "poor man", masked_content=content)
        return process_images(p)
