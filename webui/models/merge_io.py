"""Tensor by tensor in and out, for the checkpoint merger (webui/models/merge.py).

A real SDXL file is ~7 GB: reading A, B and C whole and building the result in memory would need
four copies at once. safetensors inputs are opened lazily (one tensor read at a time, from the
memory map); the output is written as safetensors by hand, header first (every shape and dtype
is known before any arithmetic), then each tensor as it is computed. Legacy pickles cannot be
read lazily: they go through safe_load (weights_only) and are held whole.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import BinaryIO

import torch
from safetensors import safe_open

from webui.models.safe_load import (
    SAFETENSORS_SUFFIXES,
    CheckpointError,
    load_state_dict,
    read_safetensors_header,
)

DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool, "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2,
}
NAMES: dict[torch.dtype, str] = {v: k for k, v in DTYPES.items()}


class TensorSource:
    """One checkpoint's tensors: names, shapes and dtypes up front, the data one tensor at a time."""

    def __init__(self, path: Path, stack: ExitStack):
        self.path = Path(path)
        self._handle = None
        self._tensors: dict[str, torch.Tensor] | None = None
        self.metadata: dict[str, str] = {}
        if self.path.suffix.lower() in SAFETENSORS_SUFFIXES:
            header = read_safetensors_header(self.path, with_metadata=True)  # validated before the reader sees it
            meta = header.pop("__metadata__", None)
            self.metadata = {str(k): str(v) for k, v in meta.items()} if isinstance(meta, dict) else {}
            unknown = sorted({e["dtype"] for e in header.values()} - set(DTYPES))
            if unknown:
                raise CheckpointError(f"{self.path.name}: tensor types {', '.join(unknown)} are not supported here")
            self.shapes = {k: tuple(e["shape"]) for k, e in header.items()}
            self.dtypes = {k: DTYPES[e["dtype"]] for k, e in header.items()}
            try:
                self._handle = stack.enter_context(safe_open(str(self.path), framework="pt", device="cpu"))
            except Exception as e:
                raise CheckpointError(f"{self.path.name}: could not read tensors ({e})") from None
        else:
            self._tensors = load_state_dict(self.path)  # weights_only: nothing in the file runs
            self.shapes = {k: tuple(v.shape) for k, v in self._tensors.items()}
            self.dtypes = {k: v.dtype for k, v in self._tensors.items()}

    def __contains__(self, key: str) -> bool:
        return key in self.shapes

    def keys(self) -> list[str]:
        return list(self.shapes)

    def get(self, key: str) -> torch.Tensor:
        if self._tensors is not None:
            return self._tensors[key]
        return self._handle.get_tensor(key)


def nbytes(shape: tuple[int, ...], dtype: torch.dtype) -> int:
    count = 1
    for dim in shape:
        count *= int(dim)
    return count * torch.empty((), dtype=dtype).element_size()


def header_bytes(entries: Iterable[tuple[str, tuple[int, ...], torch.dtype]], metadata: dict[str, str]) -> bytes:
    """The safetensors header for tensors laid out back to back in this order (padded to 8 bytes)."""
    header: dict[str, object] = {"__metadata__": metadata} if metadata else {}
    offset = 0
    for name, shape, dtype in entries:
        size = nbytes(shape, dtype)
        header[name] = {"dtype": NAMES[dtype], "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return raw + b" " * (-len(raw) % 8)


def write_safetensors(out: BinaryIO, entries: list[tuple[str, tuple[int, ...], torch.dtype]],
                      tensors: Iterator[torch.Tensor], metadata: dict[str, str]) -> None:
    """Header, then each tensor of ``tensors`` (same order as ``entries``), checked against its entry."""
    header = header_bytes(entries, metadata)
    out.write(len(header).to_bytes(8, "little"))
    out.write(header)
    for (name, shape, dtype), tensor in zip(entries, tensors, strict=True):
        if tuple(tensor.shape) != tuple(shape) or tensor.dtype != dtype:
            raise RuntimeError(f"merge produced {name} as {tuple(tensor.shape)} {tensor.dtype}, "
                               f"planned {tuple(shape)} {dtype}")
        flat = tensor.detach().to("cpu").contiguous().reshape(-1)
        out.write(flat.view(torch.uint8).numpy().data)  # raw little-endian bytes, no extra copy


def fsync_file(out: BinaryIO) -> None:
    out.flush()
    os.fsync(out.fileno())
