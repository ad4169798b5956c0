"""Read checkpoint tensors without ever executing code from the file.

safetensors files are memory-mapped and their header is validated against the file size
before anything is read, so a truncated or corrupt file fails with a message instead of a
crash deep inside a converter. Legacy pickles (.ckpt/.pt/.bin) go through
``torch.load(weights_only=True)``: the restricted unpickler refuses any global that is not a
tensor building block, so a file that would run code is refused, and we say why.
"""

from __future__ import annotations

import json
import pickle
import re
import struct
import warnings
import zipfile
from pathlib import Path

import torch
from safetensors import safe_open

SAFETENSORS_SUFFIXES = {".safetensors"}
PICKLE_SUFFIXES = {".ckpt", ".pt", ".pth", ".bin"}
CHECKPOINT_SUFFIXES = SAFETENSORS_SUFFIXES | PICKLE_SUFFIXES

_MAX_HEADER_BYTES = 100 * 1024 * 1024  # safetensors itself refuses larger headers

_DTYPE_SIZES = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
    "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1, "U16": 2, "U32": 4, "U64": 8,
}


class CheckpointError(ValueError):
    """A file that cannot be used as a checkpoint; the message says why, for a person."""


def read_safetensors_header(path: Path, *, with_metadata: bool = False) -> dict[str, dict]:
    """Return the tensor entries of a safetensors header (name → dtype/shape/offsets), validated.

    ``with_metadata`` keeps the ``__metadata__`` entry (training notes of LoRA files, for example).
    """
    path = Path(path)
    size = path.stat().st_size
    with path.open("rb") as f:
        prefix = f.read(8)
        if len(prefix) < 8:
            raise CheckpointError(f"{path.name}: not a safetensors file (only {size} bytes)")
        (header_len,) = struct.unpack("<Q", prefix)
        if header_len > _MAX_HEADER_BYTES or 8 + header_len > size:
            raise CheckpointError(
                f"{path.name}: not a safetensors file or truncated "
                f"(header claims {header_len} bytes, file has {size})"
            )
        raw = f.read(header_len)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path.name}: corrupt safetensors header ({e})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path.name}: corrupt safetensors header (not a JSON object)")
    metadata = header.pop("__metadata__", None)
    if not header:
        raise CheckpointError(f"{path.name}: the file contains no tensors")
    data_size = size - 8 - header_len
    for name, entry in header.items():
        _check_entry(path, name, entry, data_size)
    if with_metadata and metadata is not None:
        header["__metadata__"] = metadata
    return header


def _check_entry(path: Path, name: str, entry: object, data_size: int) -> None:
    try:
        start, end = entry["data_offsets"]  # type: ignore[index]
        shape = entry["shape"]  # type: ignore[index]
        itemsize = _DTYPE_SIZES[entry["dtype"]]  # type: ignore[index]
    except (KeyError, TypeError, ValueError):
        raise CheckpointError(f"{path.name}: corrupt safetensors header entry for {name!r}") from None
    count = 1
    for dim in shape:
        count *= int(dim)
    if end > data_size or end - start != count * itemsize:
        raise CheckpointError(
            f"{path.name}: truncated or corrupt (tensor {name!r} ends at byte {end}, "
            f"data section has {data_size})"
        )


def read_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes. Cheap for safetensors (header only); loads a pickle fully."""
    path = Path(path)
    if path.suffix.lower() in SAFETENSORS_SUFFIXES:
        return {k: tuple(v["shape"]) for k, v in read_safetensors_header(path).items()}
    return {k: tuple(v.shape) for k, v in load_state_dict(path).items()}


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """All tensors of a checkpoint on CPU, keyed by their original names."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix in SAFETENSORS_SUFFIXES:
        return _load_safetensors(path)
    if suffix in PICKLE_SUFFIXES:
        return _load_pickle(path)
    raise CheckpointError(f"{path.name}: unsupported file type {suffix!r}")


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    read_safetensors_header(path)  # validates before the Rust reader sees the file
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            return {name: f.get_tensor(name) for name in f.keys()}
    except Exception as e:  # the reader's own errors are terse; keep them but name the file
        raise CheckpointError(f"{path.name}: could not read tensors ({e})") from None


def _load_pickle(path: Path) -> dict[str, torch.Tensor]:
    return _unwrap_state_dict(path, read_torch_dict(path, "checkpoint"))


def read_torch_dict(path: Path, what: str) -> dict:
    """The top-level dict of a torch pickle, loaded with ``weights_only=True``.

    Non-tensor entries (ints, strings, nested dicts) are kept, as embeddings and hypernetworks
    need them. A pickle that asks for anything beyond plain data and tensors is refused with the
    offending global named; nothing in it runs.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    is_zip = zipfile.is_zipfile(path)
    if not is_zip:
        # Pre-1.6 torch pickles are plain pickle streams; weights_only handles them too,
        # but a random file is far more likely here, so check that it starts like a pickle.
        with path.open("rb") as f:
            if f.read(1) != b"\x80":
                raise CheckpointError(f"{path.name}: not a PyTorch file (neither zip nor pickle)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Detected pickle protocol ..." for junk files
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=is_zip)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"{path.name}: refused: the pickle asks for code that is not plain tensor data "
            f"({refused_global(e)}), so it was not loaded. Convert it to .safetensors from a trusted source."
        ) from None
    except Exception as e:
        raise CheckpointError(f"{path.name}: unreadable {what} ({first_error_line(e)})") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path.name}: holds a {type(obj).__name__}, not a {what} dict")
    return obj


def _unwrap_state_dict(path: Path, obj: dict) -> dict[str, torch.Tensor]:
    while isinstance(obj.get("state_dict"), dict):  # Lightning checkpoints nest the weights
        obj = obj["state_dict"]
    tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"{path.name}: the file contains no tensors")
    return tensors


_GLOBAL = re.compile(r"GLOBAL\s+([\w.]+)")
# torch's advice to allowlist the global "if you trust" it: never passed on to a user.
_ALLOWLIST_HINT = re.compile(r"(add_safe_globals|safe_globals|allowlist|if you trust|weights_only=False)", re.I)


def refused_global(e: BaseException) -> str:
    """What a refused pickle asked for ("asks for posix.system"), without torch's allowlist advice."""
    text = str(e)
    found = _GLOBAL.search(text)
    if found:
        return f"it asks for {found.group(1)}"
    lines = [line.strip() for line in text.splitlines() if line.strip() and not _ALLOWLIST_HINT.search(line)]
    return lines[0] if lines else type(e).__name__


def first_error_line(e: BaseException) -> str:
    """The line of a loader error worth showing a person (the refused global, if named)."""
    text = str(e).strip()
    if _GLOBAL.search(text):
        return refused_global(e)
    lines = [line.strip() for line in text.splitlines() if line.strip() and not _ALLOWLIST_HINT.search(line)]
    return lines[0] if lines else type(e).__name__
