"""Load one ControlNet file into a diffusers ControlNetModel, offline and without running its code.

Steps: read tensors through the checkpoint loader's safe reader (safetensors header checked,
pickles with ``weights_only``), refuse kinds we do not run (webui.control.model_kinds), rename
original-layout keys to diffusers' (webui.control.model_layout), build the model from the shipped
config patched with the file's dims on the meta device, and fill it strictly.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from webui.control.model_kinds import CONTROLNET, classify, refusal
from webui.control.model_layout import (
    FAMILY_LABELS,
    LayoutError,
    config_family,
    config_from_shapes,
    to_diffusers,
)
from webui.control.models import ControlNetError
from webui.models.safe_load import (
    SAFETENSORS_SUFFIXES,
    CheckpointError,
    load_state_dict,
    read_safetensors_header,
    read_torch_dict,
)

StateDict = dict[str, torch.Tensor]


def wants_global_pooling(path: Path) -> bool:
    """The shuffle model averages its residuals over space; as in the extension, its file name says so."""
    return "shuffle" in Path(path).stem.lower()


@dataclass
class LoadedControlNet:
    """A file's tensors in diffusers layout and the config they fit."""

    title: str
    config: dict[str, Any]
    state_dict: StateDict

    @property
    def family(self) -> str:
        return config_family(self.config)

    def build(self, dtype: torch.dtype = torch.float32):
        """The ControlNetModel (CPU, ``dtype``, eval mode)."""
        from accelerate import init_empty_weights
        from diffusers import ControlNetModel

        with init_empty_weights():
            model = ControlNetModel.from_config(self.config)
        expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
        missing = sorted(expected.keys() - self.state_dict.keys())
        extra = sorted(self.state_dict.keys() - expected.keys())
        if missing or extra:
            detail = f"{len(missing)} tensors missing (e.g. {missing[0]})" if missing else \
                f"{len(extra)} unexpected tensors (e.g. {extra[0]})"
            raise ControlNetError(f"{self.title}: the file does not match the ControlNet layout: {detail}")
        for name, tensor in self.state_dict.items():
            if tuple(tensor.shape) != expected[name]:
                raise ControlNetError(f"{self.title}: tensor {name} has shape {tuple(tensor.shape)}, "
                                      f"expected {expected[name]}")
        tensors = {k: v.to(dtype) for k, v in self.state_dict.items()}
        model.load_state_dict(tensors, strict=True, assign=True)
        return model.eval().requires_grad_(False)


def _read_tensors(path: Path, title: str) -> StateDict:
    try:
        if path.suffix.lower() in SAFETENSORS_SUFFIXES:
            return load_state_dict(path)
        obj = read_torch_dict(path, "ControlNet")
        # IP-Adapter .bin files nest their weights: {"image_proj": {...}, "ip_adapter": {...}}.
        if isinstance(obj.get("image_proj"), dict) or isinstance(obj.get("ip_adapter"), dict):
            raise ControlNetError(refusal("ip_adapter", title))
        return load_state_dict(path)
    except CheckpointError as e:
        raise ControlNetError(f"{title}: {e}") from None


def _diffusers_shapes(names_and_shapes: Mapping[str, tuple[int, ...]], title: str) -> dict[str, tuple[int, ...]]:
    kind = classify(names_and_shapes)
    if kind != CONTROLNET:
        raise ControlNetError(refusal(kind, title))
    try:
        return to_diffusers(names_and_shapes)
    except LayoutError as e:
        raise ControlNetError(f"{title}: not a complete ControlNet ({e})") from None


def read_controlnet(path: Path, *, title: str | None = None) -> LoadedControlNet:
    """The file's ControlNet, identified and converted; raises ControlNetError with a sentence."""
    path = Path(path)
    title = title or path.stem
    raw = _read_tensors(path, title)
    kind = classify(raw)
    if kind != CONTROLNET:
        raise ControlNetError(refusal(kind, title))
    try:
        state = to_diffusers(raw)
        config = config_from_shapes({k: tuple(v.shape) for k, v in state.items()},
                                    global_pool=wants_global_pooling(path))
    except LayoutError as e:
        raise ControlNetError(f"{title}: not a complete ControlNet ({e})") from None
    return LoadedControlNet(title=title, config=config, state_dict=state)


def _file_shapes(path: Path, title: str) -> dict[str, tuple[int, ...]]:
    try:
        if path.suffix.lower() in SAFETENSORS_SUFFIXES:
            return {k: tuple(v["shape"]) for k, v in read_safetensors_header(path).items()}
        return {k: tuple(v.shape) for k, v in _read_tensors(path, title).items()}
    except CheckpointError as e:
        raise ControlNetError(f"{title}: {e}") from None


_TITLE = "\x00title\x00"
_inspect_lock = threading.Lock()
_inspected: dict[tuple[str, int, float], dict[str, Any] | ControlNetError] = {}


def inspect_file(path: Path, title: str | None = None) -> dict[str, Any]:
    """The ControlNetModel config a file would load with, from its shapes only (the safetensors header;
    a pickle is read, memory-mapped). Raises ControlNetError for a refused kind or an unreadable file.
    Remembered per (path, size, mtime)."""
    path = Path(path)
    title = title or path.stem
    try:
        stat = path.stat()
    except OSError as e:
        raise ControlNetError(f"{title}: the file cannot be read ({e.strerror or e})") from None
    key = (str(path), stat.st_size, stat.st_mtime)
    with _inspect_lock:
        known = _inspected.get(key)
    if known is None:
        # Worked out once per file with a placeholder title; each caller's title goes in when raised.
        try:
            shapes = _diffusers_shapes(_file_shapes(path, _TITLE), _TITLE)
            known = config_from_shapes(shapes, global_pool=wants_global_pooling(path))
        except LayoutError as e:
            known = ControlNetError(f"{_TITLE}: not a complete ControlNet ({e})")
        except ControlNetError as e:
            known = e
        except OSError as e:
            known = ControlNetError(f"{_TITLE}: the file cannot be read ({e.strerror or e})")
        with _inspect_lock:
            _inspected[key] = known
    if isinstance(known, ControlNetError):
        raise ControlNetError(str(known).replace(_TITLE, title))
    return dict(known)


def file_family(path: Path) -> str | None:
    """"sd1", "sd2" or "sdxl" from the file's shapes; None when it is not a ControlNet we load."""
    try:
        return config_family(inspect_file(path))
    except ControlNetError:
        return None


def unet_family(unet_config: Mapping[str, Any]) -> str:
    if unet_config.get("addition_embed_type") == "text_time":
        return "sdxl"
    return "sd2" if unet_config.get("cross_attention_dim") == 1024 else "sd1"


def check_compatible(config: Mapping[str, Any], unet_config: Mapping[str, Any], title: str) -> None:
    """Refuse a ControlNet whose residuals cannot fit the loaded UNet, with a sentence naming both."""
    mine, theirs = config_family(config), unet_family(unet_config)
    if mine != theirs:
        raise ControlNetError(f"{title} is {_article(mine)} {FAMILY_LABELS[mine]} ControlNet; the loaded checkpoint "
                              f"is {FAMILY_LABELS[theirs]}: choose a ControlNet made for {FAMILY_LABELS[theirs]}")
    widths, unet_widths = list(config["block_out_channels"]), list(unet_config["block_out_channels"])
    # A ControlNet without attention ("small" SDXL ones) never reads the text context.
    attends = config.get("mid_block_type") == "UNetMidBlock2DCrossAttn" or \
        any("CrossAttn" in t for t in config["down_block_types"])
    context_differs = attends and config["cross_attention_dim"] != unet_config["cross_attention_dim"]
    if widths != unet_widths or context_differs or config["layers_per_block"] != unet_config["layers_per_block"]:
        raise ControlNetError(
            f"{title} does not fit the loaded checkpoint: its blocks are {widths} wide with a "
            f"{config['cross_attention_dim']}-wide text context, the checkpoint's UNet {unet_widths} "
            f"with {unet_config['cross_attention_dim']}"
        )


def _article(family: str) -> str:
    return "an"  # "an SD 1.x", "an SDXL"
