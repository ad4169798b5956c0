"""The Hires. fix and Refiner accordions of txt2img, with A1111's fields, defaults and element ids."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr
from pydantic import ValidationError

from webui import samplers, upscalers
from webui.request import (
    MAX_SIZE,
    USE_SAME_CHECKPOINT,
    USE_SAME_SAMPLER,
    USE_SAME_SCHEDULER,
    GenerationRequest,
)
from webui.ui.generation_panel import PRIVATE, offered_schedules
from webui.ui.job_view import validation_message
from webui.ui.protocol import StudioView


@dataclass
class HiresControls:
    enable: gr.Checkbox
    scale: gr.Slider
    resize_x: gr.Slider
    resize_y: gr.Slider
    upscaler: gr.Dropdown
    steps: gr.Slider
    denoising: gr.Slider
    checkpoint: gr.Dropdown
    sampler: gr.Dropdown
    scheduler: gr.Dropdown
    prompt: gr.Textbox
    negative: gr.Textbox
    summary: gr.Markdown

    @property
    def inputs(self) -> list[Any]:
        return [self.enable, self.scale, self.resize_x, self.resize_y, self.upscaler, self.steps, self.denoising,
                self.checkpoint, self.sampler, self.scheduler, self.prompt, self.negative]


@dataclass
class RefinerControls:
    enable: gr.Checkbox
    checkpoint: gr.Dropdown
    switch_at: gr.Slider

    @property
    def inputs(self) -> list[Any]:
        return [self.enable, self.checkpoint, self.switch_at]


def _titles(studio: StudioView) -> list[str]:
    return [f.title for f in studio.catalog.checkpoints if studio.catalog.refused.reason(f.path) is None]


def _upscalers(studio: StudioView) -> list[str]:
    """Latent modes, None/Lanczos/Nearest, then the model files the studio found (refreshed first)."""
    service = getattr(studio, "upscalers", None)  # webui.upscaling.Upscalers
    if service is None:
        return upscalers.hires_upscalers()
    service.refresh()
    return upscalers.hires_upscalers(service.names())


def build_hires(studio: StudioView, tab: str) -> HiresControls:
    with gr.Accordion("Hires. fix", open=False, elem_id=f"{tab}_hr"):
        enable = gr.Checkbox(False, label="Enable hires. fix", elem_id=f"{tab}_enable_hr")
        with gr.Row():
            upscaler = gr.Dropdown(_upscalers(studio), value=upscalers.DEFAULT_LATENT_MODE,
                                   label="Upscaler", elem_id=f"{tab}_hr_upscaler")
            steps = gr.Slider(0, 150, step=1, precision=0, value=0, label="Hires steps", elem_id=f"{tab}_hires_steps")
            denoising = gr.Slider(0.0, 1.0, step=0.01, value=0.7, label="Denoising strength",
                                  elem_id=f"{tab}_denoising_strength")
        with gr.Row():
            scale = gr.Slider(1.0, 4.0, step=0.05, value=2.0, label="Upscale by", elem_id=f"{tab}_hr_scale")
            resize_x = gr.Slider(0, MAX_SIZE, step=8, precision=0, value=0, label="Resize width to",
                                 elem_id=f"{tab}_hr_resize_x")
            resize_y = gr.Slider(0, MAX_SIZE, step=8, precision=0, value=0, label="Resize height to",
                                 elem_id=f"{tab}_hr_resize_y")
        with gr.Row():
            checkpoint = gr.Dropdown([USE_SAME_CHECKPOINT, *_titles(studio)], value=USE_SAME_CHECKPOINT,
                                     label="Hires checkpoint", elem_id=f"{tab}_hr_checkpoint")
            sampler = gr.Dropdown([USE_SAME_SAMPLER, *(s.name for s in samplers.SAMPLERS)], value=USE_SAME_SAMPLER,
                                  label="Hires sampling method", elem_id=f"{tab}_hr_sampler")
            scheduler = gr.Dropdown([USE_SAME_SCHEDULER, *samplers.SCHEDULE_TYPES], value=USE_SAME_SCHEDULER,
                                    label="Hires schedule type", elem_id=f"{tab}_hr_scheduler")
        # "Use same sampler" offers every type: the first pass's sampler decides (A1111's rule).
        sampler.change(lambda name, current: gr.update(
            choices=offered_schedules(None if name == USE_SAME_SAMPLER else name, (USE_SAME_SCHEDULER,)),
            value=current if current in offered_schedules(name, (USE_SAME_SCHEDULER,)) else USE_SAME_SCHEDULER),
            inputs=[sampler, scheduler], outputs=scheduler, api_visibility="private", queue=False)
        with gr.Row():
            prompt = gr.Textbox(label="Hires prompt", lines=2, placeholder="Leave empty for the same prompt",
                                elem_id=f"{tab}_hires_prompt")
            negative = gr.Textbox(label="Hires negative prompt", lines=2,
                                  placeholder="Leave empty for the same negative prompt",
                                  elem_id=f"{tab}_hires_neg_prompt")
        summary = gr.Markdown("", elem_id=f"{tab}_hires_summary")
    return HiresControls(enable, scale, resize_x, resize_y, upscaler, steps, denoising, checkpoint, sampler, scheduler,
                         prompt, negative, summary)


def build_refiner(studio: StudioView, tab: str) -> RefinerControls:
    with gr.Accordion("Refiner", open=False, elem_id=f"{tab}_refiner"):
        enable = gr.Checkbox(False, label="Enable refiner", elem_id=f"{tab}_enable_refiner")
        with gr.Row():
            checkpoint = gr.Dropdown(_titles(studio), value=None, label="Checkpoint",
                                     elem_id=f"{tab}_refiner_checkpoint")
            switch_at = gr.Slider(0.01, 1.0, step=0.01, value=0.8, label="Switch at",
                                  elem_id=f"{tab}_refiner_switch_at")
    return RefinerControls(enable, checkpoint, switch_at)


def hires_summary(width: float, height: float, scale: float, resize_x: float, resize_y: float) -> str:
    """A1111's line under the hires settings: "from 512x512 to 1024x1024"."""
    try:
        request = GenerationRequest(width=int(width), height=int(height), enable_hr=True, hr_scale=float(scale),
                                    hr_resize_x=int(resize_x or 0), hr_resize_y=int(resize_y or 0))
    except ValidationError as e:  # a size hires fix cannot reach: say why instead of a size
        return f"⚠️ {validation_message(e)}"
    final_w, final_h = request.hires_size
    return f"from {request.width}x{request.height} to **{final_w}x{final_h}**"


def wire_hires(studio: StudioView, demo: gr.Blocks, hires: HiresControls, refiner: RefinerControls,
               width: gr.Slider, height: gr.Slider) -> None:
    sizes = [width, height, hires.scale, hires.resize_x, hires.resize_y]
    # On release, not on change: a half-typed width ("1" of "100") is below the slider's minimum and
    # Gradio would answer every keystroke with an error.
    for control in sizes:
        control.release(hires_summary, inputs=sizes, outputs=hires.summary, show_progress="hidden", **PRIVATE)
    # Choosing a refiner checkpoint means wanting it: tick Enable (A1111's accordion does the same).
    refiner.checkpoint.input(lambda title: bool(title), inputs=refiner.checkpoint, outputs=refiner.enable, **PRIVATE)

    def checkpoints() -> tuple[dict, dict]:
        titles = _titles(studio)
        return gr.update(choices=[USE_SAME_CHECKPOINT, *titles]), gr.update(choices=titles)

    demo.load(checkpoints, outputs=[hires.checkpoint, refiner.checkpoint], **PRIVATE)
    demo.load(lambda: gr.update(choices=_upscalers(studio)), outputs=hires.upscaler, **PRIVATE)
    demo.load(hires_summary, inputs=sizes, outputs=hires.summary, **PRIVATE)
