"""Write LoRA, embedding and hypernetwork files in the real A1111/kohya layouts, for tests.

Shapes are read from the pipeline the file is meant for, so the files fit the tiny test
checkpoints as well as real models. Weights are seeded random values, large enough that the
image visibly changes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from safetensors.torch import save_file

from webui.models.ldm_layout import unet_to_ldm

# kohya's default LoRA targets: attention and feed-forward Linear layers of the UNet
# transformer blocks (plus proj_in/proj_out), and the CLIP self-attention/MLP Linear layers.
_UNET_TARGETS = ("attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0",
                 "attn2.to_q", "attn2.to_k", "attn2.to_v", "attn2.to_out.0",
                 "ff.net.0.proj", "ff.net.2", "proj_in", "proj_out")
_TE_TARGETS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj", "mlp.fc1", "mlp.fc2")


def _unet_modules(unet: torch.nn.Module, conv: bool) -> dict[str, torch.nn.Module]:
    found = {}
    for name, module in unet.named_modules():
        if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)) and name.endswith(_UNET_TARGETS):
            found[name] = module
        elif conv and isinstance(module, torch.nn.Conv2d) and ".resnets." in name and name.endswith(("conv1", "conv2")):
            found[name] = module
    return found


def _sgm_names(unet: torch.nn.Module, names: Sequence[str]) -> dict[str, str]:
    """diffusers module name → sgm (LDM) module name, the naming kohya uses for SDXL."""
    markers = {f"{n}.weight": torch.tensor(float(i)) for i, n in enumerate(names)}
    converted = unet_to_ldm(markers, dict(unet.config))
    out = {}
    for key, value in converted.items():
        ldm = key.removeprefix("model.diffusion_model.").removesuffix(".weight")
        out[names[int(value.item())]] = ldm
    return out


def _pair(weight: torch.Tensor, rank: int, gen: torch.Generator, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    if weight.ndim == 2:
        down = torch.randn(rank, weight.shape[1], generator=gen) * scale
        up = torch.randn(weight.shape[0], rank, generator=gen) * scale
    else:  # LoCon conv: down has the kernel, up is 1x1
        down = torch.randn(rank, weight.shape[1], *weight.shape[2:], generator=gen) * scale
        up = torch.randn(weight.shape[0], rank, 1, 1, generator=gen) * scale
    return down, up


def kohya_lora_state_dict(
    pipe,
    *,
    rank: int = 4,
    alpha: float | None = None,
    seed: int = 0,
    sdxl: bool | None = None,
    text_encoder: bool = True,
    conv: bool = False,
    scale: float = 0.3,
) -> dict[str, torch.Tensor]:
    """A kohya-format LoRA (LoCon with ``conv=True``) fitting ``pipe``'s modules."""
    gen = torch.Generator().manual_seed(seed)
    sdxl = hasattr(pipe, "text_encoder_2") if sdxl is None else sdxl
    alpha = float(rank) / 2 if alpha is None else float(alpha)
    state: dict[str, torch.Tensor] = {}

    def add(kohya: str, module: torch.nn.Module) -> None:
        down, up = _pair(module.weight, rank, gen, scale)
        state[f"{kohya}.lora_down.weight"] = down.contiguous()
        state[f"{kohya}.lora_up.weight"] = up.contiguous()
        state[f"{kohya}.alpha"] = torch.tensor(alpha)

    modules = _unet_modules(pipe.unet, conv)
    names = sorted(modules)
    renamed = _sgm_names(pipe.unet, names) if sdxl else {n: n for n in names}
    for name in names:
        add("lora_unet_" + renamed[name].replace(".", "_"), modules[name])

    if text_encoder:
        encoders = [("lora_te1_" if sdxl else "lora_te_", pipe.text_encoder)]
        if sdxl:
            encoders.append(("lora_te2_", pipe.text_encoder_2))
        for prefix, te in encoders:
            for name, module in te.named_modules():
                if isinstance(module, torch.nn.Linear) and ".layers." in name and name.endswith(_TE_TARGETS):
                    flat = name.removeprefix("text_model.")
                    add(prefix + "text_model_" + flat.replace(".", "_"), module)
    return state


def write_kohya_lora(path: Path, pipe, rank: int = 4, alpha: float | None = None, seed: int = 0,
                     sdxl: bool | None = None, text_encoder: bool = True, conv: bool = False,
                     metadata: dict[str, str] | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = kohya_lora_state_dict(pipe, rank=rank, alpha=alpha, seed=seed, sdxl=sdxl, text_encoder=text_encoder, conv=conv)
    if path.suffix == ".safetensors":
        is_xl = hasattr(pipe, "text_encoder_2") if sdxl is None else sdxl
        # As kohya's trainer writes it; the UI and the engine read the version from it.
        default = {"ss_network_module": "networks.lora", "ss_base_model_version": "sdxl_base_v1-0" if is_xl else "sd_v1"}
        save_file(state, str(path), metadata=metadata if metadata is not None else default)
    else:
        torch.save(state, path)
    return path


def write_a1111_embedding(path: Path, vectors: torch.Tensor, name: str | None = None, step: int = 100) -> Path:
    """A1111's textual inversion .pt: {'string_to_token', 'string_to_param': {'*': T}, 'name', 'step', ...}."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({
        "string_to_token": {"*": 265},
        "string_to_param": {"*": vectors.detach().clone()},
        "name": name or path.stem,
        "step": step,
        "sd_checkpoint": "0123456789",
        "sd_checkpoint_name": "model",
    }, path)
    return path


def write_safetensors_embedding(path: Path, vectors: torch.Tensor) -> Path:
    """The ``{'emb_params': T}`` safetensors embedding (A1111 also reads these)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({"emb_params": vectors.detach().clone().contiguous()}, str(path))
    return path


def write_sdxl_embedding(path: Path, clip_l: torch.Tensor, clip_g: torch.Tensor) -> Path:
    """SDXL embedding: {'clip_l': T (n, 768), 'clip_g': T (n, 1280)} as safetensors."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({"clip_l": clip_l.detach().clone().contiguous(), "clip_g": clip_g.detach().clone().contiguous()}, str(path))
    return path


def random_vectors(count: int, width: int, seed: int = 0, scale: float = 1.0) -> torch.Tensor:
    return torch.randn(count, width, generator=torch.Generator().manual_seed(seed)) * scale


def write_hypernetwork(
    path: Path,
    dims: Sequence[int] = (64,),
    layer_structure: Sequence[float] = (1, 2, 1),
    activation: str = "relu",
    seed: int = 0,
    *,
    layer_norm: bool = False,
    use_dropout: bool = False,
    activate_output: bool = False,
    scale: float = 0.2,
) -> Path:
    """A1111's hypernetwork .pt: {dim: (k_state, v_state), 'layer_structure': [...], ...}.

    The module layout (Linear, activation, LayerNorm, Dropout indices in ``linear.N``) is the
    one A1111 builds, so the keys match what A1111 itself would save.
    """
    from webui.networks.hypernetwork import build_module

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    dropout = _dropout_structure(layer_structure, use_dropout, False)
    state: dict[object, object] = {}
    for dim in dims:
        pair = []
        for _ in range(2):
            module = build_module(dim, list(layer_structure), activation, layer_norm, activate_output, dropout)
            with torch.no_grad():
                for p in module.parameters():
                    p.copy_(torch.randn(p.shape, generator=gen) * scale)
            pair.append({k: v.clone() for k, v in module.state_dict().items()})
        state[int(dim)] = tuple(pair)
    state.update({
        "step": 1000, "name": path.stem, "layer_structure": list(layer_structure), "activation_func": activation,
        "is_layer_norm": layer_norm, "weight_initialization": "Normal", "sd_checkpoint": None,
        "sd_checkpoint_name": None, "activate_output": activate_output, "use_dropout": use_dropout,
        "dropout_structure": dropout, "last_layer_dropout": False, "optional_info": None,
    })
    torch.save(state, path)
    return path


def _dropout_structure(layer_structure: Sequence[float], use_dropout: bool, last_layer_dropout: bool) -> list[float]:
    if not use_dropout:
        return [0] * len(layer_structure)
    return [0] + [0.3] * (len(layer_structure) - 3) + [0.3 if last_layer_dropout else 0] + [0]


class _RunsCode:
    """Pickled as a call to os.system: loading it with full unpickling would run a command."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        import os

        return (os.system, (self.command,))


def write_malicious_pickle(path: Path, marker: Path) -> Path:
    """A .pt whose unpickling would create ``marker`` (a safe loader must refuse it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"string_to_param": {"*": torch.zeros(1, 4)}, "payload": _RunsCode(f"touch '{marker}'")}, path)
    return path
