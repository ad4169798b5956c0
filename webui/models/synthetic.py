"""Write random-weight Stable Diffusion checkpoints in the real single-file layouts.

Used by the app (a demo model on first launch), by tests (fixtures for every
family) and by benchmarks (``size="full"``: the real architectures' shapes).

Weights are random but seeded: the same call always writes the same bytes.
Models are built on the ``meta`` device and materialised directly in the target
dtype (no default init, no fp32 copy of a fp16 model), then converted by
reference, so writing ``size="full"`` needs little more memory than the file.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import torch
import yaml
from safetensors.torch import save_file

from webui.models.ldm_layout import (
    VAE_PREFIX,
    StateDict,
    clip_to_ldm,
    open_clip_to_ldm,
    unet_to_ldm,
    vae_to_ldm,
)

Family = Literal[
    "sd15", "sd15-inpaint", "sd2", "sd2-v", "sd2-inpaint", "sdxl-base", "sdxl-refiner", "sdxl-inpaint"
]
Size = Literal["tiny", "full"]
FAMILIES: tuple[str, ...] = get_args(Family)

# Marks files written here, so the UI can say "random weights" instead of guessing.
# One key only: safetensors stores metadata from a Rust HashMap, so with two or
# more keys their order (and thus the file's bytes) varies between writes.
SYNTHETIC_METADATA = {"sd_studio.synthetic": "random-weights"}


@dataclass(frozen=True)
class TextEncoderSpec:
    """One text encoder as stored in the checkpoint.

    ``config`` holds ``CLIPTextConfig`` kwargs for *all stored layers*. For SD2
    the real file stores 24 open_clip blocks while diffusers runs 23
    (``layer: penultimate``), so a loader should build ``num_hidden_layers - 1``.
    """

    layout: Literal["clip", "open_clip"]
    prefix: str
    config: dict[str, Any]
    with_projection: bool = False


@dataclass(frozen=True)
class FamilySpec:
    """Everything needed to build (and later re-load) one family's components."""

    family: str
    unet: dict[str, Any]
    vae: dict[str, Any]
    text_encoders: tuple[TextEncoderSpec, ...]
    parameterization: Literal["eps", "v"] = "eps"
    ldm_schedule: bool = True  # SD1/SD2 files carry LatentDiffusion's DDPM buffers; sgm (SDXL) files do not


# --------------------------------------------------------------------------- configs


def vae_config(size: Size = "tiny") -> dict[str, Any]:
    """AutoencoderKL kwargs. Four levels keep the real 8x scale factor even when tiny."""
    channels = (32, 32, 64, 64) if size == "tiny" else (128, 256, 512, 512)
    return {
        "in_channels": 3,
        "out_channels": 3,
        "latent_channels": 4,
        "block_out_channels": channels,
        "down_block_types": ("DownEncoderBlock2D",) * 4,
        "up_block_types": ("UpDecoderBlock2D",) * 4,
        "layers_per_block": 1 if size == "tiny" else 2,
        "norm_num_groups": 32,
        "sample_size": 64 if size == "tiny" else 512,
    }


def _clip_config(
    hidden: int, heads: int, layers: int, act: str, projection: int | None = None, mlp_ratio: int = 4
) -> dict[str, Any]:
    config: dict[str, Any] = {
        "hidden_size": hidden,
        "num_attention_heads": heads,
        "num_hidden_layers": layers,
        "intermediate_size": mlp_ratio * hidden,
        "hidden_act": act,
        "vocab_size": 49408,
        "max_position_embeddings": 77,
    }
    if projection is not None:
        config["projection_dim"] = projection
    return config


def clip_l_config(size: Size = "tiny") -> dict[str, Any]:
    """OpenAI CLIP ViT-L/14 text tower (SD1, first SDXL encoder)."""
    if size == "tiny":
        return _clip_config(64, 1, 3, "quick_gelu")
    return _clip_config(768, 12, 12, "quick_gelu")


def open_clip_h_config(size: Size = "tiny") -> dict[str, Any]:
    """OpenCLIP ViT-H/14 text tower (SD2), all stored blocks.

    Tiny keeps the real 1024 width on purpose: diffusers (and other tools)
    recognise SD2 by the UNet's 1024-wide cross-attention keys. Its MLP is
    1x instead of 4x wide to keep the file small (~290 MB in fp32, most of it
    the 49408x1024 token embedding).
    """
    if size == "tiny":
        return _clip_config(1024, 16, 3, "gelu", mlp_ratio=1)
    return _clip_config(1024, 16, 24, "gelu")


def open_clip_bigg_config(size: Size = "tiny") -> dict[str, Any]:
    """OpenCLIP ViT-bigG/14 text tower with projection (SDXL).

    Tiny needs >= 10 blocks: tools detect SDXL by ``resblocks.9`` being present.
    """
    if size == "tiny":
        return _clip_config(128, 2, 10, "gelu", projection=128)
    return _clip_config(1280, 20, 32, "gelu", projection=1280)


def _sd_unet_config(size: Size, *, context: int, v2: bool) -> dict[str, Any]:
    """SD1/SD2 UNet: attention on every level but the deepest."""
    if size == "tiny":
        # SD2 tiny needs layers_per_block 2: SD2 is detected at input_blocks.2.1 (2nd attention).
        channels, lpb = ((64, 128), 2) if v2 else ((32, 64), 1)
        sample = 8
    else:
        channels, lpb, sample = (320, 640, 1280, 1280), 2, 64
    n = len(channels)
    config: dict[str, Any] = {
        "sample_size": sample,
        "in_channels": 4,
        "out_channels": 4,
        "block_out_channels": channels,
        "layers_per_block": lpb,
        "down_block_types": ("CrossAttnDownBlock2D",) * (n - 1) + ("DownBlock2D",),
        "up_block_types": ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * (n - 1),
        "cross_attention_dim": context,
        "norm_num_groups": 32,
    }
    if v2:
        # SD2 convention: 64 channels per head, linear proj_in/proj_out.
        config["attention_head_dim"] = tuple(c // 64 for c in channels)
        config["use_linear_projection"] = True
    else:
        config["attention_head_dim"] = 8  # SD1: 8 heads, conv (1x1) proj_in/proj_out
    return config


def _sdxl_unet_config(size: Size, *, context: int, pooled: int, refiner: bool) -> dict[str, Any]:
    """SDXL UNet: no attention on the first level, deeper transformers further down."""
    if refiner:
        channels = (64, 128, 128) if size == "tiny" else (384, 768, 1536, 1536)
        depth: int | tuple[int, ...] = 2 if size == "tiny" else 4
        downs = ("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (len(channels) - 2) + ("DownBlock2D",)
        time_ids = 5  # original size, crop, aesthetic score
    else:
        channels = (64, 128) if size == "tiny" else (320, 640, 1280)
        depth = (1, 2) if size == "tiny" else (1, 2, 10)
        downs = ("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (len(channels) - 1)
        time_ids = 6  # original size, crop, target size
    ups = tuple(d.replace("Down", "Up") for d in reversed(downs))
    return {
        "sample_size": 8 if size == "tiny" else 128,
        "in_channels": 4,
        "out_channels": 4,
        "block_out_channels": channels,
        "layers_per_block": 1 if size == "tiny" else 2,
        "down_block_types": downs,
        "up_block_types": ups,
        "transformer_layers_per_block": depth,
        "attention_head_dim": tuple(c // 64 for c in channels),
        "use_linear_projection": True,
        "cross_attention_dim": context,
        "addition_embed_type": "text_time",
        "addition_time_embed_dim": 256,
        "projection_class_embeddings_input_dim": pooled + time_ids * 256,
        "norm_num_groups": 32,
    }


def _sd1_spec(family: str, size: Size) -> FamilySpec:
    clip = clip_l_config(size)
    unet = _sd_unet_config(size, context=clip["hidden_size"], v2=False)
    encoders = (TextEncoderSpec("clip", "cond_stage_model.", clip),)
    return FamilySpec(family, unet, vae_config(size), encoders)


def _sd2_spec(family: str, size: Size) -> FamilySpec:
    clip = open_clip_h_config(size)
    unet = _sd_unet_config(size, context=clip["hidden_size"], v2=True)
    encoders = (TextEncoderSpec("open_clip", "cond_stage_model.", clip),)
    param = "v" if family == "sd2-v" else "eps"
    if family == "sd2-v" and size == "full":
        unet["sample_size"] = 96  # 768-v: 768 px default
    return FamilySpec(family, unet, vae_config(size), encoders, parameterization=param)


def _sdxl_spec(family: str, size: Size) -> FamilySpec:
    bigg = open_clip_bigg_config(size)
    if family == "sdxl-refiner":
        unet = _sdxl_unet_config(size, context=bigg["hidden_size"], pooled=bigg["projection_dim"], refiner=True)
        encoders = (TextEncoderSpec("open_clip", "conditioner.embedders.0.", bigg, with_projection=True),)
    else:
        clip = clip_l_config(size)
        context = clip["hidden_size"] + bigg["hidden_size"]
        unet = _sdxl_unet_config(size, context=context, pooled=bigg["projection_dim"], refiner=False)
        encoders = (
            TextEncoderSpec("clip", "conditioner.embedders.0.", clip),
            TextEncoderSpec("open_clip", "conditioner.embedders.1.", bigg, with_projection=True),
        )
    vae = {**vae_config(size), "scaling_factor": 0.13025}  # same weights layout; SDXL's latent scale
    return FamilySpec(family, unet, vae, encoders, ldm_schedule=False)


def family_spec(family: str, size: Size = "tiny") -> FamilySpec:
    """Configs of every component of ``family``; inpainting variants take 9 UNet input channels."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; expected one of {FAMILIES}")
    if size not in ("tiny", "full"):
        raise ValueError(f"unknown size {size!r}")
    if family.startswith("sdxl"):
        spec = _sdxl_spec(family, size)
    elif family.startswith("sd2"):
        spec = _sd2_spec(family, size)
    else:
        spec = _sd1_spec(family, size)
    if family.endswith("-inpaint"):
        spec.unet["in_channels"] = 9  # latents + mask + masked-image latents
    return spec


# --------------------------------------------------------------------------- random weights


def _generator(seed: int, component: str) -> torch.Generator:
    """Independent stream per component, so changing one never shifts another's weights."""
    return torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(component.encode()))


def _randomize(name: str, tensor: torch.Tensor, gen: torch.Generator) -> None:
    """Fill in place: biases small, norm scales near 1, matrices ~ N(0, 1/fan_in).

    That keeps activations O(1) through the network (no fp16 overflow), and
    every tensor distinct so a swapped key cannot go unnoticed in tests.
    """
    # Always draw in fp32 (in place when possible) so fp16/bf16 files hold the same values, rounded.
    noise = tensor if tensor.dtype == torch.float32 else torch.empty(tensor.shape, dtype=torch.float32)
    torch.randn(tensor.shape, generator=gen, out=noise)
    if name.endswith("bias"):
        noise.mul_(0.02)
    elif tensor.ndim <= 1:
        noise.mul_(0.1).add_(1.0)
    else:
        noise.mul_(tensor[0].numel() ** -0.5)
    if noise is not tensor:
        tensor.copy_(noise)


def random_state_dict(
    factory: Callable[[], torch.nn.Module], *, seed: int, component: str, dtype: torch.dtype
) -> StateDict:
    """Build a module without initialising it, then fill its state dict with seeded noise.

    Only the state dict is returned: non-persistent buffers (e.g. CLIP position_ids)
    are left uninitialised by ``to_empty`` and must not be used.
    """
    with torch.device("meta"):
        module = factory()
    # Plain nn.Module.to: diffusers' override warns about casting, which is moot for empty weights.
    torch.nn.Module.to(module, dtype=dtype)
    module.to_empty(device="cpu")
    gen = _generator(seed, component)
    state = module.state_dict()
    with torch.no_grad():
        for name, tensor in state.items():
            _randomize(name, tensor, gen)
    return state


def _unet_factory(config: Mapping[str, Any]) -> Callable[[], torch.nn.Module]:
    from diffusers import UNet2DConditionModel

    return lambda: UNet2DConditionModel(**config)


def _vae_factory(config: Mapping[str, Any]) -> Callable[[], torch.nn.Module]:
    from diffusers import AutoencoderKL

    return lambda: AutoencoderKL(**config)


def _text_factory(spec: TextEncoderSpec) -> Callable[[], torch.nn.Module]:
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    cls = CLIPTextModelWithProjection if spec.with_projection else CLIPTextModel
    return lambda: cls(CLIPTextConfig(**spec.config))


# --------------------------------------------------------------------------- components -> original layout


def _unet_tensors(spec: FamilySpec, seed: int, dtype: torch.dtype) -> StateDict:
    state = random_state_dict(_unet_factory(spec.unet), seed=seed, component="unet", dtype=dtype)
    return unet_to_ldm(state, spec.unet)


def _vae_tensors(config: Mapping[str, Any], seed: int, dtype: torch.dtype, component: str = "vae") -> StateDict:
    state = random_state_dict(_vae_factory(config), seed=seed, component=component, dtype=dtype)
    return vae_to_ldm(state)


def _clip_position_ids(prefix: str, positions: int) -> StateDict:
    # Real SD1/SDXL files carry this (persistent in old transformers); loaders must cope with it.
    ids = torch.arange(positions, dtype=torch.int64).unsqueeze(0)
    return {f"{prefix}transformer.text_model.embeddings.position_ids": ids}


def _open_clip_extra_projection(spec: TextEncoderSpec, seed: int, dtype: torch.dtype) -> StateDict:
    """SD2's open_clip tower has a text_projection that diffusers' CLIPTextModel lacks."""
    width = spec.config["hidden_size"]
    proj = torch.empty(width, width, dtype=dtype)
    with torch.no_grad():
        _randomize("text_projection", proj, _generator(seed, spec.prefix + "text_projection"))
    return {f"{spec.prefix}model.text_projection": proj}


def _text_tensors(spec: TextEncoderSpec, seed: int, dtype: torch.dtype) -> StateDict:
    state = random_state_dict(_text_factory(spec), seed=seed, component=spec.prefix, dtype=dtype)
    if spec.layout == "clip":
        out = clip_to_ldm(state, spec.prefix)
        out.update(_clip_position_ids(spec.prefix, spec.config["max_position_embeddings"]))
        return out
    out = open_clip_to_ldm(state, spec.prefix)
    if not spec.with_projection:
        out.update(_open_clip_extra_projection(spec, seed, dtype))
    return out


def ldm_schedule_buffers(dtype: torch.dtype = torch.float32) -> StateDict:
    """LatentDiffusion's registered DDPM buffers (scaled-linear betas, 1000 steps), as in real SD1/SD2 files."""
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
    prev = torch.cat([torch.ones(1, dtype=torch.float64), alphas_cumprod[:-1]])
    posterior_variance = betas * (1.0 - prev) / (1.0 - alphas_cumprod)
    buffers = {
        "betas": betas,
        "alphas_cumprod": alphas_cumprod,
        "alphas_cumprod_prev": prev,
        "sqrt_alphas_cumprod": alphas_cumprod.sqrt(),
        "sqrt_one_minus_alphas_cumprod": (1.0 - alphas_cumprod).sqrt(),
        "log_one_minus_alphas_cumprod": (1.0 - alphas_cumprod).log(),
        "sqrt_recip_alphas_cumprod": alphas_cumprod.rsqrt(),
        "sqrt_recipm1_alphas_cumprod": (1.0 / alphas_cumprod - 1.0).sqrt(),
        "posterior_variance": posterior_variance,
        "posterior_log_variance_clipped": posterior_variance.clamp(min=1e-20).log(),
        "posterior_mean_coef1": betas * prev.sqrt() / (1.0 - alphas_cumprod),
        "posterior_mean_coef2": (1.0 - prev) * (1.0 - betas).sqrt() / (1.0 - alphas_cumprod),
    }
    return {k: v.to(dtype) for k, v in buffers.items()}


def checkpoint_tensors(
    family: str, *, size: Size = "tiny", seed: int = 0, dtype: torch.dtype = torch.float32
) -> StateDict:
    """All tensors of a ``family`` checkpoint under their original key names."""
    spec = family_spec(family, size)
    tensors = _unet_tensors(spec, seed, dtype)
    tensors.update({VAE_PREFIX + k: v for k, v in _vae_tensors(spec.vae, seed, dtype).items()})
    for encoder in spec.text_encoders:
        tensors.update(_text_tensors(encoder, seed, dtype))
    if spec.ldm_schedule:
        tensors.update(ldm_schedule_buffers(dtype))
    return tensors


# --------------------------------------------------------------------------- files


def _save_safetensors(tensors: Mapping[str, torch.Tensor], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    # safetensors refuses views (e.g. the transposed text_projection); contiguous() is free otherwise.
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata=SYNTHETIC_METADATA)
    return path


def write_checkpoint(
    path: str | Path,
    family: str,
    *,
    size: Size = "tiny",
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    sidecar: bool | None = None,
) -> Path:
    """Write a random-weight ``family`` checkpoint as .safetensors; return its path.

    ``sidecar`` (default: only for sd2-v) also writes ``<stem>.yaml`` with the
    original LDM config, the A1111 way of declaring v-prediction, which random
    weights cannot reveal.
    """
    path = Path(path)
    # Build the yaml first: an impossible sidecar (SDXL) must fail before GBs are written.
    config = sidecar_config(family, size) if _wants_sidecar(family, sidecar) else None
    _save_safetensors(checkpoint_tensors(family, size=size, seed=seed, dtype=dtype), path)
    if config is not None:
        _write_yaml(path.with_suffix(".yaml"), config)
    return path


def _wants_sidecar(family: str, sidecar: bool | None) -> bool:
    # Only v-prediction needs declaring; eps is what every loader assumes.
    return family == "sd2-v" if sidecar is None else sidecar


def write_ckpt_pickle(
    path: str | Path,
    family: str,
    *,
    size: Size = "tiny",
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """Same tensors as :func:`write_checkpoint`, as a legacy ``.ckpt`` (torch.save of ``{"state_dict": ...}``).

    Only tensors and an int inside, so ``torch.load(weights_only=True)`` accepts it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = checkpoint_tensors(family, size=size, seed=seed, dtype=dtype)
    torch.save({"state_dict": {k: v.contiguous() for k, v in tensors.items()}, "global_step": 0}, path)
    return path


def write_vae(
    path: str | Path,
    family_kind: Literal["sd", "sdxl"] = "sd",
    *,
    size: Size = "tiny",
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """Standalone VAE (.safetensors, no key prefix, like real ``*.vae.safetensors``).

    SD and SDXL VAEs share one architecture; ``family_kind`` only selects a
    different weight stream, so the file never equals a checkpoint's own VAE.
    """
    if family_kind not in ("sd", "sdxl"):
        raise ValueError(f"unknown VAE kind {family_kind!r}")
    tensors = _vae_tensors(vae_config(size), seed, dtype, component=f"standalone-vae-{family_kind}")
    return _save_safetensors(tensors, Path(path))


# --------------------------------------------------------------------------- sidecar yaml


def _ldm_unet_params(unet: Mapping[str, Any]) -> dict[str, Any]:
    """diffusers UNet config -> openaimodel.UNetModel params of the original yaml."""
    channels = list(unet["block_out_channels"])
    with_attn = [i for i, t in enumerate(unet["down_block_types"]) if t.startswith("CrossAttn")]
    params: dict[str, Any] = {
        "use_checkpoint": True,
        "image_size": 32,
        "in_channels": unet["in_channels"],
        "out_channels": unet["out_channels"],
        "model_channels": channels[0],
        "attention_resolutions": sorted((2**i for i in with_attn), reverse=True),
        "num_res_blocks": unet["layers_per_block"],
        "channel_mult": [c // channels[0] for c in channels],
        "use_spatial_transformer": True,
        "transformer_depth": 1,
        "context_dim": unet["cross_attention_dim"],
        "legacy": False,
    }
    if unet.get("use_linear_projection"):
        params.update(num_head_channels=64, use_linear_in_transformer=True)
    else:
        params["num_heads"] = unet["attention_head_dim"]
    return params


def _ldm_vae_params(vae: Mapping[str, Any]) -> dict[str, Any]:
    channels = list(vae["block_out_channels"])
    ddconfig = {
        "double_z": True,
        "z_channels": vae["latent_channels"],
        "resolution": 256,
        "in_channels": 3,
        "out_ch": 3,
        "ch": channels[0],
        "ch_mult": [c // channels[0] for c in channels],
        "num_res_blocks": vae["layers_per_block"],
        "attn_resolutions": [],
        "dropout": 0.0,
    }
    return {"embed_dim": vae["latent_channels"], "ddconfig": ddconfig, "lossconfig": {"target": "torch.nn.Identity"}}


def _ldm_cond_stage(spec: FamilySpec) -> dict[str, Any]:
    if spec.text_encoders[0].layout == "open_clip":
        return {
            "target": "ldm.modules.encoders.modules.FrozenOpenCLIPEmbedder",
            "params": {"freeze": True, "layer": "penultimate"},
        }
    return {"target": "ldm.modules.encoders.modules.FrozenCLIPEmbedder"}


def sidecar_config(family: str, size: Size = "tiny") -> dict[str, Any]:
    """The original LDM inference yaml (v1/v2-inference*.yaml structure) for an SD1/SD2 family."""
    spec = family_spec(family, size)
    if family.startswith("sdxl"):
        raise ValueError("sidecar yaml is written for SD1/SD2 families only")
    inpaint = family.endswith("-inpaint")
    params: dict[str, Any] = {
        "parameterization": spec.parameterization,
        "linear_start": 0.00085,
        "linear_end": 0.012,
        "timesteps": 1000,
        "first_stage_key": "jpg",
        "cond_stage_key": "txt",
        "image_size": spec.unet["sample_size"],
        "channels": 4,
        "cond_stage_trainable": False,
        "conditioning_key": "hybrid" if inpaint else "crossattn",
        "scale_factor": 0.18215,
        "use_ema": False,
        "unet_config": {
            "target": "ldm.modules.diffusionmodules.openaimodel.UNetModel",
            "params": _ldm_unet_params(spec.unet),
        },
        "first_stage_config": {"target": "ldm.models.autoencoder.AutoencoderKL", "params": _ldm_vae_params(spec.vae)},
        "cond_stage_config": _ldm_cond_stage(spec),
    }
    target = "LatentInpaintDiffusion" if inpaint else "LatentDiffusion"
    return {"model": {"base_learning_rate": 1.0e-4, "target": f"ldm.models.diffusion.ddpm.{target}", "params": params}}


def write_sidecar(checkpoint_path: str | Path, family: str, *, size: Size = "tiny") -> Path:
    """Write ``<stem>.yaml`` next to the checkpoint (A1111's per-model config convention)."""
    return _write_yaml(Path(checkpoint_path).with_suffix(".yaml"), sidecar_config(family, size))


def _write_yaml(path: Path, config: Mapping[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(dict(config), sort_keys=False))
    return path
