"""What the network list endpoints report about each file, read cheaply and safely.

safetensors files: the JSON header only (shapes, ``__metadata__``), never the tensors. Pickled
embeddings (.pt/.bin) are small; they are read with ``torch.load(weights_only=True)``, so a file
that asks for code is refused, not run. Results are cached per (path, size, mtime).
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

from webui.models.safe_load import (
    CheckpointError,
    read_safetensors_header,
    read_torch_dict,
)

log = logging.getLogger(__name__)

_MAX_PICKLED_EMBEDDING = 64 * 1024 * 1024  # real embeddings are a few KB; refuse to load huge files
_cache: dict[tuple[str, str, int, int], Any] = {}
_cache_lock = threading.Lock()


# One error type for every unreadable file, whichever reader found the problem.
NetworkFileError = CheckpointError


def _cached(kind: str, path: Path, read) -> Any:
    st = path.stat()
    key = (kind, str(path), st.st_size, st.st_mtime_ns)
    with _cache_lock:
        if key in _cache:
            return _cache[key]
    value = read(path)
    with _cache_lock:
        if len(_cache) > 20000:
            _cache.clear()
        _cache[key] = value
    return value


def safetensors_header(path: Path) -> dict[str, Any]:
    """The JSON header (tensor entries and ``__metadata__``), nothing else read."""
    return read_safetensors_header(path, with_metadata=True)


def _is_safetensors(path: Path) -> bool:
    return path.suffix.lower() == ".safetensors"


# --- LoRA metadata -----------------------------------------------------------------------------


def lora_metadata(path: Path) -> dict[str, Any]:
    """A safetensors file's ``__metadata__``; values that hold JSON objects parsed (as A1111). {} otherwise."""
    path = Path(path)
    if not _is_safetensors(path):
        return {}
    try:
        return _cached("lora-metadata", path, _read_metadata)
    except (OSError, NetworkFileError) as e:
        log.warning("cannot read metadata of %s: %s", path, e)
        return {}


def _read_metadata(path: Path) -> dict[str, Any]:
    raw = safetensors_header(path).get("__metadata__") or {}
    metadata: dict[str, Any] = {}
    if not isinstance(raw, dict):
        return metadata
    for key, value in raw.items():
        metadata[str(key)] = value
        if isinstance(value, str) and value.startswith("{"):
            try:
                metadata[str(key)] = json.loads(value)
            except json.JSONDecodeError:
                pass
    return metadata


# --- textual inversion embeddings --------------------------------------------------------------


def embedding_info(path: Path) -> dict[str, Any]:
    """{step, sd_checkpoint, sd_checkpoint_name, shape, vectors} as A1111's /sdapi/v1/embeddings.

    ``shape`` is the vector width (for an SDXL pair, clip_l + clip_g widths: 768 + 1280 = 2048),
    ``vectors`` the number of vectors (tokens) the embedding takes.
    """
    return dict(_cached("embedding", Path(path), _read_embedding))


def _read_embedding(path: Path) -> dict[str, Any]:
    if _is_safetensors(path):
        header = safetensors_header(path)
        header.pop("__metadata__", None)
        shapes = {k: tuple(v.get("shape", ())) for k, v in header.items() if isinstance(v, dict)}
        extra: dict[str, Any] = {}
    else:
        shapes, extra = _read_pickled_embedding(path)
    if "clip_l" in shapes and "clip_g" in shapes:  # SDXL: one vector set per text encoder
        shape = shapes["clip_l"][-1] + shapes["clip_g"][-1]
        vectors = shapes["clip_g"][0] if len(shapes["clip_g"]) > 1 else 1
    elif len(shapes) == 1:
        dims = next(iter(shapes.values()))
        if not dims:
            raise NetworkFileError(f"{path.name}: the embedding tensor has no shape")
        shape, vectors = dims[-1], (dims[0] if len(dims) > 1 else 1)
    else:
        raise NetworkFileError(f"{path.name}: not an embedding ({len(shapes)} tensors, expected one or clip_l + clip_g)")
    return {
        "step": extra.get("step"),
        "sd_checkpoint": extra.get("sd_checkpoint", extra.get("hash")),
        "sd_checkpoint_name": extra.get("sd_checkpoint_name"),
        "shape": int(shape),
        "vectors": int(vectors),
    }


def _read_pickled_embedding(path: Path) -> tuple[dict[str, tuple[int, ...]], dict[str, Any]]:
    import torch

    if path.stat().st_size > _MAX_PICKLED_EMBEDDING:
        raise NetworkFileError(f"{path.name}: too large for an embedding")
    data = read_torch_dict(path, "embedding")
    if isinstance(data.get("string_to_param"), dict):  # A1111's own format
        params = data["string_to_param"]
        tensors = {str(k): v for k, v in params.items() if isinstance(v, torch.Tensor)}
        extra = {k: data.get(k) for k in ("step", "sd_checkpoint", "hash", "sd_checkpoint_name") if k in data}
    else:  # diffusers concepts ({token: tensor}) and SDXL pairs
        tensors = {str(k): v for k, v in data.items() if isinstance(v, torch.Tensor)}
        extra = {}
    extra = {k: v if isinstance(v, (str, int, float, type(None))) else str(v) for k, v in extra.items()}
    return {k: tuple(v.shape) for k, v in tensors.items()}, extra


def expected_embedding_width(spec: Any) -> int:
    """The width an embedding must have for the model: the CLIP width, or clip_l + clip_g for SDXL."""
    encoders = tuple(getattr(spec, "text_encoders", ()) or ())
    if not encoders:
        return -1
    if getattr(spec, "is_sdxl", False):
        return sum(e.width for e in encoders)
    return encoders[0].width


def embeddings_report(files: list[Any], spec: Any | None) -> dict[str, dict[str, Any]]:
    """A1111's {"loaded": {...}, "skipped": {...}}: loaded when the width fits the active model."""
    expected = expected_embedding_width(spec) if spec is not None else -1
    loaded: dict[str, Any] = {}
    skipped: dict[str, Any] = {}
    for f in files:
        try:
            info = embedding_info(f.path)
        except (OSError, NetworkFileError) as e:
            log.warning("embedding %s not listed: %s", f.path, e)
            continue
        (loaded if expected == -1 or info["shape"] == expected else skipped)[f.name] = info
    return {"loaded": loaded, "skipped": skipped}
