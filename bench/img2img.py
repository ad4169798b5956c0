"""img2img and inpaint on our loop against diffusers' own pipelines, side by side in one run.

Run: .venv/bin/python bench/img2img.py [--repeats 5] [--size 256] [--steps 20]

Same tiny random-weight SD 1.5 checkpoint and components, Euler a, CFG 7, strength 0.75:
  img2img  diffusers StableDiffusionImg2ImgPipeline  vs  Engine.run with ``img2img`` set
  inpaint  diffusers StableDiffusionInpaintPipeline (4-channel UNet: latents blended per step)
           vs  Engine.run with a mask (whole picture, blur 4, original content, overlay at the end)
Reported: medians of ``--repeats`` after a warm-up call each, and the ratio ours / diffusers.
Both run 15 UNet steps (A1111's rule and diffusers' agree at 20 × 0.75).
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


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()

    import torch
    from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionInpaintPipeline

    from tests.conftest import build_studio
    from tests.integration.test_img2img import box_mask, picture
    from webui import samplers
    from webui.models import configs
    from webui.models.synthetic import write_checkpoint
    from webui.request import GenerationRequest
    from webui.request_img2img import Img2ImgInput, InpaintSettings

    torch.set_grad_enabled(False)
    size, steps, strength = args.size, args.steps, 0.75
    init = picture(size, size)
    mask = box_mask((size, size), (size // 4, size // 4, 3 * size // 4, 3 * size // 4))
    results: dict[str, tuple[list[float], list[float]]] = {"img2img": ([], []), "inpaint": ([], [])}
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "store"
        store.mkdir()
        checkpoint = write_checkpoint(store / "sd15.safetensors", "sd15")
        studio = build_studio(Path(tmp) / "data", lambda family, seed=0: checkpoint, ("sd15",))
        try:
            active = studio.manager.active
            components = {k: v for k, v in active.pipe.components.items()}
            theirs = {"img2img": StableDiffusionImg2ImgPipeline(**components),
                      "inpaint": StableDiffusionInpaintPipeline(**components)}
            for pipe in theirs.values():
                pipe.set_progress_bar_config(disable=True)
            for i in range(args.repeats + 1):
                for mode, pipe in theirs.items():
                    inpaint = InpaintSettings(mask=mask) if mode == "inpaint" else None
                    request = GenerationRequest(prompt="a lighthouse at dusk", seed=i, width=size, height=size,
                                                steps=steps, cfg_scale=7.0, sampler_name="Euler a",
                                                denoising_strength=strength, save_images=False, save_grid=False,
                                                img2img=Img2ImgInput(init_images=[init], inpaint=inpaint))
                    ours = timed(lambda: studio.engine.run(request))
                    pipe.scheduler = samplers.make_scheduler(configs.scheduler_config(active.spec), "Euler a",
                                                             "Automatic")
                    extra = {"mask_image": mask} if mode == "inpaint" else {}
                    diffusers = timed(lambda: pipe("a lighthouse at dusk", image=init, strength=strength,
                                                   num_inference_steps=steps, guidance_scale=7.0, height=size,
                                                   width=size, generator=torch.Generator("cpu").manual_seed(i),
                                                   **extra))
                    if i:
                        results[mode][0].append(ours)
                        results[mode][1].append(diffusers)
        finally:
            studio.stop()

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, threads {torch.get_num_threads()}, CPU")
    print(f"{size}x{size}, {steps} steps at strength {strength}, Euler a, CFG 7, medians of {args.repeats}:")
    for mode, (ours, diffusers) in results.items():
        ours_ms, theirs_ms = statistics.median(ours) * 1000, statistics.median(diffusers) * 1000
        print(f"  {mode:8s} diffusers {theirs_ms:6.0f} ms   ours {ours_ms:6.0f} ms   ratio {ours_ms / theirs_ms:.3f}")


if __name__ == "__main__":
    main()
