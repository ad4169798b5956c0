"""Checkpoint merger (A1111's "Checkpoint Merger" tab): weighted sum, add difference, or a plain
copy of A, with fp16, a baked-in VAE and discarded weights; written as safetensors only.

What A1111 does, and so do we: only tensors whose name contains "model" are merged (the DDPM
buffers come from A), tensors of A missing from B (or from C) keep A's values, the CLIP
``position_ids`` are never merged, and an inpainting A (9 input channels) takes a normal B's
weights on its first 4 input channels. Where we differ, for the better: models of different
families are refused before anything is read (A1111 crashes halfway or writes garbage), EMA
copies (``model_ema.*``) are left out (they would still be A's), "Save as float16" converts
every fp32 tensor (A1111 misses those B lacks), the file is written tensor by tensor to a
temporary name and renamed (never a half file, never three full models in memory), and no
.ckpt is written. Instruct-pix2pix models (8 input channels) are refused with the loader's
message: nothing here can load them.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import torch

from webui.models.catalog import Catalog, ModelFile
from webui.models.identify import ModelSpec, identify
from webui.models.merge_io import TensorSource, fsync_file, nbytes, write_safetensors
from webui.models.merge_recipe import (
    MergeError,
    MergeRecipe,
    config_to_copy,
    merge_metadata,
    output_name,
)
from webui.models.safe_load import CheckpointError

__all__ = ["MergeError", "MergeRecipe", "merge_checkpoints", "merged_title"]

Progress = Callable[[int, int], None]  # (tensors written, total); may raise to stop the merge
SKIP_ON_MERGE = {"cond_stage_model.transformer.text_model.embeddings.position_ids"}
EMA_PREFIX = "model_ema."
VAE_PREFIX = "first_stage_model."
SPACE_MARGIN = 64 * 2**20  # headroom beyond the file itself (metadata, the hash cache, the yaml)
PARTIAL_PREFIX = ".partial-merge-"
_BASE = {"sd15-inpaint": "sd15", "sd2-v": "sd2", "sd2-inpaint": "sd2", "sdxl-inpaint": "sdxl-base"}
_busy = threading.Lock()  # one merge at a time: each can write several GB


@dataclass(frozen=True)
class _Entry:
    name: str
    shape: tuple[int, ...]
    dtype: torch.dtype
    kind: str  # "copy" (A's), "merge", "merge4" (first 4 input channels of an inpaint A), "vae"
    source_key: str = ""  # the VAE file's own key for "vae"


def merge_checkpoints(recipe: MergeRecipe, catalog: Catalog, *, progress: Progress | None = None) -> Path:
    """Merge as ``recipe`` says into the checkpoints folder; returns the new file's path.

    Raises MergeError (with an HTTP-like ``code``) for anything a user can fix. The catalog is
    rescanned afterwards, so the new checkpoint is listed at once.
    """
    if not _busy.acquire(blocking=False):
        raise MergeError("another merge is running; wait for it to finish", code=409)
    try:
        path = _merge(recipe, catalog, progress)
    finally:
        _busy.release()
    catalog.refresh()  # after the lock: the rescan also schedules hashing
    return path


def merged_title(catalog: Catalog, path: Path) -> str:
    """The new checkpoint's title with its short hash, as the checkpoint lists show it."""
    found = next((f for f in catalog.checkpoints if f.path == Path(path).resolve()), None)
    if found is None:
        raise MergeError(f"{Path(path).name} was written but is not in the checkpoint list", code=500)
    return catalog.with_hash(found).title


def _merge(recipe: MergeRecipe, catalog: Catalog, progress: Progress | None) -> Path:
    a, b, c = _resolve(recipe, catalog)
    with ExitStack() as stack:
        sources = [_open(f, stack) for f in (a, b, c) if f is not None]
        _check_families(recipe, [(f, s) for f, s in zip((a, b, c), sources)])
        vae = _open_vae(recipe, catalog, stack)
        entries, inpainting = _plan(recipe, sources, vae)
        folder = catalog.ckpt_dir
        target = folder / output_name(recipe, a, b, c, inpainting)
        if target.resolve().parent != folder.resolve():
            raise MergeError(f"{target.name!r} would leave the checkpoints folder")
        if target.exists() and not recipe.overwrite:
            raise MergeError(f"{target.name} already exists in the checkpoints folder: choose another name "
                             "or allow overwriting", code=409)
        _check_space(folder, sum(nbytes(e.shape, e.dtype) for e in entries))
        roles = ("primary_model_hash", "secondary_model_hash", "tertiary_model_hash")
        hashed = catalog.with_hash if recipe.add_merge_recipe else (lambda f: f)  # full SHA-256 of each input
        inputs = [(role, hashed(f), s.metadata) for role, f, s in zip(roles, (a, b, c), sources)]
        metadata = merge_metadata(recipe, inputs, inpainting)
        tensors = _tensors(recipe, entries, sources, vae, progress)
        _write(target, entries, tensors, metadata, recipe.overwrite)
    _place_config(config_to_copy(recipe, a, b, c), target, recipe.overwrite)
    return target


def _resolve(recipe: MergeRecipe, catalog: Catalog) -> tuple[ModelFile, ModelFile | None, ModelFile | None]:
    def find(query: str | None, role: str) -> ModelFile:
        if not query or not query.strip():
            raise MergeError(f"{recipe.interp_method} needs a {role} model")
        found = catalog.find_checkpoint(query)
        if found is None:
            raise MergeError(f"{role} model not found: {query!r} (see /sdapi/v1/sd-models)")
        return found

    a = find(recipe.primary_model_name, "primary (A)")
    b = find(recipe.secondary_model_name, "secondary (B)") if recipe.uses_b else None
    c = find(recipe.tertiary_model_name, "tertiary (C)") if recipe.uses_c else None
    return a, b, c


def _open(file: ModelFile, stack: ExitStack) -> TensorSource:
    try:
        return TensorSource(file.path, stack)
    except CheckpointError as e:
        raise MergeError(str(e)) from None


def _spec(file: ModelFile, source: TensorSource) -> ModelSpec:
    try:
        return identify(source.shapes)
    except CheckpointError as e:
        raise MergeError(f"{file.name}: {e}") from None


def _check_families(recipe: MergeRecipe, models: list[tuple[ModelFile, TensorSource]]) -> None:
    specs = [(file, _spec(file, source)) for file, source in models]
    (a, spec_a), rest = specs[0], specs[1:]
    for file, spec in rest:
        if _BASE.get(spec.family, spec.family) != _BASE.get(spec_a.family, spec_a.family):
            raise MergeError(f"cannot merge {spec_a.label} ({a.name}) with {spec.label} ({file.name}): "
                             "they are different model families")
    if len(specs) > 1 and specs[1][1].is_inpaint and not spec_a.is_inpaint:
        raise MergeError("when merging an inpainting model with a normal one, A must be the inpainting model")
    if len(specs) > 2 and specs[1][1].is_inpaint != specs[2][1].is_inpaint:
        raise MergeError("B and C must both be inpainting models or both normal ones: "
                         "their difference is added to A")


def _open_vae(recipe: MergeRecipe, catalog: Catalog, stack: ExitStack) -> TensorSource | None:
    choice = (recipe.bake_in_vae or "").strip()
    if choice in ("", "None"):
        return None
    file = catalog.find_vae(choice)
    if file is None:
        raise MergeError(f"VAE not found: {choice!r} (see /sdapi/v1/sd-vae)")
    return _open(file, stack)


def _half(dtype: torch.dtype, enable: bool) -> torch.dtype:
    return torch.float16 if enable and dtype == torch.float32 else dtype


def _plan(recipe: MergeRecipe, sources: list[TensorSource], vae: TensorSource | None) -> tuple[list[_Entry], bool]:
    """Every output tensor with its final shape and dtype, checked before a byte is written."""
    A = sources[0]
    B = sources[1] if len(sources) > 1 else None
    C = sources[2] if len(sources) > 2 else None
    pattern = re.compile(recipe.discard_weights) if recipe.discard_weights else None
    entries: dict[str, _Entry] = {}
    inpainting = False
    for key in A.keys():
        if key.startswith(EMA_PREFIX) or (pattern is not None and pattern.search(key)):
            continue
        shape, dtype, kind = A.shapes[key], A.dtypes[key], "copy"
        if B is not None and key in B and "model" in key and key not in SKIP_ON_MERGE and dtype.is_floating_point:
            kind = _merge_kind(key, shape, B.shapes[key])
            dtypes = [dtype, B.dtypes[key]]
            if C is not None:
                if key not in C:
                    kind = "copy"  # A1111: no C tensor means no difference to add
                elif C.shapes[key] != B.shapes[key]:
                    raise MergeError(f"{key}: B is {B.shapes[key]} but C is {C.shapes[key]}; "
                                     "B and C must have the same sizes")
                else:
                    dtypes.append(C.dtypes[key])
            if kind != "copy":
                inpainting = inpainting or kind == "merge4"
                dtype = dtypes[0]
                for other in dtypes[1:]:
                    dtype = _wider(dtype, other)
        entries[key] = _Entry(key, shape, _half(dtype, recipe.save_as_half), kind)
    if vae is not None:
        _bake_vae(entries, vae, recipe.save_as_half)
    if not entries:
        raise MergeError("nothing left to save: the discard pattern matches every tensor")
    return list(entries.values()), inpainting


def _wider(x: torch.dtype, y: torch.dtype) -> torch.dtype:
    try:
        return torch.promote_types(x, y)
    except RuntimeError:  # torch does not promote float8 types: do the arithmetic in fp32
        return torch.float32


def _merge_kind(key: str, a: tuple[int, ...], b: tuple[int, ...]) -> str:
    if a == b:
        return "merge"
    if len(a) == len(b) == 4 and a[0] == b[0] and a[2:] == b[2:] and a[1] == 9 and b[1] == 4:
        return "merge4"  # inpainting A, normal B: the first conv's 4 latent channels are shared
    raise MergeError(f"{key}: A is {a} but B is {b}; the models have different sizes and cannot be merged")


def _bake_vae(entries: dict[str, _Entry], vae: TensorSource, half: bool) -> None:
    baked = 0
    for key in vae.keys():
        if key.startswith(("loss.", EMA_PREFIX)):
            continue
        target = key if key.startswith(VAE_PREFIX) else VAE_PREFIX + key
        entry = entries.get(target)
        if entry is None:
            continue
        if vae.shapes[key] != entry.shape:
            raise MergeError(f"the VAE does not fit this checkpoint: {key} is {vae.shapes[key]}, "
                             f"the checkpoint's is {entry.shape}")
        entries[target] = _Entry(target, entry.shape, _half(vae.dtypes[key], half), "vae", key)
        baked += 1
    if not baked:
        raise MergeError(f"the VAE {vae.path.name} has no tensors that fit the checkpoint's VAE "
                         "(first_stage_model.*); a diffusers-layout VAE cannot be baked in")


def _tensors(recipe: MergeRecipe, entries: list[_Entry], sources: list[TensorSource],
             vae: TensorSource | None, progress: Progress | None) -> Iterator[torch.Tensor]:
    """The output tensors in plan order, computed one at a time (in fp32 or wider, then cast)."""
    A = sources[0]
    m = recipe.multiplier
    for done, entry in enumerate(entries, start=1):
        if entry.kind == "vae":
            out = vae.get(entry.source_key)  # type: ignore[union-attr]
        elif entry.kind == "copy":
            out = A.get(entry.name)
        else:
            a = A.get(entry.name)
            work = _wider(entry.dtype, torch.float32)
            b = sources[1].get(entry.name).to(work)
            c = sources[2].get(entry.name).to(work) if len(sources) > 2 else None
            out = a.to(work, copy=True)
            _combine(out[:, 0:4] if entry.kind == "merge4" else out, b, c, m)
        yield out.to(entry.dtype)
        if progress is not None:
            progress(done, len(entries))


def _combine(x: torch.Tensor, b: torch.Tensor, c: torch.Tensor | None, m: float) -> None:
    """In place (a UNet tensor of a real SDXL can be 100 MB): Weighted sum A + (B - A) * M, which is
    A * (1 - M) + B * M; Add difference A + (B - C) * M."""
    if c is None:
        x.lerp_(b, m)
    else:
        x.add_(b - c, alpha=m)


def _check_space(folder: Path, data_bytes: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if data_bytes + SPACE_MARGIN > free:
        raise MergeError(f"not enough free disk space in {folder.name}: the merged checkpoint needs about "
                         f"{data_bytes / 2**30:.2f} GB, {free / 2**30:.2f} GB are free", code=507)


def _write(target: Path, entries: list[_Entry], tensors: Iterator[torch.Tensor], metadata: dict[str, str],
           overwrite: bool) -> None:
    """Write to a hidden temporary file in the same folder, then give it its name in one step."""
    folder = target.parent
    for stale in folder.glob(PARTIAL_PREFIX + "*"):  # a merge killed mid-write (we hold the merge lock)
        stale.unlink(missing_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=PARTIAL_PREFIX, suffix=".tmp", dir=folder)
    tmp = Path(tmp_name)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a checkpoint is as readable as any other file
        with os.fdopen(fd, "wb") as out:
            write_safetensors(out, [(e.name, e.shape, e.dtype) for e in entries], tensors, metadata)
            fsync_file(out)
        if overwrite:
            os.replace(tmp, target)
            return
        try:
            os.link(tmp, target)  # fails if the name was taken meanwhile: never clobbers
        except FileExistsError:
            raise MergeError(f"{target.name} already exists in the checkpoints folder", code=409) from None
        except OSError:  # a file system without hard links
            if target.exists():
                raise MergeError(f"{target.name} already exists in the checkpoints folder", code=409) from None
            os.replace(tmp, target)
    except OSError as e:
        raise MergeError(f"could not write {target.name}: {e.strerror or e}", code=507) from None
    finally:
        tmp.unlink(missing_ok=True)


def _umask() -> int:
    try:  # read, not set: os.umask() would change it for every thread for a moment
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


def _place_config(source: Path | None, target: Path, overwrite: bool) -> None:
    """"Copy config from": the sidecar yaml (v-prediction, head counts) beside the new file."""
    yaml = target.with_suffix(".yaml")
    if source is None:
        if overwrite:
            yaml.unlink(missing_ok=True)  # the replaced model's config would describe the wrong model
        return
    tmp = yaml.with_name(PARTIAL_PREFIX + yaml.name)
    shutil.copyfile(source, tmp)
    os.replace(tmp, yaml)
