"""Our denoising loop against diffusers' own pipeline on the same model, side by side in one run.

Run: .venv/bin/python bench/loop.py [--repeats 10] [--size 256] [--steps 20]

Same tiny random-weight SD 1.5 checkpoint, Euler a, CFG 7, the same components:
  diffusers  pipe(prompt, negative_prompt, ...): its prompt encoding, loop, decode, postprocess
  ours       Engine.run(GenerationRequest): plan, our encoder, our loop, decode (no file saving)
Reported: medians of ``--repeats`` after a warm-up call each, the ratio ours / diffusers, and the
per-step Python overhead: (time from the first UNet call to the end of the last step − time inside
the UNet) / steps, for both.
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


class UNetClock:
    """Time spent inside the UNet, and the span from its first call to the last step's end."""

    def __init__(self, unet):
        self.inside = 0.0
        self.first = None
        self.last_step_end = None
        self._entered = 0.0
        unet.register_forward_pre_hook(self._pre)
        unet.register_forward_hook(self._post)

    def reset(self) -> None:
        self.inside, self.first, self.last_step_end = 0.0, None, None

    def _pre(self, module, args):
        self._entered = time.perf_counter()
        if self.first is None:
            self.first = self._entered

    def _post(self, module, args, output):
        self.inside += time.perf_counter() - self._entered

    def step_ended(self) -> None:
        self.last_step_end = time.perf_counter()

    def overhead_per_step(self, steps: int) -> float:
        return ((self.last_step_end - self.first) - self.inside) / steps


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()

    import torch

    from tests.conftest import build_studio
    from webui.engine.callbacks import LoopCallback
    from webui.models.synthetic import write_checkpoint
    from webui.request import GenerationRequest

    torch.set_grad_enabled(False)
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "store"
        store.mkdir()
        checkpoint = write_checkpoint(store / "sd15.safetensors", "sd15")
        studio = build_studio(Path(tmp) / "data", lambda family, seed=0: checkpoint, ("sd15",))
        try:
            pipe = studio.manager.active.pipe
            clock = UNetClock(pipe.unet)

            class StepEnd(LoopCallback):
                order = 10_000

                def after_step(self, step) -> None:
                    clock.step_ended()

            studio.engine.callbacks = (StepEnd(),)
            size, steps = args.size, args.steps
            from webui import samplers
            from webui.models import configs

            ours, theirs, ours_overhead, theirs_overhead = [], [], [], []
            for i in range(args.repeats + 1):
                clock.reset()
                started = time.perf_counter()
                studio.engine.run(GenerationRequest(prompt="a lighthouse at dusk", seed=i, width=size, height=size,
                                                    steps=steps, cfg_scale=7.0, sampler_name="Euler a",
                                                    save_images=False, save_grid=False))
                elapsed = time.perf_counter() - started
                if i:
                    ours.append(elapsed)
                    ours_overhead.append(clock.overhead_per_step(steps))

                pipe.scheduler = samplers.make_scheduler(configs.scheduler_config(studio.manager.active.spec),
                                                         "Euler a", "Automatic")
                clock.reset()
                started = time.perf_counter()
                pipe("a lighthouse at dusk", negative_prompt="", num_inference_steps=steps, width=size, height=size,
                     guidance_scale=7.0, generator=torch.Generator("cpu").manual_seed(i),
                     callback_on_step_end=lambda p, index, t, tensors: (clock.step_ended(), tensors)[1])
                elapsed = time.perf_counter() - started
                if i:
                    theirs.append(elapsed)
                    theirs_overhead.append(clock.overhead_per_step(steps))
        finally:
            studio.stop()

    ours_ms, theirs_ms = statistics.median(ours) * 1000, statistics.median(theirs) * 1000
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, threads {torch.get_num_threads()}, CPU")
    print(f"{size}x{size}, {steps} steps, Euler a, CFG 7, medians of {args.repeats}:")
    print(f"  diffusers pipeline: {theirs_ms:.0f} ms; per-step overhead {statistics.median(theirs_overhead) * 1000:.2f} ms")
    print(f"  our loop:           {ours_ms:.0f} ms; per-step overhead {statistics.median(ours_overhead) * 1000:.2f} ms")
    print(f"  ratio ours / diffusers: {ours_ms / theirs_ms:.3f}")


if __name__ == "__main__":
    main()
