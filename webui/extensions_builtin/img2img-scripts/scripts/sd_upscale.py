"""SD upscale (A1111's img2img script): upscale, cut into tiles, img2img each tile, blend back.

API args, as A1111 v1.10.1: ``script_args: ["", overlap, upscaler, scale]`` — the first slot is
the info text; ``upscaler`` is an index into the upscaler list (``None``, ``Lanczos``,
``Nearest``, model files...) or a name. Tiles are the request's width × height; they run in
batches of its batch size; each batch's seed is one more than the previous batch's first, and
each of the ``n_iter`` results starts from ``seed + n`` (A1111's seeds). "None" keeps the image's
size (tiles only re-render it), as in A1111.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr
from PIL import Image

from webui.plugins.api import Processed, Processing, Script, process_images
from webui.scripts import script_limits, tiles, upscaler_choice
from webui.scripts.script_args import number
from webui.scripts.script_results import Saving, assembled, combine, fix_seed

MAX_TILES = 256  # per upscale: a LAN user cannot queue thousands of img2img passes
MAX_SCALE = 8.0


@dataclass(frozen=True)
class _Plan:
    overlap: int
    upscaler: str
    scale: float
    size: tuple[int, int]  # the upscaled image
    grid: tiles.TileGrid


def _plan(p: Processing, overlap: Any, upscaler: Any, scale: Any) -> _Plan:
    if not p.init_images:
        raise ValueError("needs an init image (img2img)")
    overlap = int(number(overlap, "Tile overlap", 0, 2048, integer=True))
    name = upscaler_choice.resolve(upscaler)
    factor = number(scale, "Scale Factor", 1, MAX_SCALE)
    init = p.init_images[0]
    size = init.size if name == "None" else (round(init.width * factor), round(init.height * factor))
    script_limits.check_pixels(*size, "the upscaled image", key="limit_extras_pixels")
    if min(size) < 64:
        raise ValueError(f"the upscaled image would be {size[0]}x{size[1]}; each side must be at least 64")
    grid = tiles.plan(*size, p.width, p.height, overlap)
    if grid.count > MAX_TILES:
        cols, rows = grid.shape
        raise ValueError(f"{size[0]}x{size[1]} in {p.width}x{p.height} tiles with overlap {overlap} makes {cols}x{rows} "
                         f"= {grid.count} tiles; the most is {MAX_TILES}: use larger tiles (width/height), less "
                         "overlap or a smaller scale")
    passes = grid.count * p.n_iter
    script_limits.check_work(script_limits.work(grid.tile_w, grid.tile_h, p.steps, passes),
                             f"SD upscale ({grid.count} tiles × {p.n_iter} batch count)")
    return _Plan(overlap, name, factor, size, grid)


class SdUpscale(Script):
    def title(self) -> str:
        return "SD upscale"

    def show(self, is_img2img: bool) -> bool:
        return is_img2img

    def ui(self, is_img2img: bool) -> list[Any]:
        info = gr.HTML("<p style=\"margin-bottom:0.75em\">Will upscale the image by the selected scale factor; "
                       "use width and height sliders to set tile size</p>")
        overlap = gr.Slider(minimum=0, maximum=256, step=16, value=64, label="Tile overlap",
                            elem_id=self.elem_id("overlap"))
        scale = gr.Slider(minimum=1, maximum=4, step=0.5, value=2, label="Scale Factor",
                          elem_id=self.elem_id("scale_factor"))
        names = upscaler_choice.names()
        upscaler = gr.Radio(choices=names, value=names[0], type="index", label="Upscaler",
                            elem_id=self.elem_id("upscaler_index"))
        return [info, overlap, upscaler, scale]

    def check_args(self, p: Processing, _info: Any = None, overlap: Any = 64, upscaler: Any = 0,
                   scale: Any = 2) -> None:
        _plan(p, overlap, upscaler, scale)

    def run(self, p: Processing, _info: Any = None, overlap: Any = 64, upscaler: Any = 0,
            scale: Any = 2) -> Processed:
        plan = _plan(p, overlap, upscaler, scale)
        fix_seed(p)
        saving = Saving.of(p)
        p.extra_generation_params["SD upscale overlap"] = plan.overlap
        p.extra_generation_params["SD upscale upscaler"] = plan.upscaler
        init = p.init_images[0].convert("RGB")
        image = init if plan.upscaler == "None" else upscaler_choice.upscale_to(init, plan.size, plan.upscaler)
        pieces = tiles.split(image, plan.grid)
        seed, subseed, batch_size, iterations = int(p.seed), int(p.subseed), max(1, p.batch_size), p.n_iter
        p.n_iter, p.do_not_save_samples, p.do_not_save_grid = 1, True, True
        p.width, p.height = plan.grid.tile_w, plan.grid.tile_h
        p.image_mask, p.outpaint, p.resize_mode = None, None, 0
        results, first, interrupted = [], None, False
        for n in range(iterations):
            p.seed = seed + n
            done: list[Image.Image] = []
            for start in range(0, len(pieces), batch_size):
                chunk = pieces[start:start + batch_size]
                p.init_images, p.batch_size = chunk, len(chunk)
                processed = process_images(p)
                first = first or processed
                done += processed.images[:len(chunk)]
                p.seed = processed.seed + 1
                if processed.interrupted:
                    interrupted = True
                    break
            done += pieces[len(done):]  # tiles an interrupt left out keep the upscaled picture
            made = assembled(tiles.merge(done, plan.grid), seed + n, subseed, first.info if first else "")
            saving.save(p, made)
            results.append(made)
            if interrupted:
                break
        return combine(p, results, first, interrupted=interrupted, warnings=saving.warnings)
