"""ControlNet key layouts and configs: original (lllyasviel) keys to diffusers', dims from shapes.

The conversion is diffusers' own ``convert_controlnet_checkpoint`` (offline; it only renames),
plus the SDXL ``label_emb`` slot it leaves out. It moves values without looking at them, so the
same call converts a dict of shapes (to identify a file from its header) or of tensors (to load it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

from webui.control.model_kinds import is_diffusers_layout

V = TypeVar("V")

CONFIGS_DIR = Path(__file__).resolve().parents[2] / "configs" / "controlnet"
SHIPPED = {"sd1": "sd15", "sd2": "sd21", "sdxl": "sdxl"}
FAMILY_LABELS = {"sd1": "SD 1.x", "sd2": "SD 2.x", "sdxl": "SDXL"}

_PREFIX = "control_model."
# SDXL's text_time embedding sits in LDM's label_emb slot (diffusers' converter skips it).
_LABEL_EMB = {
    "label_emb.0.0.weight": "add_embedding.linear_1.weight",
    "label_emb.0.0.bias": "add_embedding.linear_1.bias",
    "label_emb.0.2.weight": "add_embedding.linear_2.weight",
    "label_emb.0.2.bias": "add_embedding.linear_2.bias",
}


class LayoutError(ValueError):
    """The keys or shapes do not form a ControlNet this module can describe."""


def _original_layers_per_block(keys: set[str]) -> int:
    inputs = {int(m.group(1)) for k in keys if (m := re.match(r"input_blocks\.(\d+)\.", k))}
    downsamplers = {int(m.group(1)) for k in keys if (m := re.match(r"input_blocks\.(\d+)\.0\.op\.weight$", k))}
    levels = len(downsamplers) + 1
    if not inputs or len(inputs) % levels:
        raise LayoutError(f"{len(inputs)} input blocks do not split into {levels} levels")
    return len(inputs) // levels - 1


def to_diffusers(state: Mapping[str, V]) -> dict[str, V]:
    """Original-layout (prefixed or not) ControlNet entries renamed to diffusers' ControlNetModel keys."""
    if is_diffusers_layout(state):
        return dict(state)
    from diffusers.loaders.single_file_utils import convert_controlnet_checkpoint

    # ControlNet 1.0's files bundle the whole SD model beside control_model.*: keep only the latter.
    if any(k.startswith(_PREFIX) for k in state):
        bare = {k[len(_PREFIX):]: v for k, v in state.items() if k.startswith(_PREFIX)}
    else:
        bare = dict(state)
    lpb = _original_layers_per_block(set(bare))
    converted = convert_controlnet_checkpoint(bare, {"layers_per_block": lpb})
    for ldm, diffusers_key in _LABEL_EMB.items():
        if ldm in bare:
            converted[diffusers_key] = bare[ldm]
    missing = sorted(k for k, v in converted.items() if v is None)
    if missing:
        raise LayoutError(f"{len(missing)} tensors missing from the original layout (e.g. {missing[0]})")
    return converted


@lru_cache(maxsize=None)
def _shipped_text(name: str) -> str:
    return (CONFIGS_DIR / name / "config.json").read_text(encoding="utf-8")


def shipped_config(family: str) -> dict[str, Any]:
    return json.loads(_shipped_text(SHIPPED[family]))


def _indices(shapes: Mapping[str, Any], pattern: str) -> list[int]:
    rx = re.compile(pattern)
    return sorted({int(m.group(1)) for k in shapes if (m := rx.match(k))})


def _shape(shapes: Mapping[str, tuple[int, ...]], key: str) -> tuple[int, ...]:
    try:
        return tuple(shapes[key])
    except KeyError:
        raise LayoutError(f"tensor {key} is missing") from None


def family_of(shapes: Mapping[str, tuple[int, ...]]) -> str:
    """sdxl when there is a text_time embedding; sd2 for a 1024-wide text context; else sd1."""
    if "add_embedding.linear_1.weight" in shapes:
        return "sdxl"
    context = next((s[1] for k, s in shapes.items() if k.endswith("attn2.to_k.weight")), None)
    return "sd2" if context == 1024 else "sd1"


def config_from_shapes(shapes: Mapping[str, tuple[int, ...]], *, global_pool: bool = False) -> dict[str, Any]:
    """ControlNetModel kwargs for diffusers-layout ``shapes``: the shipped config, patched with the file's dims."""
    family = family_of(shapes)
    cfg = shipped_config(family)
    levels = _indices(shapes, r"down_blocks\.(\d+)\.resnets\.0\.conv1\.weight$")
    if not levels or levels != list(range(len(levels))):
        raise LayoutError("no down blocks")
    widths = [_shape(shapes, f"down_blocks.{i}.resnets.0.conv1.weight")[0] for i in levels]
    lpb = len(_indices(shapes, r"down_blocks\.0\.resnets\.(\d+)\."))
    depths = [len(_indices(shapes, rf"down_blocks\.{i}\.attentions\.0\.transformer_blocks\.(\d+)\.")) for i in levels]
    mid_depth = len(_indices(shapes, r"mid_block\.attentions\.0\.transformer_blocks\.(\d+)\."))
    # diffusers sizes the mid block from the last level's entry; levels without attention ignore theirs.
    layers = [d or (mid_depth if i == len(depths) - 1 else 1) for i, d in enumerate(depths)]
    if mid_depth and layers[-1] != mid_depth:
        raise LayoutError(f"mid-block depth {mid_depth} differs from the last level's depth {layers[-1]}")
    context = next((s[1] for k, s in shapes.items() if k.endswith("attn2.to_k.weight")), cfg["cross_attention_dim"])
    proj = next((s for k, s in shapes.items() if k.endswith("proj_in.weight")), None)
    # The hint encoder: conv_in, then pairs of (same width, strided to the next width), then conv_out.
    blocks = _indices(shapes, r"controlnet_cond_embedding\.blocks\.(\d+)\.weight$")
    hint = [_shape(shapes, "controlnet_cond_embedding.conv_in.weight")[0]]
    hint += [_shape(shapes, f"controlnet_cond_embedding.blocks.{i}.weight")[0] for i in blocks[1::2]]
    heads = [8] * len(widths) if family == "sd1" else [max(1, w // 64) for w in widths]
    cfg.update(
        in_channels=_shape(shapes, "conv_in.weight")[1],
        conditioning_channels=_shape(shapes, "controlnet_cond_embedding.conv_in.weight")[1],
        conditioning_embedding_out_channels=hint,
        block_out_channels=widths,
        layers_per_block=lpb,
        down_block_types=["CrossAttnDownBlock2D" if d else "DownBlock2D" for d in depths],
        mid_block_type="UNetMidBlock2DCrossAttn" if mid_depth else "UNetMidBlock2D",
        transformer_layers_per_block=layers if len(set(layers)) > 1 else max(layers[0], 1),
        cross_attention_dim=int(context),
        use_linear_projection=bool(proj is not None and len(proj) == 2) if proj is not None else cfg["use_linear_projection"],
        attention_head_dim=heads if len(set(heads)) > 1 else heads[0],
        global_pool_conditions=global_pool,
    )
    if family == "sdxl":
        cfg["projection_class_embeddings_input_dim"] = _shape(shapes, "add_embedding.linear_1.weight")[1]
    return cfg


def config_family(config: Mapping[str, Any]) -> str:
    """The family a ControlNetModel config belongs to (the same rule as ``family_of``)."""
    if config.get("addition_embed_type") == "text_time":
        return "sdxl"
    return "sd2" if config.get("cross_attention_dim") == 1024 else "sd1"
