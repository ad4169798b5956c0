"""kohya LoRA / LyCORIS LoCon files on a diffusers pipeline, for one job at a time.

Loading goes through diffusers (``load_lora_weights`` converts kohya key names, SD1's
diffusers-style ``lora_unet_down_blocks_...`` and SDXL's sgm-style ``lora_unet_input_blocks_...``,
and injects peft layers); per-component strengths are set with ``set_adapters`` (text encoders
and UNet separately, as A1111's ``<lora:name:te:unet>``). The peft layers add ``up(down(x))·s``
beside the untouched original weights, so ``unload_lora_weights`` gives back exactly the
modules the model had before, and strength 0 adds exactly nothing.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import struct
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from webui.models.hashes import HashCache, sha256_of_file
from webui.models.safe_load import (
    CheckpointError,
    load_state_dict,
    read_safetensors_header,
)

log = logging.getLogger(__name__)

DEFAULT_MULTIPLIER = 1.0  # A1111's extra_networks_default_multiplier


@dataclass(frozen=True)
class LoraStrength:
    te: float
    unet: float


def parse_lora_args(args: Sequence[str]) -> LoraStrength:
    """A1111's arguments after the name: ``w`` | ``te:unet`` [``:dyn``], or ``te=``/``unet=`` named.

    Raises ValueError with a sentence for a value that is not a number.
    """
    positional: list[str] = []
    named: dict[str, str] = {}
    for raw in args:
        text = str(raw).strip()
        if "=" in text:
            key, value = text.split("=", 1)
            named[key.strip().lower()] = value.strip()
        else:
            positional.append(text)

    def number(text: str, what: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"{what} weight {text!r} is not a number") from None
        if not math.isfinite(value):  # nan/inf would turn every pixel black
            raise ValueError(f"{what} weight {text!r} is not a finite number")
        return value

    te = number(positional[0], "text encoder") if positional and positional[0] != "" else DEFAULT_MULTIPLIER
    if "te" in named:
        te = number(named["te"], "text encoder")
    unet = number(positional[1], "UNet") if len(positional) > 1 and positional[1] != "" else te
    if "unet" in named:
        unet = number(named["unet"], "UNet")
    return LoraStrength(te=te, unet=unet)


# --- hashes --------------------------------------------------------------------------------------

_addnet_cache: dict[tuple[str, int, int], str] = {}
_addnet_lock = threading.Lock()


def addnet_hash(path: Path) -> str:
    """kohya's "addnet" hash: full SHA-256 of a safetensors file's data after the header."""
    path = Path(path).resolve()
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    with _addnet_lock:
        if key in _addnet_cache:
            return _addnet_cache[key]
    with path.open("rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
    value = sha256_of_file(path, start=8 + header_len)
    with _addnet_lock:
        _addnet_cache[key] = value
    return value


def safetensors_metadata(path: Path) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors header ({} if none or unreadable)."""
    try:
        meta = read_safetensors_header(path, with_metadata=True).get("__metadata__")
    except (OSError, CheckpointError):
        return {}
    return {str(k): str(v) for k, v in meta.items()} if isinstance(meta, dict) else {}


def lora_hash(path: Path, hashes: HashCache | None = None) -> str:
    """The 12-hex short hash A1111 writes in "Lora hashes".

    As A1111: the ``sshs_model_hash`` metadata when the file carries it, else the addnet hash
    for safetensors, else the SHA-256 of the whole file (cached in ``hashes`` when given).
    """
    path = Path(path)
    if path.suffix.lower() == ".safetensors":
        stored = safetensors_metadata(path).get("sshs_model_hash", "")
        if re.fullmatch(r"[0-9a-fA-F]{12,64}", stored):
            return stored[:12].lower()
        return addnet_hash(path)[:12]
    full = hashes.sha256(path) if hashes is not None else sha256_of_file(path)
    return full[:12]


# --- reading -------------------------------------------------------------------------------------

_LYCORIS_OTHER = ("hada_w1", "lokr_w1", "lokr_w2", "oft_blocks", "oft_diag", "diff_b", ".diff", "ia3_w", "glora")


def read_lora(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a kohya LoRA/LoCon file; CheckpointError for anything we cannot use."""
    path = Path(path)
    if path.suffix.lower() == ".safetensors":
        read_safetensors_header(path)  # clear errors for garbage or truncated files
    state = load_state_dict(path)
    odd = sorted(k for k in state if any(m in k for m in _LYCORIS_OTHER))
    if odd:
        raise CheckpointError(f"{path.name}: LyCORIS type not supported (LoHa/LoKr/OFT/IA3/full diff, e.g. {odd[0]})")
    lora_keys = [k for k in state if k.endswith((".lora_down.weight", ".lora_up.weight"))]
    if not lora_keys:
        raise CheckpointError(f"{path.name}: not a kohya LoRA (no lora_down/lora_up tensors)")
    unknown = sorted(k for k in state if not k.startswith(("lora_unet_", "lora_te_", "lora_te1_", "lora_te2_")))
    if unknown:
        raise CheckpointError(f"{path.name}: unexpected tensor names for a kohya LoRA (e.g. {unknown[0]})")
    for key in lora_keys:
        if key.endswith(".lora_down.weight"):
            up = key.replace(".lora_down.weight", ".lora_up.weight")
            if up not in state:
                raise CheckpointError(f"{path.name}: {key} has no matching lora_up")
            if state[key].shape[0] != state[up].shape[1]:
                raise CheckpointError(f"{path.name}: {key} and its lora_up disagree on the rank")
    # Keep only what diffusers' kohya converter knows (alpha, down, up, dora_scale).
    return {k: v for k, v in state.items() if k.endswith((".lora_down.weight", ".lora_up.weight", ".alpha", ".dora_scale"))}


def _check_shapes(pipe, adapter: str) -> str | None:
    """After loading: do the injected LoRA matrices fit the modules they wrap? (peft may not say.)"""
    for component in ("unet", "text_encoder", "text_encoder_2"):
        model = getattr(pipe, component, None)
        if model is None:
            continue
        for name, module in model.named_modules():
            down = getattr(module, "lora_A", None)
            base = getattr(module, "base_layer", None)
            if down is None or base is None or adapter not in down:
                continue
            a = down[adapter].weight
            want_in = base.weight.shape[1]
            if a.shape[1] != want_in:
                return f"{component}.{name}: LoRA input width {a.shape[1]}, layer has {want_in}"
    return None


# --- applying ------------------------------------------------------------------------------------

@dataclass
class LoraJob:
    """One requested LoRA: the name as written in the prompt, its file and strengths."""

    name: str
    path: Path
    strength: LoraStrength


@dataclass
class AppliedLoras:
    applied: list[LoraJob] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@contextlib.contextmanager
def quiet_loaders() -> Iterator[None]:
    """Silence diffusers/transformers/peft while they inject layers.

    They log spurious "missing keys" reports, a progress bar, peft's "multiple adapters"
    warning, and (at error level) the exceptions we turn into notes anyway.
    """
    import warnings

    import diffusers.utils.logging as dlog
    import transformers.utils.logging as tlog

    before = dlog.get_verbosity(), tlog.get_verbosity()
    bar = tlog.is_progress_bar_enabled()
    dlog.set_verbosity(logging.CRITICAL)
    tlog.set_verbosity(logging.CRITICAL)
    tlog.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        dlog.set_verbosity(before[0])
        tlog.set_verbosity(before[1])
        if bar:
            tlog.enable_progress_bar()


def _remove_adapter(pipe, adapter: str) -> None:
    try:
        pipe.delete_adapters([adapter])
    except Exception as e:  # nothing of it was injected, or it half-failed: unload below covers it
        log.debug("delete_adapters(%s): %s", adapter, e)


@contextlib.contextmanager
def applied_loras(pipe, jobs: Sequence[LoraJob],
                  on_refused: Callable[[Path, str], None] | None = None) -> Iterator[AppliedLoras]:
    """Load ``jobs`` into ``pipe`` for the block, with their strengths; remove them all after.

    ``on_refused(path, reason)`` hears of files that cannot be read at all (not of ones that
    merely do not fit this model).
    """
    result = AppliedLoras()
    if not jobs:
        yield result
        return
    if not hasattr(pipe, "load_lora_weights"):
        result.notes.append(f"LoRA: {type(pipe).__name__} cannot load LoRAs; ignored {', '.join(j.name for j in jobs)}")
        yield result
        return
    adapters: list[str] = []
    try:
        with quiet_loaders():
            for index, job in enumerate(jobs):
                adapter = f"a1111_lora_{index}"
                try:
                    state = read_lora(job.path)
                except CheckpointError as e:
                    if on_refused is not None:
                        on_refused(job.path, str(e))
                    result.notes.append(f"LoRA {job.name}: skipped {job.path.name} ({_reason(e)})")
                    continue
                try:
                    pipe.load_lora_weights(state, adapter_name=adapter)
                except Exception as e:  # garbage, wrong model family, wrong shapes
                    _remove_adapter(pipe, adapter)
                    result.notes.append(f"LoRA {job.name}: skipped {job.path.name} ({_reason(e)})")
                    continue
                problem = _check_shapes(pipe, adapter)
                if problem:
                    _remove_adapter(pipe, adapter)
                    result.notes.append(f"LoRA {job.name}: skipped {job.path.name} (does not fit this model: {problem})")
                    continue
                present = [c for c, names in pipe.get_list_adapters().items() if adapter in names]
                if not present:
                    _remove_adapter(pipe, adapter)
                    result.notes.append(f"LoRA {job.name}: skipped {job.path.name} (no layer matches this model)")
                    continue
                adapters.append(adapter)
                result.applied.append(job)
            if adapters:
                listing = pipe.get_list_adapters()
                weights = []
                for adapter, job in zip(adapters, result.applied):
                    per_component = {}
                    for component, names in listing.items():
                        if adapter in names:
                            per_component[component] = job.strength.unet if component in ("unet", "transformer") else job.strength.te
                    weights.append(per_component)
                pipe.set_adapters(adapters, adapter_weights=weights)
        yield result
    finally:
        if adapters or _has_peft_layers(pipe):
            with quiet_loaders():
                pipe.unload_lora_weights()


def _has_peft_layers(pipe) -> bool:
    for component in ("unet", "text_encoder", "text_encoder_2"):
        model = getattr(pipe, component, None)
        if model is not None and getattr(model, "peft_config", None):
            return True
    return False


def _reason(e: BaseException) -> str:
    lines = [line.strip() for line in str(e).strip().splitlines() if line.strip()]
    detail = next((line for line in lines if line.startswith("size mismatch")), None)
    first = lines[0] if lines else type(e).__name__
    text = f"{first.rstrip(':')}: {detail}" if detail and detail != first else first
    return text if len(text) <= 400 else text[:397] + "..."
