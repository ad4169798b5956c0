"""Render the golden-parity table and store its pixels: ``python -m tests.golden.record``.

Run it only to accept a deliberate change of the images (and say so in the commit).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

from webui.offline import apply_offline_env

apply_offline_env(override=True)

GOLDEN = Path(__file__).resolve().parent / "parity.npz"


def make_studio(data_dir: Path):
    """A Studio over ``data_dir`` holding one tiny checkpoint per family and the cases' networks."""
    from tests.conftest import copy_checkpoint
    from tests.golden.cases import FAMILIES, write_networks
    from webui.app import Studio
    from webui.flags import CommandLine
    from webui.models.load import load_checkpoint
    from webui.models.synthetic import write_checkpoint

    store = data_dir / "store"
    store.mkdir(parents=True, exist_ok=True)
    for family in FAMILIES:
        source = store / f"{family}.safetensors"
        write_checkpoint(source, family, seed=0)
        copy_checkpoint(source, data_dir / "models" / "Stable-diffusion", f"{family}.safetensors")
    pipes = {f: load_checkpoint(store / f"{f}.safetensors").pipe for f in ("sd15", "sdxl-base")}
    write_networks(data_dir, pipes)
    studio = Studio(CommandLine(data_dir=data_dir, no_demo_model=True))
    studio.start()
    studio.networks.refresh()
    return studio


def render(studio, family: str, fields: dict) -> np.ndarray:
    from webui.request import GenerationRequest

    request = GenerationRequest(**fields, override_settings={"sd_model_checkpoint": f"{family}.safetensors"})
    result = studio.generate(request)
    return np.stack([np.asarray(g.image.convert("RGB")) for g in result.images])


def main() -> None:
    from tests.golden.cases import CASES

    with tempfile.TemporaryDirectory() as tmp:
        studio = make_studio(Path(tmp))
        try:
            images = {}
            for name, family, fields in CASES:
                images[name] = render(studio, family, fields)
                print(f"{name}: {images[name].shape}", flush=True)
        finally:
            studio.stop()
    np.savez_compressed(GOLDEN, **images)
    print(f"{len(images)} cases → {GOLDEN} ({GOLDEN.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    sys.exit(main())
