"""Per-step cost of ControlNet units: none, one and three, ours beside diffusers' ControlNet pipeline.

Run: .venv/bin/python bench/controlnet.py [--repeats 5] [--size 256] [--steps 20] [--device cpu|cuda]

Tiny random-weight SD 1.5 checkpoint and a tiny SD1 ControlNet (the test kit's, same UNet dims),
Euler a, CFG 7. "ours" is a txt2img job through the scripts layer (``studio.jobs.run``) with 0, 1
or 3 enabled canny units in ``alwayson_scripts``; "diffusers" is ``StableDiffusionPipeline`` (0)
and ``StableDiffusionControlNetPipeline`` with the same loaded ControlNet once or three times
(MultiControlNet), on the same components. Per step = the median gap between consecutive step
ends (so preprocessing, loading, encoding and decoding are left out); medians over ``--repeats``
after a warm-up. ``--device cuda`` runs on a GPU in fp16, as the studio does there.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


class StepClock:
    """Times of step ends; the per-step figure is the median gap between them."""

    def __init__(self) -> None:
        self.ends: list[float] = []

    def tick(self) -> None:
        self.ends.append(time.perf_counter())

    def per_step(self) -> float:
        gaps = [b - a for a, b in zip(self.ends, self.ends[1:])]
        return statistics.median(gaps) if gaps else float("nan")


def _hint(size: int):
    from PIL import Image, ImageDraw

    picture = Image.new("RGB", (size, size), "black")
    ImageDraw.Draw(picture).ellipse((size // 4, size // 4, 3 * size // 4, 3 * size // 4), outline="white", width=3)
    return picture


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    import torch
    from diffusers import MultiControlNetModel, StableDiffusionControlNetPipeline

    from tests.conftest import build_studio
    from tests.kit.controlnets import write_controlnet
    from webui import samplers
    from webui.engine.callbacks import LoopCallback
    from webui.models import configs
    from webui.models.synthetic import write_checkpoint
    from webui.request import GenerationRequest

    torch.set_grad_enabled(False)
    size, steps = args.size, args.steps
    hint = _hint(size)
    clock = StepClock()

    class StepEnd(LoopCallback):
        order = 10_000

        def after_step(self, step) -> None:
            clock.tick()

    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "store"
        store.mkdir()
        checkpoint = write_checkpoint(store / "sd15.safetensors", "sd15")
        data = Path(tmp) / "data"
        write_controlnet(data / "models" / "ControlNet" / "control_sd15_canny_bench.safetensors", "sd1")
        flags = {"device": args.device} if args.device != "cpu" else {}
        studio = build_studio(data, lambda family, seed=0: checkpoint, ("sd15",), **flags)
        try:
            studio.controlnets.refresh()
            file = studio.controlnets.files()[0]
            pipe = studio.manager.active.pipe
            studio.engine.callbacks = (StepEnd(),)
            unit = {"enabled": True, "image": hint, "module": "canny", "model": file.title, "weight": 1.0}

            def ours(units: int, seed: int) -> float:
                alwayson = {"ControlNet": {"args": [dict(unit) for _ in range(units)]}} if units else {}
                clock.ends.clear()
                studio.jobs.run(GenerationRequest(prompt="a ring", seed=seed, width=size, height=size, steps=steps,
                                                  cfg_scale=7.0, sampler_name="Euler a", save_images=False,
                                                  save_grid=False, alwayson_scripts=alwayson))
                return clock.per_step()

            controlnet = studio.controlnets.load(file, pipe.unet.config, pipe.unet.device, pipe.unet.dtype)
            controlnet.to(pipe.unet.device)

            def theirs(units: int, seed: int) -> float:
                pipe.scheduler = samplers.make_scheduler(configs.scheduler_config(studio.manager.active.spec),
                                                         "Euler a", "Automatic")
                common = dict(negative_prompt="", num_inference_steps=steps, width=size, height=size,
                              guidance_scale=7.0, generator=torch.Generator("cpu").manual_seed(seed),
                              callback_on_step_end=lambda p, index, t, tensors: (clock.tick(), tensors)[1])
                clock.ends.clear()
                if not units:
                    pipe("a ring", **common)
                else:
                    nets = controlnet if units == 1 else MultiControlNetModel([controlnet] * units)
                    cn_pipe = StableDiffusionControlNetPipeline(
                        vae=pipe.vae, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer, unet=pipe.unet,
                        scheduler=pipe.scheduler, controlnet=nets, safety_checker=None, feature_extractor=None,
                        requires_safety_checker=False)
                    cn_pipe.set_progress_bar_config(disable=True)
                    image = hint if units == 1 else [hint] * units
                    cn_pipe("a ring", image=image, **common)
                return clock.per_step()

            pipe.set_progress_bar_config(disable=True)
            figures: dict[tuple[str, int], list[float]] = {}
            for repeat in range(args.repeats + 1):
                for units in (0, 1, 3):
                    for name, run in (("ours", ours), ("diffusers", theirs)):
                        value = run(units, repeat)
                        if repeat:  # the first round warms up
                            figures.setdefault((name, units), []).append(value)
        finally:
            studio.stop()

    device = "CPU" if args.device == "cpu" else torch.cuda.get_device_name(0)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}, {device}")
    print(f"{size}x{size}, {steps} steps, Euler a, CFG 7, per-step medians of {args.repeats}:")
    print("| units | ours | diffusers | ours vs no ControlNet |")
    print("|---|---|---|---|")
    base = statistics.median(figures[("ours", 0)])
    for units in (0, 1, 3):
        mine = statistics.median(figures[("ours", units)])
        other = statistics.median(figures[("diffusers", units)])
        print(f"| {units} | {mine * 1000:.1f} ms | {other * 1000:.1f} ms | {mine / base:.2f}x |")


if __name__ == "__main__":
    main()
