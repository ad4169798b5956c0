"""Identify a checkpoint's family and dimensions from its tensor names and shapes.

File names and sizes are never evidence. Widths, depths and context sizes are read from the
shapes, so a pruned, unusual or tiny checkpoint goes through the same code path as a real one.
What shapes cannot show (attention head counts, v-prediction) comes from an A1111-style sidecar
``<name>.yaml`` when there is one, else from the family's convention.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import yaml

from webui.models.safe_load import CheckpointError

Shapes = Mapping[str, tuple[int, ...]]

UNET = "model.diffusion_model."
VAE = "first_stage_model."
SD1_CLIP = "cond_stage_model.transformer."
SD2_OPENCLIP = "cond_stage_model.model."
SDXL_CLIP_L = "conditioner.embedders.0.transformer."
SDXL_BIGG = "conditioner.embedders.1.model."
REFINER_BIGG = "conditioner.embedders.0.model."

FAMILIES = (
    "sd15", "sd15-inpaint", "sd2", "sd2-v", "sd2-inpaint", "sdxl-base", "sdxl-refiner", "sdxl-inpaint",
)
FAMILY_LABELS = {
    "sd15": "SD 1.x", "sd15-inpaint": "SD 1.x inpaint", "sd2": "SD 2.x", "sd2-v": "SD 2.x v-prediction",
    "sd2-inpaint": "SD 2.x inpaint", "sdxl-base": "SDXL base", "sdxl-refiner": "SDXL refiner",
    "sdxl-inpaint": "SDXL inpaint",
}


@dataclass(frozen=True)
class UNetDims:
    in_channels: int
    out_channels: int
    model_channels: int
    channel_mult: tuple[int, ...]
    num_res_blocks: int
    attention_levels: tuple[bool, ...]
    transformer_depth: tuple[int, ...]
    mid_transformer_depth: int
    context_dim: int
    linear_projection: bool
    adm_in_channels: int | None
    heads: tuple[int, ...]  # per level

    @property
    def block_out_channels(self) -> tuple[int, ...]:
        return tuple(self.model_channels * m for m in self.channel_mult)


@dataclass(frozen=True)
class VAEDims:
    in_channels: int
    out_channels: int
    latent_channels: int
    block_out_channels: tuple[int, ...]
    layers_per_block: int


@dataclass(frozen=True)
class TextEncoderDims:
    kind: str  # "clip" (HF layout) or "openclip"
    prefix: str
    width: int
    layers: int
    intermediate: int
    heads: int
    positions: int
    vocab: int
    projection_dim: int | None


@dataclass(frozen=True)
class ModelSpec:
    family: str
    unet: UNetDims
    vae: VAEDims | None
    text_encoders: tuple[TextEncoderDims, ...]
    prediction_type: str = "epsilon"
    prediction_source: str = "family"  # "family" | "sidecar" | "probe"
    sidecar: Path | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def label(self) -> str:
        return FAMILY_LABELS[self.family]

    @property
    def is_sdxl(self) -> bool:
        return self.family.startswith("sdxl")

    @property
    def is_inpaint(self) -> bool:
        return self.family.endswith("inpaint")


@dataclass(frozen=True)
class Sidecar:
    parameterization: str | None = None
    num_heads: int | None = None
    num_head_channels: int | None = None


def sidecar_path(checkpoint: Path) -> Path | None:
    candidate = Path(checkpoint).with_suffix(".yaml")
    return candidate if candidate.is_file() else None


def read_sidecar(path: Path) -> Sidecar:
    """The few fields of an original-format YAML that tensor shapes cannot reveal."""
    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as e:
        raise CheckpointError(f"{Path(path).name}: unreadable sidecar config ({e})") from None
    params = _dig(doc, "model", "params") or {}
    unet = _dig(params, "unet_config", "params") or _dig(params, "network_config", "params") or {}
    heads = unet.get("num_heads")
    head_channels = unet.get("num_head_channels")
    return Sidecar(
        parameterization=params.get("parameterization"),
        num_heads=int(heads) if isinstance(heads, int) and heads > 0 else None,
        num_head_channels=int(head_channels) if isinstance(head_channels, int) and head_channels > 0 else None,
    )


def _dig(doc: object, *keys: str) -> dict | None:
    for key in keys:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(key)
    return doc if isinstance(doc, dict) else None


def identify(shapes: Shapes, sidecar: Sidecar | None = None, sidecar_file: Path | None = None) -> ModelSpec:
    """Family and dims of a full checkpoint; raises CheckpointError naming what was found."""
    if not any(k.startswith(UNET) for k in shapes):
        raise CheckpointError(_not_a_checkpoint_message(shapes))
    sidecar = sidecar or Sidecar()
    text_encoders = _text_encoders(shapes)
    kinds = tuple((te.kind, te.prefix) for te in text_encoders)
    unet_probe = _read_unet(shapes, heads_rule=None)
    inpaint = unet_probe.in_channels == 9
    if unet_probe.in_channels not in (4, 9):
        raise CheckpointError(
            f"unsupported UNet with {unet_probe.in_channels} input channels "
            "(4 = txt2img, 9 = inpaint; other variants such as instruct-pix2pix are not supported yet)"
        )
    if kinds == (("clip", SD1_CLIP),):
        family = "sd15-inpaint" if inpaint else "sd15"
    elif kinds == (("openclip", SD2_OPENCLIP),):
        family = "sd2-inpaint" if inpaint else "sd2"
    elif kinds == (("clip", SDXL_CLIP_L), ("openclip", SDXL_BIGG)):
        family = "sdxl-inpaint" if inpaint else "sdxl-base"
    elif kinds == (("openclip", REFINER_BIGG),):
        family = "sdxl-refiner"
    else:
        found = ", ".join(f"{kind} at {prefix}" for kind, prefix in kinds) or "no text encoder"
        raise CheckpointError(f"unknown model layout: UNet with {found}")

    unet = _read_unet(shapes, heads_rule=_heads_rule(family, sidecar))
    _check_context(family, unet, text_encoders)
    prediction, source = "epsilon", "family"
    if sidecar.parameterization == "v":
        prediction, source = "v_prediction", "sidecar"
    elif sidecar.parameterization == "eps":
        source = "sidecar"
    if family == "sd2" and prediction == "v_prediction":
        family = "sd2-v"
    return ModelSpec(
        family=family,
        unet=unet,
        vae=read_vae(shapes, VAE),
        text_encoders=text_encoders,
        prediction_type=prediction,
        prediction_source=source,
        sidecar=sidecar_file,
    )


def _not_a_checkpoint_message(shapes: Shapes) -> str:
    prefixes = sorted({k.split(".", 1)[0] for k in shapes})
    if any(k.startswith(("lora_unet_", "lora_te", "lora_")) for k in shapes):
        hint = "it looks like a LoRA; put it in models/Lora"
    elif any(k.startswith(("encoder.", "decoder.")) for k in shapes):
        hint = "it looks like a VAE; put it in models/VAE"
    elif any(k.startswith("control_model.") for k in shapes):
        hint = "it looks like a ControlNet; put it in models/ControlNet"
    else:
        hint = f"top-level names found: {', '.join(prefixes[:8]) or 'none'}"
    return f"not a Stable Diffusion checkpoint: no UNet tensors (model.diffusion_model.*); {hint}"


def _heads_rule(family: str, sidecar: Sidecar):
    """Heads per level: sidecar first, else SD1's 8 heads, else 64 channels per head (SD2, SDXL)."""
    if sidecar.num_heads:
        return lambda channels: sidecar.num_heads
    if sidecar.num_head_channels:
        return lambda channels: max(1, channels // sidecar.num_head_channels)
    if family.startswith("sd15"):
        return lambda channels: 8
    return lambda channels: max(1, channels // 64)


def _indices(shapes: Shapes, pattern: str) -> list[int]:
    regex = re.compile(pattern)
    return sorted({int(m.group(1)) for k in shapes if (m := regex.match(k))})


def _read_unet(shapes: Shapes, heads_rule) -> UNetDims:
    p = UNET
    conv_in = shapes[p + "input_blocks.0.0.weight"]
    model_channels, in_channels = conv_in[0], conv_in[1]
    levels: list[list[int]] = [[]]
    for i in _indices(shapes, re.escape(p) + r"input_blocks\.(\d+)\."):
        if i == 0:
            continue
        if p + f"input_blocks.{i}.0.op.weight" in shapes:
            levels.append([])
        else:
            levels[-1].append(i)
    if not levels[0]:
        raise CheckpointError("UNet has no input resblocks")
    channel_mult, attention, depth = [], [], []
    for blocks in levels:
        first = blocks[0]
        out_ch = shapes[p + f"input_blocks.{first}.0.out_layers.3.weight"][0]
        channel_mult.append(out_ch // model_channels)
        has_attn = p + f"input_blocks.{first}.1.proj_in.weight" in shapes
        attention.append(has_attn)
        depth.append(
            len(_indices(shapes, re.escape(p + f"input_blocks.{first}.1.transformer_blocks.") + r"(\d+)\."))
            if has_attn else 0
        )
    context = next((v[1] for k, v in shapes.items() if k.startswith(p) and k.endswith("attn2.to_k.weight")), 0)
    proj_in = next((v for k, v in shapes.items() if k.startswith(p) and k.endswith(".proj_in.weight")), ())
    adm = shapes.get(p + "label_emb.0.0.weight")
    mid_depth = len(_indices(shapes, re.escape(p + "middle_block.1.transformer_blocks.") + r"(\d+)\."))
    widths = [model_channels * m for m in channel_mult]
    return UNetDims(
        in_channels=in_channels,
        out_channels=shapes[p + "out.2.weight"][0],
        model_channels=model_channels,
        channel_mult=tuple(channel_mult),
        num_res_blocks=len(levels[0]),
        attention_levels=tuple(attention),
        transformer_depth=tuple(depth),
        mid_transformer_depth=mid_depth,
        context_dim=context,
        linear_projection=len(proj_in) == 2,
        adm_in_channels=adm[1] if adm else None,
        heads=tuple(heads_rule(w) if heads_rule else 1 for w in widths),
    )


def read_vae(shapes: Shapes, prefix: str) -> VAEDims | None:
    """VAE dims under ``prefix`` (``first_stage_model.`` in a checkpoint, ``""`` in a VAE file)."""
    if prefix + "encoder.conv_in.weight" not in shapes:
        return None
    levels = _indices(shapes, re.escape(prefix + "encoder.down.") + r"(\d+)\.")
    return VAEDims(
        in_channels=shapes[prefix + "encoder.conv_in.weight"][1],
        out_channels=shapes[prefix + "decoder.conv_out.weight"][0],
        latent_channels=shapes[prefix + "decoder.conv_in.weight"][1],
        block_out_channels=tuple(shapes[prefix + f"encoder.down.{i}.block.0.conv1.weight"][0] for i in levels),
        layers_per_block=len(_indices(shapes, re.escape(prefix + "encoder.down.0.block.") + r"(\d+)\.")),
    )


def _text_encoders(shapes: Shapes) -> tuple[TextEncoderDims, ...]:
    found = []
    for prefix in (SD1_CLIP, SDXL_CLIP_L):
        if any(k.startswith(prefix) for k in shapes):
            found.append(_read_clip(shapes, prefix))
    for prefix in (SD2_OPENCLIP, REFINER_BIGG, SDXL_BIGG):
        if prefix + "token_embedding.weight" in shapes:
            found.append(_read_openclip(shapes, prefix))
    return tuple(found)


def _read_clip(shapes: Shapes, prefix: str) -> TextEncoderDims:
    # Older transformers saved CLIP without the "text_model." level; accept both.
    inner = prefix + "text_model." if prefix + "text_model.embeddings.token_embedding.weight" in shapes else prefix
    token = shapes.get(inner + "embeddings.token_embedding.weight")
    if token is None:
        raise CheckpointError(f"CLIP text encoder at {prefix} has no token embedding")
    vocab, width = token
    return TextEncoderDims(
        kind="clip",
        prefix=prefix,
        width=width,
        layers=len(_indices(shapes, re.escape(inner + "encoder.layers.") + r"(\d+)\.")),
        intermediate=shapes[inner + "encoder.layers.0.mlp.fc1.weight"][0],
        heads=max(1, width // 64),
        positions=shapes[inner + "embeddings.position_embedding.weight"][0],
        vocab=vocab,
        projection_dim=None,
    )


def _read_openclip(shapes: Shapes, prefix: str) -> TextEncoderDims:
    vocab, width = shapes[prefix + "token_embedding.weight"]
    projection = shapes.get(prefix + "text_projection")
    return TextEncoderDims(
        kind="openclip",
        prefix=prefix,
        width=width,
        layers=len(_indices(shapes, re.escape(prefix + "transformer.resblocks.") + r"(\d+)\.")),
        intermediate=shapes[prefix + "transformer.resblocks.0.mlp.c_fc.weight"][0],
        heads=max(1, width // 64),
        positions=shapes[prefix + "positional_embedding"][0],
        vocab=vocab,
        projection_dim=projection[1] if projection else None,
    )


def _check_context(family: str, unet: UNetDims, encoders: tuple[TextEncoderDims, ...]) -> None:
    if family.startswith("sdxl") and family != "sdxl-refiner":
        expected = sum(te.width for te in encoders)
    else:
        expected = encoders[-1].width
    if unet.context_dim != expected:
        raise CheckpointError(
            f"inconsistent {FAMILY_LABELS[family]} checkpoint: UNet cross-attention is {unet.context_dim} wide "
            f"but the text encoder gives {expected}"
        )
