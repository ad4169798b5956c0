"""Diffusers configs for one checkpoint: the family's shipped config, patched with the file's dims.

configs/<family>/ supplies structure, scheduler and conventions (the real Hugging Face configs);
the widths and depths come from the checkpoint itself (webui.models.identify), so the same code
builds a full-size model and a tiny test model.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from webui.models.identify import ModelSpec, TextEncoderDims, VAEDims
from webui.models.safe_load import CheckpointError

CONFIGS_DIR = Path(__file__).resolve().parents[2] / "configs"


@lru_cache(maxsize=None)
def _shipped(family: str, component: str) -> dict:
    name = "scheduler_config.json" if component == "scheduler" else "config.json"
    path = CONFIGS_DIR / family / component / name
    return json.loads(path.read_text(encoding="utf-8"))


def shipped_config(family: str, component: str) -> dict:
    """A fresh copy of the shipped config of one component (unet, vae, text_encoder, scheduler...)."""
    return json.loads(json.dumps(_shipped(family, component)))


def tokenizer_dir(kind: str) -> Path:
    """``clip`` pads with <|endoftext|> (SD1, SDXL's first); ``openclip`` pads with "!" (SD2, bigG)."""
    return CONFIGS_DIR / "tokenizers" / kind


def unet_config(spec: ModelSpec) -> dict:
    cfg = shipped_config(spec.family, "unet")
    dims = spec.unet
    levels = len(dims.channel_mult)
    down = ["CrossAttnDownBlock2D" if a else "DownBlock2D" for a in dims.attention_levels]
    up = ["CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(dims.attention_levels)]
    # diffusers sizes the mid block from the last level's entry; levels without attention ignore
    # theirs, so they carry the mid-block depth (the real refiner's last level has no attention).
    mid = dims.mid_transformer_depth or 1
    depth = [d if d else mid for d in dims.transformer_depth]
    if depth[-1] != mid:
        raise CheckpointError(
            f"unsupported UNet: mid-block depth {mid} differs from the last level's depth {depth[-1]}"
        )
    cfg.update(
        in_channels=dims.in_channels,
        out_channels=dims.out_channels,
        block_out_channels=list(dims.block_out_channels),
        down_block_types=down,
        up_block_types=up,
        layers_per_block=dims.num_res_blocks,
        cross_attention_dim=dims.context_dim,
        use_linear_projection=dims.linear_projection,
        # diffusers' historical name: for SD-family UNets "attention_head_dim" is the head COUNT.
        attention_head_dim=dims.heads[0] if len(set(dims.heads)) == 1 else list(dims.heads),
        transformer_layers_per_block=depth[0] if len(set(depth)) == 1 else depth,
    )
    if dims.adm_in_channels:
        cfg["projection_class_embeddings_input_dim"] = dims.adm_in_channels
    assert len(down) == levels
    return cfg


def vae_config(family: str, dims: VAEDims) -> dict:
    cfg = shipped_config(family, "vae")
    levels = len(dims.block_out_channels)
    cfg.update(
        in_channels=dims.in_channels,
        out_channels=dims.out_channels,
        latent_channels=dims.latent_channels,
        block_out_channels=list(dims.block_out_channels),
        down_block_types=["DownEncoderBlock2D"] * levels,
        up_block_types=["UpDecoderBlock2D"] * levels,
        layers_per_block=dims.layers_per_block,
    )
    return cfg


def text_encoder_config(family: str, component: str, dims: TextEncoderDims, *, drop_last_layer: bool) -> dict:
    cfg = shipped_config(family, component)
    cfg.update(
        hidden_size=dims.width,
        num_hidden_layers=dims.layers - 1 if drop_last_layer else dims.layers,
        intermediate_size=dims.intermediate,
        num_attention_heads=dims.heads,
        max_position_embeddings=dims.positions,
        vocab_size=dims.vocab,
    )
    if dims.projection_dim:
        cfg["projection_dim"] = dims.projection_dim
    return cfg


def scheduler_config(spec: ModelSpec) -> dict:
    cfg = shipped_config(spec.family, "scheduler")
    cfg["prediction_type"] = spec.prediction_type
    return cfg
