"""Loopback (A1111's img2img script): img2img the result again, ``loops`` times, the denoising
strength moving to a final value along a curve.

API args, as A1111 v1.10.1: ``[loops, final_denoising_strength, denoising_curve,
append_interrogation]`` — the curve "Aggressive", "Linear" or "Lazy"; interrogation only "None"
(SD Studio has no CLIP / DeepBooru interrogator: the others are refused). With batch count 1
every loop's image is returned; with more, each batch's last image. A grid of them (one row)
comes first when there are several, as A1111.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from webui.outputs import make_grid
from webui.plugins.api import Processed, Processing, Script, process_images
from webui.scripts import loopback, script_limits
from webui.scripts.script_args import choice, number
from webui.scripts.script_results import Saving, assembled, combine, fix_seed, made


@dataclass(frozen=True)
class _Args:
    loops: int
    final: float
    curve: str


def _read(p: Processing, loops: Any, final: Any, curve: Any, interrogation: Any) -> _Args:
    if not p.init_images:
        raise ValueError("needs an init image (img2img)")
    count = int(number(loops, "Loops", 1, loopback.MAX_LOOPS, integer=True))
    strength = number(final, "Final denoising strength", 0, 1)
    name = loopback.curve_name(curve)
    asked = choice(interrogation, loopback.INTERROGATORS, "Append interrogated prompt at each iteration")
    if asked != "None":
        raise ValueError(f"appending an interrogated prompt ({asked}) is not available in SD Studio (there is no "
                         "CLIP or DeepBooru interrogator); use \"None\"")
    passes = count * p.n_iter
    script_limits.check_work(script_limits.work(p.width, p.height, p.steps, passes),
                             f"Loopback ({count} loops × {p.n_iter} batch count)")
    return _Args(count, strength, name)


class Loopback(Script):
    def title(self) -> str:
        return "Loopback"

    def show(self, is_img2img: bool) -> bool:
        return is_img2img

    def ui(self, is_img2img: bool) -> list[Any]:
        loops = gr.Slider(minimum=1, maximum=loopback.MAX_LOOPS, step=1, value=4, label="Loops",
                          elem_id=self.elem_id("loops"))
        final = gr.Slider(minimum=0, maximum=1, step=0.01, value=0.5, label="Final denoising strength",
                          elem_id=self.elem_id("final_denoising_strength"))
        curve = gr.Dropdown(choices=list(loopback.CURVES), value="Linear", label="Denoising strength curve",
                            elem_id=self.elem_id("denoising_curve"))
        interrogation = gr.Dropdown(choices=["None"], value="None",
                                    label="Append interrogated prompt at each iteration",
                                    info="CLIP / DeepBooru interrogation is not available in SD Studio",
                                    elem_id=self.elem_id("append_interrogation"))
        return [loops, final, curve, interrogation]

    def check_args(self, p: Processing, loops: Any = 4, final_denoising_strength: Any = 0.5,
                   denoising_curve: Any = "Linear", append_interrogation: Any = "None") -> None:
        _read(p, loops, final_denoising_strength, denoising_curve, append_interrogation)

    def run(self, p: Processing, loops: Any = 4, final_denoising_strength: Any = 0.5,
            denoising_curve: Any = "Linear", append_interrogation: Any = "None") -> Processed:
        args = _read(p, loops, final_denoising_strength, denoising_curve, append_interrogation)
        fix_seed(p)
        saving = Saving.of(p)
        p.extra_generation_params.update({"Final denoising strength": args.final, "Denoising curve": args.curve})
        strengths = loopback.schedule(args.loops, p.denoising_strength, args.final, args.curve)
        batch_count = p.n_iter
        originals, original_fill = list(p.init_images), p.inpainting_fill
        p.batch_size, p.n_iter, p.do_not_save_grid = 1, 1, True
        kept, first, interrupted = [], None, False
        for _ in range(batch_count):
            p.init_images = originals
            last = None
            for strength in strengths:
                p.denoising_strength = strength
                processed = process_images(p)
                first = first or processed
                if processed.interrupted or not processed.images:
                    interrupted = True
                    break
                p.seed = processed.seed + 1
                last = made(processed)
                p.init_images = [last.load()]
                p.inpainting_fill = 1  # later loops repaint the previous picture: masked content "original"
                if batch_count == 1:
                    kept.append(last)
            if batch_count > 1 and last is not None and not interrupted:
                kept.append(last)
            p.inpainting_fill = original_fill
            if interrupted:
                break
        grid = None
        if len(kept) > 1 and first is not None:
            grid = assembled(make_grid([g.load() for g in kept], rows=1), kept[0].seed, kept[0].subseed, first.info)
            saving.save(p, grid, grid=True)
        return combine(p, kept, first, grid=grid, interrupted=interrupted, warnings=saving.warnings)
