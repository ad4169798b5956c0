"""GPU throughput of our denoising loop against diffusers' pipeline, side by side in one run.

Run on a CUDA machine:   .venv/bin/python bench/gpu.py [--compile] [--steps 20] [--repeats 5]
Check the script on CPU: .venv/bin/python bench/gpu.py --smoke   (tiny models, fp32, 1 repeat)

For the SD 1.5 architecture at 512² and SDXL base at 1024² (random fp16 weights in the real
single-file layout, written to a temporary folder and loaded by our model manager), Euler a,
CFG 7, batch 1:
  diffusers   the pipeline's __call__ on the same components, eager fp16, SDPA attention
  ours        Engine.run through the same UNet: eager; then channels_last; then, with --compile,
              torch.compile of the UNet
Loop it/s is sampling steps / time from the first UNet call to the end of the last step (CUDA
events, one synchronisation per run); the loop itself never synchronises except for previews,
which are off here. Peak memory is torch.cuda.max_memory_allocated per configuration.
Needs ~10 GB of disk for the SDXL file.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


class LoopClock:
    """First UNet call → last step end, with CUDA events on a GPU (perf_counter on the CPU)."""

    def __init__(self, unet, cuda: bool):
        import torch

        self.torch, self.cuda = torch, cuda
        self.start = self.end = None
        unet.register_forward_pre_hook(self._first)

    def _mark(self):
        if self.cuda:
            event = self.torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def reset(self) -> None:
        self.start = self.end = None

    def _first(self, module, args):
        if self.start is None:
            self.start = self._mark()

    def step_ended(self) -> None:
        self.end = self._mark()

    def seconds(self) -> float:
        if self.cuda:
            self.torch.cuda.synchronize()
            return self.start.elapsed_time(self.end) / 1000
        return self.end - self.start


def measure(label: str, generate, clock: LoopClock, steps: int, repeats: int, cuda: bool) -> dict:
    import torch

    generate(0)  # warm-up (and compilation, when compiled)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    loops, totals = [], []
    for i in range(repeats):
        clock.reset()
        started = time.perf_counter()
        generate(i + 1)
        if cuda:
            torch.cuda.synchronize()
        totals.append(time.perf_counter() - started)
        loops.append(clock.seconds())
    row = {"label": label, "it/s": steps / statistics.median(loops), "total s": statistics.median(totals),
           "peak GiB": torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")}
    print(f"  {label:<34} {row['it/s']:7.2f} it/s   {row['total s']:6.2f} s/image   "
          f"peak {row['peak GiB']:.2f} GiB", flush=True)
    return row


def bench_family(family: str, size: int, args, folder: Path) -> list[dict]:
    import torch

    from webui import samplers
    from webui.app import Studio
    from webui.engine.callbacks import LoopCallback
    from webui.flags import CommandLine
    from webui.models import configs
    from webui.models.synthetic import write_checkpoint
    from webui.request import GenerationRequest

    cuda = torch.cuda.is_available() and not args.smoke
    data = folder / family
    ckpt_dir = data / "models" / "Stable-diffusion"
    ckpt_dir.mkdir(parents=True)
    write_checkpoint(ckpt_dir / f"{family}.safetensors", family, size="tiny" if args.smoke else "full",
                     dtype=torch.float16 if cuda else torch.float32)
    studio = Studio(CommandLine(data_dir=data, no_demo_model=True, device="cuda" if cuda else "cpu"))
    studio.options.update({"live_previews_enable": False})
    studio.start()
    try:
        pipe = studio.manager.active.pipe
        clock = LoopClock(pipe.unet, cuda)

        class StepEnd(LoopCallback):
            order = 10_000

            def after_step(self, step) -> None:
                clock.step_ended()

        studio.engine.callbacks = (StepEnd(),)
        steps, prompt = args.steps, "a lighthouse on a cliff at dusk, detailed"
        scheduler_config = configs.scheduler_config(studio.manager.active.spec)

        def diffusers_call(seed: int) -> None:
            pipe.scheduler = samplers.make_scheduler(scheduler_config, "Euler a", "Automatic")
            pipe(prompt, negative_prompt="", num_inference_steps=steps, width=size, height=size, guidance_scale=7.0,
                 generator=torch.Generator("cpu").manual_seed(seed), output_type="pil",
                 callback_on_step_end=lambda p, i, t, tensors: (clock.step_ended(), tensors)[1])

        def ours(seed: int) -> None:
            studio.engine.run(GenerationRequest(prompt=prompt, seed=seed, width=size, height=size, steps=steps,
                                                cfg_scale=7.0, sampler_name="Euler a", save_images=False,
                                                save_grid=False))

        print(f"{family} at {size}x{size}, {steps} steps, {'fp16 CUDA' if cuda else 'CPU smoke test'}:", flush=True)
        rows = [measure("diffusers pipeline, eager", diffusers_call, clock, steps, args.repeats, cuda),
                measure("ours, eager", ours, clock, steps, args.repeats, cuda)]
        pipe.unet.to(memory_format=torch.channels_last)
        rows.append(measure("ours, channels_last", ours, clock, steps, args.repeats, cuda))
        if args.compile:
            forward = pipe.unet.forward
            pipe.unet.forward = torch.compile(forward, mode="max-autotune-no-cudagraphs")
            rows.append(measure("ours, channels_last + torch.compile", ours, clock, steps, args.repeats, cuda))
            pipe.unet.forward = forward
        base = rows[0]["it/s"]
        for row in rows[1:]:
            print(f"  {row['label']}: {row['it/s'] / base:.3f}× diffusers' it/s", flush=True)
        return rows
    finally:
        studio.stop()
        shutil.rmtree(data, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--compile", action="store_true", help="also time a torch.compile'd UNet")
    parser.add_argument("--smoke", action="store_true", help="tiny models on the CPU: check the script only")
    parser.add_argument("--only", choices=("sd15", "sdxl-base"), help="one architecture")
    args = parser.parse_args()
    if args.smoke:
        args.repeats, args.steps = 1, 3

    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() and not args.smoke else "CPU"
    print(f"device: {device}; torch {torch.__version__}", flush=True)
    cases = [("sd15", 64 if args.smoke else 512), ("sdxl-base", 64 if args.smoke else 1024)]
    with tempfile.TemporaryDirectory() as tmp:
        for family, size in cases:
            if args.only in (None, family):
                bench_family(family, size, args, Path(tmp))


if __name__ == "__main__":
    main()
