"""The Extras tab: upscale finished images (A1111's layout and element ids).

Three sources, as A1111: "Single Image", "Batch Process" (uploaded files) and "Batch from
Directory" (a folder on the server, under the img2img batch's policy: an admin may name any
folder, a user only folders inside the output roots; results always go inside the output roots).
Results are saved to the Extras output folder (``outdir_extras_samples``, or its namesake inside
"Output folder for all images") with the source's infotext and the postprocessing keys; batches
keep each input's file name (A1111's ``use_original_name_batch``). The work is webui/extras.py's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple, Sequence

import gradio as gr
from PIL import Image, UnidentifiedImageError

from webui import extras
from webui.flags import OutsideFolder
from webui.limits import LimitExceeded
from webui.request_img2img import MAX_INPUT_SIDE
from webui.ui import img2img_batch
from webui.ui.img2img_inputs import InputError
from webui.ui.job_view import error_html
from webui.ui.protocol import StudioView
from webui.ui.served_files import ServedFiles
from webui.ui.session import page_user
from webui.upscaling import UpscalerError

TAB_ID = "extras"
SINGLE, BATCH, DIRECTORY = 0, 1, 2
MODE_TAB_IDS = ("extras_single_tab", "extras_batch_process_tab", "extras_batch_directory_tab")
PRIVATE: dict[str, Any] = {"api_visibility": "private", "queue": False}


class ExtrasTab(NamedTuple):
    """What other tabs need for "Send to extras": set ``image`` (a file path: the PNG's infotext
    stays), select ``TAB_ID`` in the page's tabs and ``MODE_TAB_IDS[SINGLE]`` in ``modes``, and
    set ``mode`` to ``SINGLE``."""

    image: gr.Image
    modes: gr.Tabs
    mode: gr.Number
    gallery: gr.Gallery
    info: gr.HTML


def build_extras_tab(studio: StudioView, demo: gr.Blocks, served: ServedFiles) -> ExtrasTab:
    names = studio.upscalers.names()  # type: ignore[attr-defined]  # webui.upscaling.Upscalers
    # Hidden numbers (A1111's way), not gr.State: Gradio API clients can then choose them too.
    mode = gr.Number(SINGLE, precision=0, visible=False, elem_id="extras_mode")
    resize_mode = gr.Number(extras.SCALE_BY, precision=0, visible=False, elem_id="extras_resize_mode_value")
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, elem_id="extras_settings"):
            with gr.Tabs(elem_id="mode_extras") as modes:
                with gr.Tab("Single Image", id=MODE_TAB_IDS[SINGLE], elem_id=MODE_TAB_IDS[SINGLE]) as single_tab:
                    image = gr.Image(label="Source", type="filepath", sources=["upload", "clipboard"],
                                     elem_id="extras_image")
                with gr.Tab("Batch Process", id=MODE_TAB_IDS[BATCH], elem_id=MODE_TAB_IDS[BATCH]) as batch_tab:
                    files = gr.File(label="Batch Process", file_count="multiple", file_types=["image"],
                                    type="filepath", elem_id="extras_image_batch")
                with gr.Tab("Batch from Directory", id=MODE_TAB_IDS[DIRECTORY],
                            elem_id=MODE_TAB_IDS[DIRECTORY]) as directory_tab:
                    input_dir = gr.Textbox(label="Input directory", placeholder="a folder on the server",
                                           elem_id="extras_batch_input_dir")
                    output_dir = gr.Textbox(label="Output directory", elem_id="extras_batch_output_dir",
                                            placeholder="empty: the Extras output folder (outdir_extras_samples)")
                    show_results = gr.Checkbox(True, label="Show result images", elem_id="extras_show_extras_results")
            generate = gr.Button("Generate", variant="primary", elem_id="extras_generate")
            with gr.Tabs(elem_id="extras_resize_mode"):
                with gr.Tab("Scale by", elem_id="extras_scale_by_tab") as scale_by_tab:
                    resize = gr.Slider(1.0, 8.0, step=0.05, value=4, label="Resize", elem_id="extras_upscaling_resize")
                with gr.Tab("Scale to", elem_id="extras_scale_to_tab") as scale_to_tab:
                    with gr.Row():
                        width = gr.Slider(64, 8192, step=8, value=512, label="Width",
                                          elem_id="extras_upscaling_resize_w")
                        height = gr.Slider(64, 8192, step=8, value=512, label="Height",
                                           elem_id="extras_upscaling_resize_h")
                    crop = gr.Checkbox(True, label="Crop to fit", elem_id="extras_upscaling_crop")
            upscaler_1 = gr.Dropdown(names, value=names[0], label="Upscaler 1", elem_id="extras_upscaler_1")
            with gr.Row():
                upscaler_2 = gr.Dropdown(names, value=names[0], label="Upscaler 2", elem_id="extras_upscaler_2")
                visibility = gr.Slider(0.0, 1.0, step=0.001, value=0.0, label="Upscaler 2 visibility",
                                       elem_id="extras_upscaler_2_visibility")
        with gr.Column(scale=1, elem_id="extras_results"):
            gallery = gr.Gallery(label="Result", columns=2, height="auto", format="png", elem_id="extras_gallery")
            info = gr.HTML(elem_id="extras_html_info")

    for tab, value in ((single_tab, SINGLE), (batch_tab, BATCH), (directory_tab, DIRECTORY)):
        tab.select(lambda v=value: v, outputs=mode, **PRIVATE)
    scale_by_tab.select(lambda: extras.SCALE_BY, outputs=resize_mode, **PRIVATE)
    scale_to_tab.select(lambda: extras.SCALE_TO, outputs=resize_mode, **PRIVATE)

    def run(mode: int, image: str | None, files: Sequence[str] | None, input_dir: str, output_dir: str,
            show_results: bool, resize_mode: int, upscaling_resize: float, upscaling_resize_w: float,
            upscaling_resize_h: float, upscaling_crop: bool, upscaler_1: str, upscaler_2: str,
            upscaler_2_visibility: float, request: gr.Request | None = None) -> tuple[list[str], str]:
        settings = extras.ExtrasSettings(
            resize_mode=int(resize_mode or 0), upscaling_resize=float(upscaling_resize),
            upscaling_resize_w=int(upscaling_resize_w), upscaling_resize_h=int(upscaling_resize_h),
            upscaling_crop=bool(upscaling_crop), upscaler_1=upscaler_1 or extras.NO_UPSCALER,
            upscaler_2=upscaler_2 or extras.NO_UPSCALER, upscaler_2_visibility=float(upscaler_2_visibility or 0))
        try:
            saved, text = run_extras(studio, page_user(studio, request), int(mode or 0), settings, image=image,
                                     files=files or (), input_dir=input_dir or "", output_dir=output_dir or "")
        except (InputError, extras.ExtrasError, LimitExceeded, UpscalerError, OutsideFolder) as e:  # said, not raised
            return [], error_html(str(e))
        shown = [served.serve(path) for path in saved] if mode != DIRECTORY or show_results else []
        return shown, extras.html_info(text)

    # Not through the job queue (see webui/extras.py): the device lock serialises it with generation.
    generate.click(run, inputs=[mode, image, files, input_dir, output_dir, show_results, resize_mode, resize, width,
                                height, crop, upscaler_1, upscaler_2, visibility],
                   outputs=[gallery, info], api_name="extras", concurrency_limit=None)
    # Upscaler files added since the page was built (and the list refreshed) show on the next load.
    demo.load(lambda: tuple(gr.update(choices=studio.upscalers.names()) for _ in range(2)),  # type: ignore[attr-defined]
              outputs=[upscaler_1, upscaler_2], **PRIVATE)
    return ExtrasTab(image, modes, mode, gallery, info)


def run_extras(studio: StudioView, user: Any, mode: int, settings: extras.ExtrasSettings, *, image: str | None = None,
               files: Sequence[str] = (), input_dir: str = "", output_dir: str = "") -> tuple[list[Path], str]:
    """Upscale what the chosen source holds and save it; (saved files, the last infotext line)."""
    paths, options = studio.paths, studio.options
    limits = extras.ExtrasLimits.from_options(options)
    upscalers = studio.upscalers  # type: ignore[attr-defined]
    settings = settings.resolved(upscalers)  # a bad name fails before any file is read
    keep_names = mode != SINGLE
    if mode == DIRECTORY:
        source = img2img_batch.readable_folder(input_dir, "the input directory", paths, user)
        sources = [item.image for item in img2img_batch.batch_items(source, None)]
        folder = paths.outputs(output_dir.strip()) if output_dir.strip() else None
    elif mode == BATCH:
        sources = [Path(f) for f in files]
        if not sources:
            raise InputError("Batch Process: no files uploaded")
        folder = None
    else:
        if not image:
            raise InputError("Single Image: no image")
        sources = [Path(image)]
        folder = None
    folder = folder or paths.output_folder(options, "outdir_extras_samples")
    extras.check([_size(path) for path in sources], settings, limits, "image")  # every size, before any work
    saved, text = [], ""
    with_text = bool(options.get("enable_pnginfo"))
    for path in sources:  # one image in memory at a time
        made = extras.run([extras.ExtrasInput(_load(path), path.name)], settings, upscalers, limits=limits,
                          device_lock=studio.manager.lock)
        saved.append(made[0].save(folder, with_text, keep_name=keep_names))
        text = made[0].text
    return saved, text


def _size(path: Path) -> tuple[int, int]:
    try:
        with Image.open(path) as image:  # the header only
            size = image.size
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as e:
        raise InputError(f"{path.name} is not a readable image ({type(e).__name__})") from None
    if max(size) > MAX_INPUT_SIDE:
        raise InputError(f"{path.name} is {size[0]}x{size[1]}; each side may be at most {MAX_INPUT_SIDE}")
    return size


def _load(path: Path) -> Image.Image:
    try:
        with Image.open(path) as image:
            image.load()
            return image.copy()  # .info (the infotext) comes along
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as e:
        raise InputError(f"{path.name} is not a readable image ({type(e).__name__})") from None
