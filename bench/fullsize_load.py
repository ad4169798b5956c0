"""Full-size check (outside CI): real-architecture random-weight files are identified and loaded.

Run: .venv/bin/python bench/fullsize_load.py [--families sd15 sd2-v sdxl-base] [--keep DIR]

Writes fp16 SD 1.5, SD 2.1-768-v (with its v sidecar, as A1111 users ship it) and SDXL base
files in the real single-file layout, then identifies and loads each through the same code path
as the tiny test files, and checks the built components against the shipped real configs.
Needs ~12 GB of free disk and ~16 GB of RAM.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

# Fields that must equal the real Hugging Face configs once dims come from the file's shapes.
UNET_FIELDS = ("block_out_channels", "down_block_types", "up_block_types", "layers_per_block",
               "cross_attention_dim", "attention_head_dim", "use_linear_projection", "in_channels")


def check(family: str, folder: Path) -> None:
    import torch

    from webui.models import configs
    from webui.models.load import identify_file, load_checkpoint
    from webui.models.synthetic import write_checkpoint

    path = folder / f"{family}-full.safetensors"
    started = time.perf_counter()
    write_checkpoint(path, family, size="full", dtype=torch.float16)
    written = time.perf_counter() - started
    size_gb = path.stat().st_size / 1e9

    started = time.perf_counter()
    spec = identify_file(path)
    identified = time.perf_counter() - started

    started = time.perf_counter()
    loaded = load_checkpoint(path, dtype=torch.float16)
    load_seconds = time.perf_counter() - started

    real = configs.shipped_config(family, "unet")
    built = loaded.pipe.unet.config
    mismatched = [f for f in UNET_FIELDS if _norm(built[f]) != _norm(real[f])]
    print(
        f"{family}: {size_gb:.2f} GB written in {written:.0f} s; identified as {spec.family} "
        f"({spec.prediction_type}, from {spec.prediction_source}) in {identified * 1000:.0f} ms; "
        f"loaded in {load_seconds:.1f} s; UNet config vs real: "
        f"{'matches' if not mismatched else 'DIFFERS in ' + ', '.join(mismatched)}",
        flush=True,
    )
    del loaded
    gc.collect()
    path.unlink()


def _norm(value):
    if isinstance(value, (list, tuple)):
        return [_norm(v) for v in value]
    return value


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--families", nargs="+", default=["sd15", "sd2-v", "sdxl-base"])
    parser.add_argument("--keep", type=Path, default=None, help="write files here instead of a temp dir")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.keep) as tmp:
        for family in args.families:
            check(family, Path(tmp))


if __name__ == "__main__":
    main()
