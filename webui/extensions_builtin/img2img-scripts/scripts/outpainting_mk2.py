"""Outpainting mk2 (A1111's img2img script): grow the canvas, fill it with colour-matched noise,
repaint the new area.

API args, as A1111 v1.10.1: ``["", pixels, mask_blur, direction, noise_q, color_variation]`` —
the first slot is the info text, ``direction`` a list of "left", "right", "up", "down". The
canvas grows to multiples of 64 as in A1111, and the img2img outpaint (method "mk2") does the
work in one pass. ``noise_q`` and ``color_variation`` are accepted and checked, but SD Studio's
mk2 fill has no such knobs (its noise takes the original's colour spread): they change nothing.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from webui.plugins.api import Processed, Processing, Script, process_images
from webui.scripts import outpaint_job
from webui.scripts.script_args import DIRECTIONS, number


def _plan(p: Processing, pixels: Any, mask_blur: Any, direction: Any, noise_q: Any,
          color_variation: Any) -> outpaint_job.OutpaintPlan:
    number(noise_q, "Fall-off exponent", 0, 4)
    number(color_variation, "Color variation", 0, 1)
    return outpaint_job.plan(p, pixels, mask_blur, direction)


class OutpaintingMk2(Script):
    def title(self) -> str:
        return "Outpainting mk2"

    def show(self, is_img2img: bool) -> bool:
        return is_img2img

    def ui(self, is_img2img: bool) -> list[Any]:
        info = gr.HTML("<p style=\"margin-bottom:0.75em\">Recommended settings: Sampling Steps: 80-100, "
                       "Sampler: Euler a, Denoising strength: 0.8</p>")
        pixels = gr.Slider(minimum=8, maximum=256, step=8, value=128, label="Pixels to expand",
                           elem_id=self.elem_id("pixels"))
        mask_blur = gr.Slider(minimum=0, maximum=64, step=1, value=8, label="Mask blur",
                              elem_id=self.elem_id("mask_blur"))
        direction = gr.CheckboxGroup(choices=list(DIRECTIONS), value=list(DIRECTIONS), label="Outpainting direction",
                                     elem_id=self.elem_id("direction"))
        noise_q = gr.Slider(minimum=0.0, maximum=4.0, step=0.01, value=1.0,
                            label="Fall-off exponent (lower=higher detail)", elem_id=self.elem_id("noise_q"))
        color_variation = gr.Slider(minimum=0.0, maximum=1.0, step=0.01, value=0.05, label="Color variation",
                                    elem_id=self.elem_id("color_variation"))
        return [info, pixels, mask_blur, direction, noise_q, color_variation]

    def check_args(self, p: Processing, _info: Any = None, pixels: Any = 128, mask_blur: Any = 8,
                   direction: Any = DIRECTIONS, noise_q: Any = 1.0, color_variation: Any = 0.05) -> None:
        _plan(p, pixels, mask_blur, direction, noise_q, color_variation)

    def run(self, p: Processing, _info: Any = None, pixels: Any = 128, mask_blur: Any = 8,
            direction: Any = DIRECTIONS, noise_q: Any = 1.0, color_variation: Any = 0.05) -> Processed:
        plan = _plan(p, pixels, mask_blur, direction, noise_q, color_variation)
        outpaint_job.apply(p, plan, "mk2")
        return process_images(p)
