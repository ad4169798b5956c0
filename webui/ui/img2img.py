"""img2img tab: A1111's layout (input sub-tabs, resize, inpaint and outpaint settings) on the
generation panel shared with txt2img. Builds GenerationRequests with ``img2img`` set, submits
them to the queue and follows them; no generation here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import gradio as gr
from PIL import Image
from pydantic import ValidationError

from webui.jobs import JobState
from webui.request import LATENT_SCALE, MIN_SIZE, GenerationRequest
from webui.request_img2img import (
    MASK_MODES,
    MASKED_CONTENT,
    OUTPAINT_METHODS,
    RESIZE_MODES,
    Img2ImgInput,
    InpaintSettings,
    OutpaintSettings,
)
from webui.styles import StyleError
from webui.ui import img2img_batch, job_view
from webui.ui.generation_panel import (
    GenerationTab,
    build_prompt_row,
    build_results,
    build_sampling,
    request_fields,
    wire_panel,
)
from webui.ui.img2img_inputs import (
    INPAINT_MODES,
    InputError,
    InputTabs,
    build_input_tabs,
    chosen_inputs,
)
from webui.ui.paste_params import (
    OverrideError,
    build_override_settings,
    request_overrides,
)
from webui.ui.protocol import StudioView
from webui.ui.scripts_ui import ScriptArgsError, build_scripts, with_script_params
from webui.ui.send_to import send_buttons
from webui.ui.served_files import ServedFiles
from webui.ui.session import page_user
from webui.ui.txt2img import own_checkpoint

TAB = "img2img"


@dataclass
class Img2ImgTab(GenerationTab):
    """The tab's parts other tabs need: its inputs (Send to img2img / inpaint), and the fields
    only img2img has that ↙ fills."""

    inputs: InputTabs | None = None
    extra_fields: dict[str, Any] = field(default_factory=dict)


def _inpaint_controls() -> list[Any]:
    with gr.Accordion("Inpaint", open=True, elem_id="img2img_inpaint_controls"):
        blur = gr.Slider(0, 64, step=1, value=4, label="Mask blur", elem_id="img2img_mask_blur")
        mode = gr.Radio(list(MASK_MODES), value=MASK_MODES[0], label="Mask mode", elem_id="img2img_mask_mode")
        content = gr.Radio(list(MASKED_CONTENT), value="original", label="Masked content",
                           elem_id="img2img_inpainting_fill")
        with gr.Row():
            area = gr.Radio(["Whole picture", "Only masked"], value="Whole picture", label="Inpaint area",
                            elem_id="img2img_inpaint_full_res")
            padding = gr.Slider(0, 256, step=4, value=32, label="Only masked padding, pixels",
                                elem_id="img2img_inpaint_full_res_padding")
    return [blur, mode, content, area, padding]


def _outpaint_controls() -> list[Any]:
    with gr.Accordion("Outpaint (grow the canvas)", open=False, elem_id="img2img_outpaint_controls"):
        gr.Markdown("Pixels to add on each side; the new area is filled, then inpainted with the prompt.")
        with gr.Row():
            sides = [gr.Slider(0, 512, step=8, value=0, label=side.capitalize(), elem_id=f"img2img_outpaint_{side}")
                     for side in ("left", "right", "up", "down")]
        method = gr.Radio(list(OUTPAINT_METHODS), value="mk2", label="Fill the new area with",
                          info="mk2: colour-matched noise · poor man: the masked-content fill · fill: edge colours",
                          elem_id="img2img_outpaint_method")
    return [*sides, method]


def _size_controls() -> list[Any]:
    with gr.Row():
        resize_mode = gr.Radio(list(RESIZE_MODES), value=RESIZE_MODES[0], type="index", label="Resize mode",
                               elem_id="resize_mode")
    with gr.Row():
        size_mode = gr.Radio(["Resize to", "Resize by"], value="Resize to", label="Size", elem_id="img2img_size_mode")
        scale = gr.Slider(0.05, 4.0, step=0.05, value=1.0, label="Scale (Resize by)", elem_id="img2img_scale")
    return [resize_mode, size_mode, scale]


def build_img2img_tab(studio: StudioView, demo: gr.Blocks, served: ServedFiles, checkpoint: gr.Dropdown) -> Img2ImgTab:
    row = build_prompt_row(studio, demo, TAB)
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, elem_id=f"{TAB}_settings"):
            inputs = build_input_tabs(studio)
            size = _size_controls()
            sampling = build_sampling(studio, TAB)
            denoising = gr.Slider(0.0, 1.0, step=0.01, value=0.75, label="Denoising strength",
                                  elem_id="img2img_denoising_strength")
            inpaint = _inpaint_controls()
            outpaint = _outpaint_controls()
            override = build_override_settings(TAB)
            scripts = build_scripts(studio, TAB)
        with gr.Column(scale=1, elem_id=f"{TAB}_results"):
            results = build_results(TAB)
            send = send_buttons(TAB)

    def run(prompt: str, negative_prompt: str, styles: list[str] | None, sampler_name: str, scheduler: str,
            steps: float, width: float, height: float, cfg_scale: float, seed: float | None, subseed: float | None,
            subseed_strength: float, seed_resize_from_w: float, seed_resize_from_h: float, n_iter: float,
            batch_size: float, mode: str = "img2img", image: Any = None, sketch: Any = None, inpaint_value: Any = None,
            inpaint_sketch: Any = None, upload_image: Any = None, upload_mask: Any = None, batch_input: str = "",
            batch_output: str = "", batch_masks: str = "", resize_mode: int = 0, size_mode: str = "Resize to",
            scale: float = 1.0, denoising_strength: float = 0.75, mask_blur: float = 4,
            mask_mode: str = MASK_MODES[0], masked_content: str = "original", inpaint_area: str = "Whole picture",
            padding: float = 32, left: float = 0, right: float = 0, up: float = 0, down: float = 0,
            outpaint_method: str = "mk2", checkpoint: str | None = None, override_settings: list[str] | None = None,
            script_values: Sequence[Any] = (),
            request: gr.Request | None = None) -> Iterator[tuple]:
        user = page_user(studio, request)
        common = dict(
            **request_fields(studio, prompt, negative_prompt, styles, sampler_name, scheduler, steps, cfg_scale, seed,
                             subseed, subseed_strength, seed_resize_from_w, seed_resize_from_h, n_iter, batch_size),
            denoising_strength=denoising_strength, **scripts.request_fields(script_values),
        )
        inpaint = dict(blur_x=int(mask_blur), blur_y=int(mask_blur), invert=mask_mode == MASK_MODES[1],
                       masked_content=masked_content, only_masked=inpaint_area == "Only masked", padding=int(padding))
        outpaint = OutpaintSettings(left=int(left), right=int(right), up=int(up), down=int(down),
                                    method=outpaint_method)

        def build(picture: Image.Image, mask: Image.Image | None, **extra: Any) -> GenerationRequest:
            w, h = (width, height) if size_mode != "Resize by" else _scaled(picture, scale)
            settings = Img2ImgInput(init_images=[picture], resize_mode=int(resize_mode or 0),
                                    inpaint=InpaintSettings(mask=mask, **inpaint) if mask is not None else None,
                                    outpaint=outpaint if outpaint.grows else None, **extra)
            made = GenerationRequest(**common, width=w, height=h, img2img=settings)
            scripts.check(made)
            return made

        try:
            common.update(request_overrides(studio, own_checkpoint(studio, user, checkpoint), override_settings))
            studio.styles.check(styles or [])
            if mode == "Batch":
                yield from _run_batch(studio, served, user, build, batch_input, batch_output, batch_masks)
                return
            picture, mask = chosen_inputs(mode, image, sketch, inpaint_value, inpaint_sketch, upload_image, upload_mask)
            req = build(picture, mask if mode in INPAINT_MODES else None)
        except (InputError, StyleError, ScriptArgsError, OverrideError) as e:
            yield job_view.outputs(info=gr.skip(), log_html=job_view.error_html(str(e)))
            return
        except ValidationError as e:
            yield job_view.outputs(info=gr.skip(), log_html=job_view.error_html(job_view.validation_message(e)))
            return
        yield from job_view.submit_and_follow(studio, served, user.name, req, "img2img")

    inputs_list = [row.prompt, row.negative, row.styles, *sampling.inputs, *inputs.inputs, *size, denoising, *inpaint,
                   *outpaint, checkpoint, override, *scripts.inputs]
    wire_panel(studio, demo, row, sampling, results, with_script_params(run, scripts), inputs_list,
               api_name="img2img", served=served)
    blur, mask_mode, content, area, padding = inpaint
    extra = {"denoising_strength": denoising, "mask_blur": blur, "mask_mode": mask_mode, "masked_content": content,
             "inpaint_area": area, "padding": padding, "override_settings": override}
    return Img2ImgTab(row, results, send, sampling, inputs, extra)


def _scaled(picture: Image.Image, scale: float) -> tuple[int, int]:
    """'Resize by': the picture's size times ``scale``, in 8-pixel cells (as the latents are)."""
    return (max(MIN_SIZE, int(picture.width * scale) // LATENT_SCALE * LATENT_SCALE),
            max(MIN_SIZE, int(picture.height * scale) // LATENT_SCALE * LATENT_SCALE))


def _run_batch(studio: StudioView, served: ServedFiles, user: Any, build: Any, input_text: str, output_text: str,
               mask_text: str) -> Iterator[tuple]:
    """One job per input image, in name order; the gallery ends with every result."""
    paths = studio.paths
    source = img2img_batch.readable_folder(input_text, "the input directory", paths, user)
    masks = img2img_batch.readable_folder(mask_text, "the mask directory", paths, user) if mask_text.strip() else None
    output = output_text.strip() or "outputs/img2img-batch"
    try:
        paths.outputs(output)
    except ValueError as e:
        raise InputError(f"Batch: {e}") from None
    made: list[str] = []
    for item in img2img_batch.batch_items(source, masks):
        mask = img2img_batch.load(item.mask) if item.mask is not None else None
        req = build(img2img_batch.load(item.image), mask, output_dir=output, output_name=item.image.name)
        job = None
        for update in job_view.submit_and_follow(studio, served, user.name, req, "img2img"):
            job = studio.queue.get(update[6]) if isinstance(update[6], str) else job
            yield update
        if job is None or job.state is not JobState.DONE:
            return  # refused, failed, cancelled or interrupted: the last update said why
        made += [served.serve(g.path) for g in job.result.images if g.path is not None]
        if job.interrupted:
            return
    yield job_view.outputs(gallery=made, info=gr.skip(),
                           log_html=f'<div class="sd-timings">Batch: {len(made)} images written to {output}</div>')
