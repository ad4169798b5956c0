"""Per-request overhead of the whole stack against a raw diffusers call, and launch time.

Run: .venv/bin/python bench/overhead.py [--repeats N]

Side by side in one run, on the same tiny random-weight SD 1.5 checkpoint:
  raw    the diffusers pipeline object our loader builds, called directly with a prompt string
  stack  HTTP POST /sdapi/v1/txt2img → job queue → engine → PNG written with infotext → base64 reply
and the launch of `python -m webui` until HTTP answers, against a bare `import torch, gradio, diffusers`.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

CASES = [
    {"width": 64, "height": 64, "steps": 2},
    {"width": 256, "height": 256, "steps": 20},
]


def time_raw(checkpoint: Path, case: dict, repeats: int) -> list[float]:
    import torch

    from webui.models.load import load_checkpoint

    pipe = load_checkpoint(checkpoint).pipe
    samples = []
    for i in range(repeats + 1):
        started = time.perf_counter()
        pipe(
            "a lighthouse at dusk", negative_prompt="", num_inference_steps=case["steps"],
            width=case["width"], height=case["height"], guidance_scale=7.0,
            generator=torch.Generator("cpu").manual_seed(i),
        )
        if i:  # the first call warms caches on both sides
            samples.append(time.perf_counter() - started)
    return samples


def time_stack(base_url: str, case: dict, repeats: int) -> list[float]:
    import httpx

    samples = []
    with httpx.Client(base_url=base_url, timeout=600) as client:
        for i in range(repeats + 1):
            payload = {"prompt": "a lighthouse at dusk", "seed": i, "sampler_name": "Euler", "cfg_scale": 7.0,
                       "save_images": True, **case}
            started = time.perf_counter()
            response = client.post("/sdapi/v1/txt2img", json=payload)
            response.raise_for_status()
            if i:
                samples.append(time.perf_counter() - started)
    return samples


def bare_import_seconds() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch, gradio, diffusers"], check=True, cwd=REPO)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    from tests.kit.servers import start_server
    from webui.models.synthetic import write_checkpoint

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        checkpoint = write_checkpoint(data_dir / "models" / "Stable-diffusion" / "bench.safetensors", "sd15")

        bare = statistics.median(bare_import_seconds() for _ in range(3))
        started = time.perf_counter()
        server = start_server(data_dir, extra_args=["--no-demo-model"])
        launch = time.perf_counter() - started
        try:
            print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, CPU only")
            print(f"launch → HTTP ready: {launch:.2f} s; bare import torch+gradio+diffusers: {bare:.2f} s "
                  f"(ratio {launch / bare:.2f})")
            for case in CASES:
                raw = statistics.median(time_raw(checkpoint, case, args.repeats))
                stack = statistics.median(time_stack(server.base_url, case, args.repeats))
                label = f"{case['width']}x{case['height']}, {case['steps']} steps"
                print(f"{label}: raw diffusers {raw * 1000:.0f} ms, whole stack {stack * 1000:.0f} ms, "
                      f"overhead {(stack - raw) * 1000:+.0f} ms (ratio {stack / raw:.2f})")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
