"""The demo checkpoint written on first launch, so every tab works before a real model is added.

It has random weights in the real SD 1.5 single-file layout at tiny widths: it draws noise,
quickly. The UI and README say so, and how to add a real checkpoint.
"""

from __future__ import annotations

from pathlib import Path

from webui.models.safe_load import (
    CHECKPOINT_SUFFIXES,
    CheckpointError,
    read_safetensors_header,
)
from webui.models.synthetic import SYNTHETIC_METADATA, write_checkpoint

DEMO_NAME = "demo-random-weights-sd15.safetensors"
DEMO_NOTICE = (
    "The active checkpoint is the built-in demo model with random weights: it draws noise. "
    "Put a real .safetensors checkpoint into models/Stable-diffusion and press refresh."
)


def has_checkpoints(folder: Path) -> bool:
    folder = Path(folder)
    return folder.is_dir() and any(p.suffix.lower() in CHECKPOINT_SUFFIXES for p in folder.rglob("*"))


def ensure_demo_checkpoint(folder: Path) -> Path | None:
    """Write the demo model when ``folder`` holds no checkpoint; returns its path if written."""
    if has_checkpoints(folder):
        return None
    Path(folder).mkdir(parents=True, exist_ok=True)
    return write_checkpoint(Path(folder) / DEMO_NAME, "sd15", size="tiny", seed=1234)


def is_synthetic(path: Path) -> bool:
    """True for files written by webui.models.synthetic (their safetensors metadata says so)."""
    try:
        metadata = read_safetensors_header(path, with_metadata=True).get("__metadata__") or {}
    except (OSError, CheckpointError):
        return False
    key = next(k for k in SYNTHETIC_METADATA if k != "format")
    return metadata.get(key) == SYNTHETIC_METADATA[key]
