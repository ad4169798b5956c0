"""Turn one single-file checkpoint into a diffusers pipeline, fully offline.

The state dict is read once (webui.models.safe_load), identified from its shapes
(webui.models.identify), and each component is built from a patched shipped config on the meta
device, then filled with ``load_state_dict(strict=True, assign=True)``: a missing or extra tensor
is an error that names the component, never a half-initialised model.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Mapping

import torch
from accelerate import init_empty_weights
from diffusers import (
    AutoencoderKL,
    DiffusionPipeline,
    EulerDiscreteScheduler,
    StableDiffusionInpaintPipeline,
    StableDiffusionPipeline,
    StableDiffusionXLImg2ImgPipeline,
    StableDiffusionXLInpaintPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from diffusers.loaders.single_file_utils import (
    convert_ldm_clip_checkpoint,
    convert_ldm_unet_checkpoint,
    convert_ldm_vae_checkpoint,
    convert_open_clip_checkpoint,
)
from transformers import (
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTextModelWithProjection,
    CLIPTokenizer,
)

from webui.models import configs
from webui.models.identify import (
    SD2_OPENCLIP,
    VAE,
    ModelSpec,
    TextEncoderDims,
    identify,
    read_sidecar,
    read_vae,
    sidecar_path,
)
from webui.models.safe_load import CheckpointError, load_state_dict, read_shapes

log = logging.getLogger(__name__)

StateDict = Mapping[str, torch.Tensor]

PIPELINE_CLASSES: dict[str, type[DiffusionPipeline]] = {
    "sd15": StableDiffusionPipeline,
    "sd2": StableDiffusionPipeline,
    "sd2-v": StableDiffusionPipeline,
    "sd15-inpaint": StableDiffusionInpaintPipeline,
    "sd2-inpaint": StableDiffusionInpaintPipeline,
    "sdxl-base": StableDiffusionXLPipeline,
    "sdxl-inpaint": StableDiffusionXLInpaintPipeline,
    "sdxl-refiner": StableDiffusionXLImg2ImgPipeline,
}


@dataclass
class LoadedCheckpoint:
    """A pipeline plus what we learned about the file it came from."""

    path: Path
    spec: ModelSpec
    pipe: DiffusionPipeline
    vae_path: Path | None = None


def identify_file(path: Path, state_dict: StateDict | None = None) -> ModelSpec:
    """Identify a checkpoint file (reading only the header for safetensors)."""
    shapes = {k: tuple(v.shape) for k, v in state_dict.items()} if state_dict is not None else read_shapes(path)
    side = sidecar_path(path)
    return identify(shapes, read_sidecar(side) if side else None, side)


def load_checkpoint(path: Path, *, dtype: torch.dtype = torch.float32, vae_path: Path | None = None) -> LoadedCheckpoint:
    """Read, identify and build the pipeline for ``path``; raises CheckpointError on bad input."""
    path = Path(path)
    state_dict = load_state_dict(path)
    spec = identify_file(path, state_dict)
    vae_state = load_vae_state_dict(vae_path) if vae_path else None
    pipe = build_pipeline(spec, state_dict, dtype=dtype, vae_state=vae_state)
    if spec.family == "sd2" and spec.prediction_source == "family":
        spec = _probe_v_prediction(spec, pipe)
    return LoadedCheckpoint(path=path, spec=spec, pipe=pipe, vae_path=vae_path)


def load_vae_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A standalone VAE file (A1111's models/VAE), with or without the first_stage_model. prefix."""
    tensors = load_state_dict(Path(path))
    if not any(k.startswith(VAE) for k in tensors):
        tensors = {VAE + k: v for k, v in tensors.items()}
    if read_vae({k: tuple(v.shape) for k, v in tensors.items()}, VAE) is None:
        raise CheckpointError(f"{Path(path).name}: not a VAE (no encoder/decoder tensors)")
    return tensors


def build_pipeline(
    spec: ModelSpec, state_dict: StateDict, *, dtype: torch.dtype, vae_state: StateDict | None = None
) -> DiffusionPipeline:
    components: dict[str, object] = {
        "unet": _build_unet(spec, state_dict),
        "vae": build_vae(spec, vae_state if vae_state is not None else state_dict),
        "scheduler": EulerDiscreteScheduler.from_config(configs.scheduler_config(spec)),
    }
    components.update(_build_text_encoders(spec, state_dict))
    cls = PIPELINE_CLASSES[spec.family]
    if cls in (StableDiffusionPipeline, StableDiffusionInpaintPipeline):
        components.update(safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    if spec.family == "sdxl-refiner":
        components.update(requires_aesthetics_score=True, force_zeros_for_empty_prompt=False)
    for module in components.values():
        if isinstance(module, torch.nn.Module):
            # Plain nn.Module.to: diffusers' own .to(dtype) warns about fp32-kept modules,
            # a list that is empty for these models.
            torch.nn.Module.to(module, dtype=dtype)
    pipe = cls(**components)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _fill(model: torch.nn.Module, tensors: dict[str, torch.Tensor], what: str) -> None:
    """Strictly load ``tensors`` into a meta-initialised model, with a readable error."""
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    missing = sorted(expected.keys() - tensors.keys())
    unexpected = sorted(tensors.keys() - expected.keys())
    if missing or unexpected:
        details = []
        if missing:
            details.append(f"{len(missing)} tensors missing (e.g. {missing[0]})")
        if unexpected:
            details.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        raise CheckpointError(f"the {what} does not match its layout: {'; '.join(details)}")
    for name, tensor in tensors.items():
        if tuple(tensor.shape) != expected[name]:
            raise CheckpointError(f"the {what} tensor {name} has shape {tuple(tensor.shape)}, expected {expected[name]}")
    model.load_state_dict(tensors, strict=True, assign=True)
    model.eval()


def _build_unet(spec: ModelSpec, state_dict: StateDict) -> UNet2DConditionModel:
    config = configs.unet_config(spec)
    with init_empty_weights():
        unet = UNet2DConditionModel.from_config(config)
    _fill(unet, convert_ldm_unet_checkpoint(dict(state_dict), config), "UNet")
    return unet


def build_vae(spec: ModelSpec, state_dict: StateDict) -> AutoencoderKL:
    dims = read_vae({k: tuple(v.shape) for k, v in state_dict.items() if k.startswith(VAE)}, VAE)
    if dims is None:
        raise CheckpointError("the checkpoint has no VAE (first_stage_model.*); choose a VAE file")
    config = configs.vae_config(spec.family, dims)
    with init_empty_weights():
        vae = AutoencoderKL.from_config(config)
    _fill(vae, convert_ldm_vae_checkpoint(dict(state_dict), config), "VAE")
    return vae


def _build_text_encoders(spec: ModelSpec, state_dict: StateDict) -> dict[str, object]:
    """Text encoders and tokenizers under the component names the family's pipeline expects."""
    if spec.family == "sdxl-refiner":
        (bigg,) = spec.text_encoders
        return {
            "text_encoder": None,
            "tokenizer": None,
            "text_encoder_2": _build_openclip(spec, state_dict, bigg, "text_encoder_2", CLIPTextModelWithProjection),
            "tokenizer_2": _tokenizer("openclip"),
        }
    if spec.is_sdxl:
        clip_l, bigg = spec.text_encoders
        return {
            "text_encoder": _build_clip(spec, state_dict, clip_l),
            "tokenizer": _tokenizer("clip"),
            "text_encoder_2": _build_openclip(spec, state_dict, bigg, "text_encoder_2", CLIPTextModelWithProjection),
            "tokenizer_2": _tokenizer("openclip"),
        }
    (te,) = spec.text_encoders
    if te.kind == "clip":
        return {"text_encoder": _build_clip(spec, state_dict, te), "tokenizer": _tokenizer("clip")}
    return {
        "text_encoder": _build_openclip(spec, state_dict, te, "text_encoder", CLIPTextModel),
        "tokenizer": _tokenizer("openclip"),
    }


def _tokenizer(kind: str) -> CLIPTokenizer:
    return CLIPTokenizer.from_pretrained(str(configs.tokenizer_dir(kind)), local_files_only=True)


def _build_clip(spec: ModelSpec, state_dict: StateDict, dims: TextEncoderDims) -> CLIPTextModel:
    config = CLIPTextConfig(**configs.text_encoder_config(spec.family, "text_encoder", dims, drop_last_layer=False))
    with init_empty_weights():
        model = CLIPTextModel(config)
    tensors = convert_ldm_clip_checkpoint({k: v for k, v in state_dict.items() if k.startswith(dims.prefix)})
    tensors = {k: v for k, v in tensors.items() if not k.endswith("position_ids")}
    _fill(model, _match_text_model_prefix(model, tensors), "CLIP text encoder")
    return model


def _build_openclip(spec: ModelSpec, state_dict: StateDict, dims: TextEncoderDims, component: str, cls: type):
    # SD2 conditions on the penultimate layer, so (like diffusers' SD2 configs) its encoder is built
    # without the last block; SDXL's bigG keeps all blocks and the pipeline picks hidden_states[-2].
    drop_last = dims.prefix == SD2_OPENCLIP
    config = CLIPTextConfig(**configs.text_encoder_config(spec.family, component, dims, drop_last_layer=drop_last))
    with init_empty_weights():
        model = cls(config)
    subset = {k: v for k, v in state_dict.items() if k.startswith(dims.prefix)}
    if drop_last:
        last = f"{dims.prefix}transformer.resblocks.{dims.layers - 1}."
        subset = {k: v for k, v in subset.items() if not k.startswith(last)}
    tensors = convert_open_clip_checkpoint(model, subset, prefix=dims.prefix)
    tensors = {k: v for k, v in tensors.items() if v is not None and not k.endswith("position_ids")}
    if not hasattr(model, "text_projection"):
        tensors.pop("text_projection.weight", None)
    _fill(model, _match_text_model_prefix(model, tensors), "OpenCLIP text encoder")
    return model


def _match_text_model_prefix(model: torch.nn.Module, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # transformers 5 flattened CLIPTextModel (no "text_model." level); CLIPTextModelWithProjection kept it.
    if hasattr(model, "text_model"):
        return tensors
    return {k.removeprefix("text_model."): v for k, v in tensors.items()}


@torch.no_grad()
def _probe_v_prediction(spec: ModelSpec, pipe: DiffusionPipeline) -> ModelSpec:
    """A1111's test for SD2 files without a sidecar: one UNet pass on a flat latent at t=999.

    An epsilon model predicts noise (output close to the input); a v model predicts a large
    negative offset. mean(out - x) < -1 means v-prediction.
    """
    unet = pipe.unet
    param = next(unet.parameters())
    x = torch.full((1, unet.config.in_channels, 8, 8), 0.5, dtype=param.dtype, device=param.device)
    context = torch.full((1, 77, unet.config.cross_attention_dim), 0.5, dtype=param.dtype, device=param.device)
    out = unet(x, torch.tensor([999], device=param.device), encoder_hidden_states=context).sample
    is_v = (out - x).mean().item() < -1
    if not is_v:
        return replace(spec, prediction_source="probe")
    pipe.scheduler = pipe.scheduler.__class__.from_config(pipe.scheduler.config, prediction_type="v_prediction")
    return replace(spec, family="sd2-v", prediction_type="v_prediction", prediction_source="probe")
