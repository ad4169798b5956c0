"""Convert diffusers / transformers state dicts to the original single-file layouts.

diffusers only ships the original (LDM / sgm / open_clip) -> diffusers direction.
This module is the inverse, used to write random-weight fixtures and the demo
model in exactly the key layout that real ``.safetensors`` / ``.ckpt`` files use.

All converters return new dicts whose values are the *same* tensors (or cheap
views) as the input wherever possible, so converting a multi-GB model does not
double memory. The only copies are the fused open_clip ``in_proj`` tensors.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

StateDict = dict[str, torch.Tensor]

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."

# diffusers ResnetBlock2D sub-module -> LDM ResBlock sub-module.
_UNET_RESNET_RENAMES = {
    "norm1.": "in_layers.0.",
    "conv1.": "in_layers.2.",
    "time_emb_proj.": "emb_layers.1.",
    "norm2.": "out_layers.0.",
    "conv2.": "out_layers.3.",
    "conv_shortcut.": "skip_connection.",
}

# VAE ResnetBlock2D only renames the shortcut (norm1/conv1/norm2/conv2 match).
_VAE_RESNET_RENAMES = {"conv_shortcut.": "nin_shortcut."}

# VAE mid-block Attention -> LDM AttnBlock (1x1 convs).
_VAE_ATTN_RENAMES = {
    "group_norm.": "norm.",
    "to_q.": "q.",
    "to_k.": "k.",
    "to_v.": "v.",
    "to_out.0.": "proj_out.",
}

_UNET_FIXED = {
    "time_embedding.linear_1.": "time_embed.0.",
    "time_embedding.linear_2.": "time_embed.2.",
    # SDXL's text_time embedding and class embeddings share LDM's label_emb slot.
    "add_embedding.linear_1.": "label_emb.0.0.",
    "add_embedding.linear_2.": "label_emb.0.2.",
    "class_embedding.linear_1.": "label_emb.0.0.",
    "class_embedding.linear_2.": "label_emb.0.2.",
    "conv_in.": "input_blocks.0.0.",
    "conv_norm_out.": "out.0.",
    "conv_out.": "out.2.",
}

_VAE_FIXED = {
    "encoder.conv_in.": "encoder.conv_in.",
    "encoder.conv_out.": "encoder.conv_out.",
    "encoder.conv_norm_out.": "encoder.norm_out.",
    "decoder.conv_in.": "decoder.conv_in.",
    "decoder.conv_out.": "decoder.conv_out.",
    "decoder.conv_norm_out.": "decoder.norm_out.",
    "quant_conv.": "quant_conv.",
    "post_quant_conv.": "post_quant_conv.",
}

# A prefix rule: diffusers prefix -> (LDM prefix, renames applied to the rest).
_Rule = tuple[str, dict[str, str]]


def _rename_by_prefix(state_dict: Mapping[str, torch.Tensor], rules: Mapping[str, _Rule]) -> StateDict:
    """Rename every key via the longest matching prefix rule; unknown keys are an error.

    Failing loudly matters: a silently dropped tensor would produce a file that
    looks valid but is missing weights.
    """
    ordered = sorted(rules, key=len, reverse=True)
    out: StateDict = {}
    for key, tensor in state_dict.items():
        prefix = next((p for p in ordered if key.startswith(p)), None)
        if prefix is None:
            raise KeyError(f"no original-layout name for {key!r}")
        new_prefix, renames = rules[prefix]
        rest = key[len(prefix) :]
        for old, new in renames.items():
            if rest.startswith(old):
                rest = new + rest[len(old) :]
                break
        out[new_prefix + rest] = tensor
    return out


def _has_prefix(state_dict: Mapping[str, Any], prefix: str) -> bool:
    return any(k.startswith(prefix) for k in state_dict)


# --------------------------------------------------------------------------- UNet


def _layers_per_block(unet_config: Mapping[str, Any]) -> int:
    lpb = unet_config["layers_per_block"]
    if not isinstance(lpb, int):
        # The LDM layout (and diffusers' converter) assume one count for all levels.
        raise ValueError(f"per-level layers_per_block is not representable in LDM layout: {lpb!r}")
    return lpb


def _unet_down_rules(n_levels: int, lpb: int) -> dict[str, _Rule]:
    """input_blocks: index 0 is conv_in, then per level `lpb` (resnet[, attn]) + a downsampler."""
    rules: dict[str, _Rule] = {}
    for level in range(n_levels):
        first = 1 + level * (lpb + 1)
        for j in range(lpb):
            ldm = f"input_blocks.{first + j}."
            rules[f"down_blocks.{level}.resnets.{j}."] = (ldm + "0.", _UNET_RESNET_RENAMES)
            rules[f"down_blocks.{level}.attentions.{j}."] = (ldm + "1.", {})
        rules[f"down_blocks.{level}.downsamplers.0.conv."] = (f"input_blocks.{first + lpb}.0.op.", {})
    return rules


def _unet_up_rules(state_dict: Mapping[str, Any], n_levels: int, lpb: int) -> dict[str, _Rule]:
    """output_blocks: per level `lpb + 1` (resnet[, attn]); the upsampler follows the last one."""
    rules: dict[str, _Rule] = {}
    per_level = lpb + 1
    for level in range(n_levels):
        for j in range(per_level):
            ldm = f"output_blocks.{level * per_level + j}."
            rules[f"up_blocks.{level}.resnets.{j}."] = (ldm + "0.", _UNET_RESNET_RENAMES)
            rules[f"up_blocks.{level}.attentions.{j}."] = (ldm + "1.", {})
        # The upsampler is the next slot in the last output block: .1 or .2 if there is attention.
        has_attn = _has_prefix(state_dict, f"up_blocks.{level}.attentions.")
        slot = 2 if has_attn else 1
        last = f"output_blocks.{level * per_level + per_level - 1}."
        rules[f"up_blocks.{level}.upsamplers.0.conv."] = (f"{last}{slot}.conv.", {})
    return rules


def _unet_mid_rules() -> dict[str, _Rule]:
    return {
        "mid_block.resnets.0.": ("middle_block.0.", _UNET_RESNET_RENAMES),
        "mid_block.attentions.0.": ("middle_block.1.", {}),
        "mid_block.resnets.1.": ("middle_block.2.", _UNET_RESNET_RENAMES),
    }


def unet_to_ldm(state_dict: Mapping[str, torch.Tensor], unet_config: Mapping[str, Any]) -> StateDict:
    """diffusers ``UNet2DConditionModel`` weights -> ``model.diffusion_model.*`` (LDM/sgm UNetModel).

    Spatial-transformer internals (norm, proj_in, transformer_blocks.K.*, proj_out)
    have identical names in both layouts, so only block prefixes move.
    """
    n_levels = len(unet_config["block_out_channels"])
    lpb = _layers_per_block(unet_config)
    rules: dict[str, _Rule] = {k: (v, {}) for k, v in _UNET_FIXED.items()}
    rules.update(_unet_down_rules(n_levels, lpb))
    rules.update(_unet_mid_rules())
    rules.update(_unet_up_rules(state_dict, n_levels, lpb))
    converted = _rename_by_prefix(state_dict, rules)
    return {UNET_PREFIX + k: v for k, v in converted.items()}


# --------------------------------------------------------------------------- VAE


def _vae_block_count(state_dict: Mapping[str, Any], prefix: str) -> int:
    """Number of down/up blocks, read from the keys so no config is needed."""
    ids = {int(k[len(prefix) :].split(".", 1)[0]) for k in state_dict if k.startswith(prefix)}
    return max(ids) + 1 if ids else 0


def _vae_rules(state_dict: Mapping[str, Any]) -> dict[str, _Rule]:
    rules: dict[str, _Rule] = {k: (v, {}) for k, v in _VAE_FIXED.items()}
    for i in range(_vae_block_count(state_dict, "encoder.down_blocks.")):
        rules[f"encoder.down_blocks.{i}.resnets."] = (f"encoder.down.{i}.block.", {})
        rules[f"encoder.down_blocks.{i}.downsamplers.0.conv."] = (f"encoder.down.{i}.downsample.conv.", {})
    n_up = _vae_block_count(state_dict, "decoder.up_blocks.")
    for i in range(n_up):
        # LDM numbers decoder levels from the highest resolution; diffusers from the lowest.
        ldm = n_up - 1 - i
        rules[f"decoder.up_blocks.{i}.resnets."] = (f"decoder.up.{ldm}.block.", {})
        rules[f"decoder.up_blocks.{i}.upsamplers.0.conv."] = (f"decoder.up.{ldm}.upsample.conv.", {})
    for part in ("encoder", "decoder"):
        rules[f"{part}.mid_block.resnets.0."] = (f"{part}.mid.block_1.", {})
        rules[f"{part}.mid_block.resnets.1."] = (f"{part}.mid.block_2.", {})
        rules[f"{part}.mid_block.attentions.0."] = (f"{part}.mid.attn_1.", _VAE_ATTN_RENAMES)
    return rules


def _rename_vae_shortcut(key: str) -> str:
    # Resnet keys look like "<...>.block.J.conv_shortcut.weight"; only that part renames.
    for old, new in _VAE_RESNET_RENAMES.items():
        key = key.replace(f".{old}", f".{new}")
    return key


def _as_conv1x1(key: str, tensor: torch.Tensor) -> torch.Tensor:
    """LDM's AttnBlock uses 1x1 convs: linear (C, C) weights become (C, C, 1, 1)."""
    if ".mid.attn_1." in key and key.endswith(".weight") and tensor.ndim == 2:
        return tensor[:, :, None, None]
    return tensor


def vae_to_ldm(state_dict: Mapping[str, torch.Tensor]) -> StateDict:
    """diffusers ``AutoencoderKL`` weights -> LDM ``encoder.*``/``decoder.*``/``quant_conv``/``post_quant_conv``.

    No prefix is added: standalone VAE files use none; full checkpoints need
    ``first_stage_model.`` (see :data:`VAE_PREFIX`).
    """
    converted = _rename_by_prefix(state_dict, _vae_rules(state_dict))
    out: StateDict = {}
    for key, tensor in converted.items():
        key = _rename_vae_shortcut(key)
        out[key] = _as_conv1x1(key, tensor)
    return out


# --------------------------------------------------------------------------- text encoders


def _strip_text_model(state_dict: Mapping[str, torch.Tensor]) -> StateDict:
    """Accept both the transformers>=5 flat CLIPTextModel layout and the ``text_model.`` one."""
    return {k.removeprefix("text_model."): v for k, v in state_dict.items()}


def clip_to_ldm(state_dict: Mapping[str, torch.Tensor], prefix: str) -> StateDict:
    """HF ``CLIPTextModel`` weights -> ``<prefix>transformer.text_model.*`` (OpenAI CLIP as stored by LDM/sgm).

    Typical prefixes: ``cond_stage_model.`` (SD1) and ``conditioner.embedders.0.`` (SDXL base).
    A projection head, if present, has no slot in that layout and is rejected.
    """
    flat = _strip_text_model(state_dict)
    if "text_projection.weight" in flat:
        raise KeyError("text_projection has no place in the LDM CLIP layout; use open_clip_to_ldm")
    return {f"{prefix}transformer.text_model.{k}": v for k, v in flat.items()}


_OPEN_CLIP_FIXED = {
    "embeddings.token_embedding.weight": "token_embedding.weight",
    "embeddings.position_embedding.weight": "positional_embedding",
    "final_layer_norm.weight": "ln_final.weight",
    "final_layer_norm.bias": "ln_final.bias",
}

_OPEN_CLIP_LAYER = {
    "layer_norm1.": "ln_1.",
    "layer_norm2.": "ln_2.",
    "mlp.fc1.": "mlp.c_fc.",
    "mlp.fc2.": "mlp.c_proj.",
    "self_attn.out_proj.": "attn.out_proj.",
}


def _open_clip_layer_ids(flat: Mapping[str, Any]) -> list[int]:
    head = "encoder.layers."
    return sorted({int(k[len(head) :].split(".", 1)[0]) for k in flat if k.startswith(head)})


def _open_clip_layer(flat: Mapping[str, torch.Tensor], i: int) -> StateDict:
    """One HF encoder layer -> one open_clip ``resblocks.i`` (q/k/v fused into in_proj)."""
    src, dst = f"encoder.layers.{i}.", f"transformer.resblocks.{i}."
    out: StateDict = {}
    for kind in ("weight", "bias"):
        qkv = [flat[f"{src}self_attn.{p}_proj.{kind}"] for p in "qkv"]
        out[f"{dst}attn.in_proj_{kind}"] = torch.cat(qkv, dim=0)
    for key, tensor in flat.items():
        if not key.startswith(src):
            continue
        rest = key[len(src) :]
        if rest.startswith("self_attn.") and not rest.startswith("self_attn.out_proj."):
            continue  # already fused above
        old = next((o for o in _OPEN_CLIP_LAYER if rest.startswith(o)), None)
        if old is None:
            raise KeyError(f"no open_clip name for {key!r}")
        out[dst + _OPEN_CLIP_LAYER[old] + rest[len(old) :]] = tensor
    return out


def open_clip_to_ldm(
    state_dict: Mapping[str, torch.Tensor],
    prefix: str,
    *,
    logit_scale: float | None = 4.6052,
) -> StateDict:
    """HF ``CLIPTextModel[WithProjection]`` weights -> open_clip text tower at ``<prefix>model.*``.

    ``text_projection`` is stored transposed, as open_clip multiplies ``x @ proj``,
    shape ``(width, proj_dim)``. ``logit_scale`` is part of the real layout
    (default ln(100), the trained value); pass None to omit it.
    Prefixes: SD2 ``cond_stage_model.``, SDXL base ``conditioner.embedders.1.``,
    SDXL refiner ``conditioner.embedders.0.``.
    """
    flat = _strip_text_model(state_dict)
    out: StateDict = {name: flat[key] for key, name in _OPEN_CLIP_FIXED.items()}
    if "text_projection.weight" in flat:
        out["text_projection"] = flat["text_projection.weight"].T
    for i in _open_clip_layer_ids(flat):
        out.update(_open_clip_layer(flat, i))
    if logit_scale is not None:
        dtype = flat["embeddings.token_embedding.weight"].dtype
        out["logit_scale"] = torch.tensor(logit_scale, dtype=dtype)
    _check_open_clip_complete(flat, out)
    return {f"{prefix}model.{k}": v for k, v in out.items()}


def _check_open_clip_complete(flat: Mapping[str, torch.Tensor], out: Mapping[str, torch.Tensor]) -> None:
    """Every input tensor must land somewhere (q/k/v count three-for-one)."""
    n_layers = len(_open_clip_layer_ids(flat))
    expected = len(flat) - 4 * n_layers  # 6 q/k/v tensors become 2 in_proj tensors
    produced = len(out) - (1 if "logit_scale" in out else 0)
    if produced != expected:
        raise KeyError(f"open_clip conversion left {expected - produced} tensors unmapped")
