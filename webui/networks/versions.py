"""Which Stable Diffusion version a network file was made for: A1111's SD1 / SD2 / SDXL.

Decided from what the file says, cheaply (a safetensors header, never the tensors): kohya's
``ss_base_model_version`` or ``modelspec.architecture`` metadata first, then the tensor names
(SDXL LoRAs use two text encoders and sgm block names) and widths (CLIP-L 768 is SD1, OpenCLIP-H
1024 is SD2). None means unknown, which never hides nor blocks a network.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable

from webui.models.safe_load import CheckpointError, read_safetensors_header

SD1, SD2, SDXL = "SD1", "SD2", "SDXL"
_TEXT_WIDTHS = {768: SD1, 1024: SD2}

_cache: dict[tuple[str, str, int, int], str | None] = {}
_lock = threading.Lock()


def model_version(family: str) -> str:
    """The version of a checkpoint family ("sd15-inpaint" → SD1)."""
    if family.startswith("sdxl"):
        return SDXL
    return SD2 if family.startswith("sd2") else SD1


def _from_metadata(metadata: dict) -> str | None:
    base = str(metadata.get("ss_base_model_version", "")).lower()
    if base.startswith("sdxl"):
        return SDXL
    if base.startswith("sd_v2") or base.startswith("sd_2"):
        return SD2
    if base.startswith("sd_v1") or base.startswith("sd_1"):
        return SD1
    architecture = str(metadata.get("modelspec.architecture", "")).lower()
    if architecture.startswith("stable-diffusion-xl"):
        return SDXL
    if architecture.startswith("stable-diffusion-v2"):
        return SD2
    if architecture.startswith("stable-diffusion-v1"):
        return SD1
    return None


def _from_lora_tensors(header: dict) -> str | None:
    names = [k for k in header if k != "__metadata__"]
    if any(k.startswith("lora_te2_") or k.startswith(("lora_unet_input_blocks", "lora_unet_output_blocks",
                                                      "lora_unet_middle_block")) for k in names):
        return SDXL
    for key in names:
        if key.startswith("lora_te_") and key.endswith("q_proj.lora_down.weight"):
            shape = header[key].get("shape") if isinstance(header[key], dict) else None
            if shape and len(shape) == 2:
                return _TEXT_WIDTHS.get(int(shape[1]))
    return None


def _cached(path: Path, kind: str, decide: Callable[[Path], str | None]) -> str | None:
    """``decide(path)``, remembered while the file keeps its size and modification time."""
    try:
        stat = path.stat()
    except OSError:
        return None
    key = (kind, str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    with _lock:
        if key in _cache:
            return _cache[key]
    try:
        version = decide(path)
    except (OSError, CheckpointError, ValueError, KeyError, TypeError):
        version = None
    with _lock:
        _cache[key] = version
    return version


def _lora_file_version(path: Path) -> str | None:
    header = read_safetensors_header(path, with_metadata=True)
    metadata = header.get("__metadata__")
    return _from_metadata(metadata if isinstance(metadata, dict) else {}) or _from_lora_tensors(header)


def lora_version(path: Path) -> str | None:
    """The version a LoRA file was made for, or None (a pickle, or nothing to tell by)."""
    path = Path(path)
    if path.suffix.lower() != ".safetensors":
        return None
    return _cached(path, "lora", _lora_file_version)


def _embedding_file_version(path: Path) -> str | None:
    from webui.networks.textual_inversion import (
        read_embedding,  # the safe reader (no pickled code runs)
    )

    vectors = read_embedding(path).vectors
    widths = {int(t.shape[-1]) for t in vectors.values()}
    return embedding_version(set(vectors), widths.pop() if len(widths) == 1 else None)


def embedding_file_version(path: Path) -> str | None:
    """The version an embedding file was made for (its vectors' slots and width), or None."""
    return _cached(Path(path), "embedding", _embedding_file_version)


def embedding_version(slots: set[str], width: int | None) -> str | None:
    """SDXL files carry clip_l and clip_g vectors; a single width of 768 / 1024 is SD1 / SD2."""
    if {"clip_l", "clip_g"} <= slots:
        return SDXL
    return _TEXT_WIDTHS.get(width) if width else None


def hypernetwork_version(widths: set[int]) -> str | None:
    """A1111 hypernetworks are keyed by attention width: 768 is SD1's context, 1024 SD2's."""
    for width, version in _TEXT_WIDTHS.items():
        if width in widths:
            return version
    return None
