"""Write tiny random-weight ControlNets in the real single-file layouts, for tests.

A ControlNet is built from the same UNet config as the tiny checkpoints of
webui.models.synthetic (``family_spec(family, "tiny").unet``), so its residuals fit that UNet.
Layouts: "original" = lllyasviel's ``control_model.*`` keys (the ``control_v11*.pth`` files;
``prefixed=False`` drops the prefix as some re-saved files do), "diffusers" = ControlNetModel's own
keys in one file (how SDXL ControlNets ship). ``.pth``/``.ckpt``/``.pt`` paths are torch pickles.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Literal

import torch
from diffusers import UNet2DConditionModel
from safetensors.torch import save_file

from webui.models.ldm_layout import UNET_PREFIX, unet_to_ldm
from webui.models.synthetic import family_spec, random_state_dict

SYNTHETIC_FAMILIES = {"sd1": "sd15", "sd2": "sd2", "sdxl": "sdxl-base"}
# Four entries keep the hint encoder's 8x downscale (and conv_out at input_hint_block.14).
_HINT_CHANNELS = (16, 16, 32, 32)
_PREFIX = "control_model."


def controlnet_config(family: str, variant: Literal["full", "mid", "small"] = "full") -> dict[str, Any]:
    """ControlNetModel kwargs matching the tiny checkpoint of ``family`` ("sd1", "sd2", "sdxl").

    SDXL ``mid`` has one transformer layer per attention level, ``small`` none at all (as the
    real "mid"/"small" SDXL ControlNets thin out the full one).
    """
    from diffusers import ControlNetModel

    unet = dict(family_spec(SYNTHETIC_FAMILIES[family], "tiny").unet)
    accepted = set(inspect.signature(ControlNetModel.__init__).parameters)
    config = {k: v for k, v in unet.items() if k in accepted}
    config["conditioning_embedding_out_channels"] = _HINT_CHANNELS
    if variant != "full":
        if family != "sdxl":
            raise ValueError("mid/small variants exist for SDXL only")
        if variant == "mid":
            config["transformer_layers_per_block"] = 1
        else:
            config["down_block_types"] = ("DownBlock2D",) * len(config["block_out_channels"])
            config["mid_block_type"] = "UNetMidBlock2D"
    return config


def controlnet_tensors(family: str, *, seed: int = 0, variant: str = "full") -> dict[str, torch.Tensor]:
    """diffusers-layout weights: seeded noise, zero convs included (so residuals are non-zero)."""
    from diffusers import ControlNetModel

    config = controlnet_config(family, variant)  # type: ignore[arg-type]
    return random_state_dict(lambda: ControlNetModel(**config), seed=seed, component="controlnet",
                             dtype=torch.float32)


def to_original(state: dict[str, torch.Tensor], config: dict[str, Any], *, prefixed: bool = True) -> dict[str, torch.Tensor]:
    """diffusers ControlNetModel keys → lllyasviel's cldm keys (the inverse of diffusers' converter)."""
    encoder, out = {}, {}
    hint_blocks = 0
    for key, tensor in state.items():
        if key.startswith("controlnet_down_blocks."):
            _, i, leaf = key.split(".")
            out[f"zero_convs.{i}.0.{leaf}"] = tensor
        elif key.startswith("controlnet_mid_block."):
            out["middle_block_out.0." + key.rsplit(".", 1)[1]] = tensor
        elif key.startswith("controlnet_cond_embedding.conv_in."):
            out["input_hint_block.0." + key.rsplit(".", 1)[1]] = tensor
        elif key.startswith("controlnet_cond_embedding.blocks."):
            _, _, j, leaf = key.split(".")
            out[f"input_hint_block.{2 * (int(j) + 1)}.{leaf}"] = tensor
            hint_blocks = max(hint_blocks, int(j) + 1)
        elif key.startswith("controlnet_cond_embedding.conv_out."):
            out["input_hint_block.{conv_out}." + key.rsplit(".", 1)[1]] = tensor
        else:
            encoder[key] = tensor
    out = {k.replace("{conv_out}", str(2 * (hint_blocks + 1))): v for k, v in out.items()}
    for key, tensor in unet_to_ldm(encoder, config).items():
        out[key[len(UNET_PREFIX):]] = tensor
    return {(_PREFIX if prefixed else "") + k: v for k, v in out.items()}


def _save(tensors: dict[str, torch.Tensor], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.contiguous() for k, v in tensors.items()}
    if path.suffix == ".safetensors":
        save_file(tensors, str(path))
    else:
        torch.save({"state_dict": tensors} if path.suffix == ".ckpt" else tensors, path)
    return path


def write_controlnet(path: str | Path, family: str, layout: Literal["original", "diffusers"] = "original", *,
                     prefixed: bool = True, shuffle: bool = False, seed: int = 0, variant: str = "full",
                     with_sd_unet: bool = False) -> Path:
    """Write a tiny ControlNet for ``family`` ("sd1", "sd2", "sdxl") and return its path.

    ``shuffle=True`` puts "shuffle" in the file name (that is what marks the shuffle model).
    ``with_sd_unet=True`` bundles an SD UNet (``model.diffusion_model.*``) as ControlNet 1.0's files do.
    """
    path = Path(path)
    if shuffle and "shuffle" not in path.stem.lower():
        path = path.with_name(f"{path.stem}_shuffle{path.suffix}")
    state = controlnet_tensors(family, seed=seed, variant=variant)
    if layout == "original":
        state = to_original(state, controlnet_config(family, variant), prefixed=prefixed)  # type: ignore[arg-type]
    elif layout != "diffusers":
        raise ValueError(f"unknown layout {layout!r}")
    if with_sd_unet:
        unet = family_spec(SYNTHETIC_FAMILIES[family], "tiny").unet
        state.update(unet_to_ldm(random_state_dict(lambda: UNet2DConditionModel(**unet), seed=seed, component="unet",
                                                   dtype=torch.float32), unet))
    return _save(state, path)


def write_union_like(path: str | Path, seed: int = 0) -> Path:
    """An SDXL ControlNet with ControlNet Union's extra task embedding (diffusers layout)."""
    state = controlnet_tensors("sdxl", seed=seed)
    gen = torch.Generator().manual_seed(seed)
    state["task_embedding"] = torch.randn(6, 64, generator=gen)
    state["control_add_embedding.linear_1.weight"] = torch.randn(64, 48, generator=gen)
    state["control_add_embedding.linear_1.bias"] = torch.zeros(64)
    return _save(state, Path(path))


def write_t2i_adapter_like(path: str | Path, seed: int = 0) -> Path:
    """TencentARC's original T2I-Adapter key set (conv_in, body.N.block1/2, down_opt), tiny."""
    gen = torch.Generator().manual_seed(seed)
    state = {"conv_in.weight": torch.randn(32, 192, 3, 3, generator=gen), "conv_in.bias": torch.zeros(32)}
    for i in range(4):
        for block in ("block1", "block2"):
            state[f"body.{i}.{block}.weight"] = torch.randn(32, 32, 3, 3, generator=gen)
            state[f"body.{i}.{block}.bias"] = torch.zeros(32)
    state["body.2.down_opt.op.weight"] = torch.randn(32, 32, 3, 3, generator=gen)
    return _save(state, Path(path))


def write_control_lora_like(path: str | Path, seed: int = 0) -> Path:
    """A Control-LoRA's marker key beside a few of its LoRA-compressed tensors."""
    gen = torch.Generator().manual_seed(seed)
    state = {"lora_controlnet": torch.zeros(1),
             "input_hint_block.0.weight": torch.randn(16, 3, 3, 3, generator=gen),
             "input_blocks.1.0.in_layers.2.up": torch.randn(32, 4, generator=gen),
             "input_blocks.1.0.in_layers.2.down": torch.randn(4, 288, generator=gen)}
    return _save(state, Path(path))
