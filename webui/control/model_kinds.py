"""What kind of control model a file holds, from its tensor names alone.

Plain ControlNets (original lllyasviel layout, with or without the ``control_model.`` prefix, or
diffusers layout) load. Other kinds that share the folder are refused with a sentence naming the
kind, before anything is built from them.
"""

from __future__ import annotations

from collections.abc import Iterable

CONTROLNET = "controlnet"

# kind -> what the user is told it is; the loaders for these are not built (yet).
REFUSED_KINDS = {
    "control_lora": "a Control-LoRA (Stability's LoRA-compressed ControlNet)",
    "union": "a ControlNet Union (ControlNet++, one model for many control types)",
    "t2i_adapter": "a T2I-Adapter",
    "ip_adapter": "an IP-Adapter",
    "lllite": "a ControlNet-LLLite (kohya)",
    "sparsectrl": "a SparseCtrl model (AnimateDiff)",
    "diff": "a diff ControlNet (weights stored as differences from SD 1.5)",
    "unknown": "not a ControlNet this loader knows",
}

_PREFIX = "control_model."


def strip_prefix(keys: Iterable[str]) -> set[str]:
    """The ControlNet's own names: ``control_model.*`` stripped, and only those when there are any."""
    keys = list(keys)
    if any(k.startswith(_PREFIX) for k in keys):
        return {k[len(_PREFIX):] for k in keys if k.startswith(_PREFIX)}
    return set(keys)


def is_diffusers_layout(keys: Iterable[str]) -> bool:
    return any(k.startswith("controlnet_cond_embedding.") for k in keys)


def classify(keys: Iterable[str]) -> str:
    """``"controlnet"`` or one of REFUSED_KINDS' keys."""
    raw = set(keys)
    names = strip_prefix(raw)
    if "lora_controlnet" in names or any(k.endswith((".up", ".down", ".up.weight", ".down.weight")) for k in names):
        return "control_lora"
    if "task_embedding" in names or any(k.startswith("control_add_embedding.") for k in names):
        return "union"
    if any("motion_modules." in k for k in names):
        return "sparsectrl"
    if any("lllite" in k for k in names):
        return "lllite"
    if any(k.startswith(("image_proj.", "ip_adapter.")) for k in names):
        return "ip_adapter"
    if "difference" in names:
        return "diff"
    if is_diffusers_layout(names):
        needed = ("conv_in.weight", "controlnet_mid_block.weight", "down_blocks.0.resnets.0.conv1.weight")
        return CONTROLNET if all(k in names for k in needed) else "unknown"
    if "input_hint_block.0.weight" in names and "middle_block_out.0.weight" in names and "time_embed.0.weight" in names:
        return CONTROLNET
    # TencentARC's adapters: body.N.* with conv_in (full/light), or the style adapter's tokens.
    if any(k.startswith(("adapter.", "body.")) for k in names) or "style_embedding" in names:
        return "t2i_adapter"
    return "unknown"


def refusal(kind: str, title: str) -> str:
    """The sentence for a refused kind."""
    what = REFUSED_KINDS.get(kind, REFUSED_KINDS["unknown"])
    if kind == "unknown":
        return (f"{title} is {what}: it has neither the original layout (control_model.input_hint_block...) "
                "nor diffusers' (controlnet_cond_embedding...)")
    return f"{title} is {what}, which SD Studio does not run yet; use a plain ControlNet model"
