"""What the extension layer costs a job, side by side in one run (CPU or GPU, tiny SD 1.5).

Run: .venv/bin/python bench/extensions.py [--repeats N]

  raw       diffusers' StableDiffusionPipeline on the same weights (the reference)
  engine    Engine.run alone (no extensions loaded: the queue calls it directly)
  scripted  the same request through ScriptedJobs with an always-on script that rewrites prompts
            in process() and registers on_cfg_denoiser / on_cfg_after_cfg callbacks (every step)
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

EXTENSION = '''
from webui.plugins.api import AlwaysVisible, Script, on_cfg_after_cfg, on_cfg_denoiser


class Busy(Script):
    def title(self):
        return "Busy"

    def show(self, is_img2img):
        return AlwaysVisible

    def process(self, p):
        p.all_prompts = [f"{x}, busy" for x in p.all_prompts]


on_cfg_denoiser(lambda params: None)
on_cfg_after_cfg(lambda params: None)
'''

CASES = [{"width": 64, "height": 64, "steps": 4}, {"width": 256, "height": 256, "steps": 20}]


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    import torch

    from webui.app import Studio
    from webui.flags import CommandLine
    from webui.models.synthetic import write_checkpoint
    from webui.request import GenerationRequest

    data = Path(tempfile.mkdtemp(prefix="bench-ext-"))
    ckpt = data / "models" / "Stable-diffusion" / "sd15.safetensors"
    ckpt.parent.mkdir(parents=True)
    write_checkpoint(ckpt, "sd15", seed=0)
    (data / "extensions" / "busy" / "scripts").mkdir(parents=True)
    (data / "extensions" / "busy" / "scripts" / "busy.py").write_text(EXTENSION)
    studio = Studio(CommandLine(data_dir=data, no_demo_model=True))
    studio.start()
    try:
        pipe = studio.manager.selected.pipe
        print(f"device: {studio.manager.device} ({platform.processor() or platform.machine()}), torch {torch.__version__}")
        print("| case | raw diffusers | engine alone | scripted (hooks + cfg callbacks) | scripted / engine |")
        print("|---|---|---|---|---|")
        for case in CASES:
            request = GenerationRequest(prompt="a lighthouse", seed=1, sampler_name="Euler", save_images=False,
                                        save_grid=False, **case)

            def raw():
                pipe(prompt="a lighthouse", num_inference_steps=case["steps"], width=case["width"],
                     height=case["height"], generator=torch.Generator().manual_seed(1), output_type="pil")

            raw_s = timed(raw, args.repeats)
            engine_s = timed(lambda: studio.engine.run(request), args.repeats)
            scripted_s = timed(lambda: studio.jobs.run(request), args.repeats)
            label = f"{case['width']}² × {case['steps']} steps"
            print(f"| {label} | {raw_s * 1000:.0f} ms | {engine_s * 1000:.0f} ms | {scripted_s * 1000:.0f} ms | "
                  f"{scripted_s / engine_s:.3f} |")
    finally:
        studio.stop()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
