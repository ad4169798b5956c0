"""What a checkpoint merge is asked to do (A1111's Checkpoint Merger fields), its output name and
the provenance metadata written into the result (``sd_merge_recipe``, ``sd_merge_models``).

The recipe validates itself, so the API answers a bad name or regex with a 422 before anything
is read, and the merger never sees a name that could leave the checkpoints folder.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from webui.models.catalog import ModelFile
from webui.models.hashes import legacy_hash
from webui.version import VERSION

InterpMethod = Literal["No interpolation", "Weighted sum", "Add difference"]
ConfigSource = Literal["A, B or C", "B", "C", "Don't"]
INTERP_METHODS: tuple[str, ...] = ("No interpolation", "Weighted sum", "Add difference")
CONFIG_SOURCES: tuple[str, ...] = ("A, B or C", "B", "C", "Don't")
MAX_STEM = 180  # bytes left for ".inpainting.safetensors" under the usual 255-byte file name limit


class MergeError(ValueError):
    """A merge that cannot be done; the message says why, for a person. ``code``: the HTTP status."""

    def __init__(self, message: str, code: int = 422):
        super().__init__(message)
        self.code = code


def check_custom_name(name: str) -> str:
    """The file stem a user asked for, or an error: it must stay a plain name in the checkpoints folder."""
    name = name.strip()
    if name.lower().endswith(".safetensors"):
        name = name[: -len(".safetensors")]
    if name.lower().endswith((".ckpt", ".pt", ".pth", ".bin")):
        raise ValueError("only .safetensors is written (a .ckpt pickle can carry code); leave the extension out")
    if not name:
        return ""
    if any(sep in name for sep in ("/", "\\", "\0")) or ".." in name or name.startswith("."):
        raise ValueError(f"the name {name!r} must be a plain file name: no folders, '..' or leading dot")
    if any(ord(ch) < 32 for ch in name):
        raise ValueError("the name contains control characters")
    if len(name.encode("utf-8")) > MAX_STEM:
        raise ValueError(f"the name is longer than {MAX_STEM} bytes")
    return name


class MergeRecipe(BaseModel):
    """One merge, with A1111's field names and defaults (its tab's values; ckpt output is not offered)."""

    model_config = ConfigDict(extra="forbid")

    primary_model_name: str = Field(min_length=1, max_length=1024, description="model A (title, name or hash)")
    secondary_model_name: str | None = Field(None, max_length=1024, description="model B")
    tertiary_model_name: str | None = Field(None, max_length=1024, description="model C (Add difference)")
    interp_method: InterpMethod = "Weighted sum"
    multiplier: float = Field(0.3, ge=-10, le=10, allow_inf_nan=False, description="M")
    save_as_half: bool = False
    custom_name: str = Field("", max_length=512)
    checkpoint_format: str = "safetensors"
    config_source: ConfigSource = "A, B or C"
    bake_in_vae: str = Field("None", max_length=1024, description="a VAE from /sdapi/v1/sd-vae, or None")
    discard_weights: str = Field("", max_length=1000, description="regex: tensors whose name matches are left out")
    copy_metadata: bool = Field(True, description="copy the inputs' safetensors metadata into the result")
    add_merge_recipe: bool = Field(True, description="write sd_merge_recipe / sd_merge_models")
    overwrite: bool = Field(False, description="replace a checkpoint of the same name")

    @field_validator("custom_name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        return check_custom_name(value)

    @field_validator("checkpoint_format")
    @classmethod
    def _safetensors_only(cls, value: str) -> str:
        if value.strip().lower().lstrip(".") != "safetensors":
            raise ValueError(f"checkpoint format {value!r} is not written: only safetensors "
                             "(a .ckpt is a pickle, which can carry code)")
        return "safetensors"

    @field_validator("discard_weights")
    @classmethod
    def _valid_regex(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as e:
            raise ValueError(f"discard weights: not a valid regular expression ({e})") from None
        return value

    @property
    def uses_b(self) -> bool:
        return self.interp_method != "No interpolation"

    @property
    def uses_c(self) -> bool:
        return self.interp_method == "Add difference"


def _number(value: float) -> str:
    return str(round(value, 2))


def output_name(recipe: MergeRecipe, a: ModelFile, b: ModelFile | None, c: ModelFile | None,
                inpainting: bool) -> str:
    """A1111's rule: the custom name, else "0.7(a) + 0.3(b)" / "a + 0.3(b - c)" / "a"; ".inpainting"
    when an inpainting A took a normal B's weights."""
    stem = recipe.custom_name
    if not stem:
        m = recipe.multiplier
        if recipe.interp_method == "Weighted sum" and b is not None:
            stem = f"{_number(1 - m)}({a.model_name}) + {_number(m)}({b.model_name})"
        elif recipe.interp_method == "Add difference" and b is not None and c is not None:
            stem = f"{a.model_name} + {_number(m)}({b.model_name} - {c.model_name})"
        else:
            stem = a.model_name
        stem = stem.replace("..", "_").replace("\\", "_").lstrip(".")
        while len(stem.encode("utf-8")) > MAX_STEM:
            stem = stem[:-1]
        try:
            stem = check_custom_name(stem) or "merged"
        except ValueError:  # a model name with control characters: no derived name then
            stem = "merged"
    return stem + (".inpainting" if inpainting else "") + ".safetensors"


def _parsed(value: Any) -> Any:
    """A metadata value A1111 stored as JSON text, as an object (the text itself when it is not JSON)."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def merge_metadata(recipe: MergeRecipe, inputs: list[tuple[str, ModelFile, dict[str, str]]],
                   inpainting: bool) -> dict[str, str]:
    """safetensors metadata as A1111 writes it: the inputs' own (A, then B, then C), ``format: pt``,
    and the recipe with the SHA-256 of every input. ``inputs``: (role hash key, file with sha256, metadata)."""
    metadata: dict[str, str] = {}
    if recipe.copy_metadata:
        for _, _, own in inputs:
            metadata.update(own)
    metadata["format"] = "pt"
    if not recipe.add_merge_recipe:
        return metadata
    merge_recipe: dict[str, Any] = {
        "type": "webui",  # A1111's marker for its built-in merger: tools that read recipes key on it
        "merged_by": f"SD Studio {VERSION}",
        "primary_model_hash": None, "secondary_model_hash": None, "tertiary_model_hash": None,
        "interp_method": recipe.interp_method,
        "multiplier": recipe.multiplier,
        "save_as_half": recipe.save_as_half,
        "custom_name": recipe.custom_name,
        "config_source": CONFIG_SOURCES.index(recipe.config_source),  # A1111 stores the radio's index
        "bake_in_vae": recipe.bake_in_vae,
        "discard_weights": recipe.discard_weights,
        "is_inpainting": inpainting,
        "is_instruct_pix2pix": False,
    }
    models: dict[str, Any] = {}
    for role, file, own in inputs:
        merge_recipe[role] = file.sha256
        models[str(file.sha256)] = {
            "name": file.name,
            "legacy_hash": legacy_hash(file.path),
            "sd_merge_recipe": _parsed(own.get("sd_merge_recipe")),
        }
        parents = _parsed(own.get("sd_merge_models"))
        if isinstance(parents, dict):
            models.update(parents)
    metadata["sd_merge_recipe"] = json.dumps(merge_recipe)
    metadata["sd_merge_models"] = json.dumps(models)
    return metadata


def config_to_copy(recipe: MergeRecipe, a: ModelFile, b: ModelFile | None, c: ModelFile | None) -> Path | None:
    """The sidecar ``<name>.yaml`` to copy beside the result ("Copy config from"), if there is one."""
    candidates = {"A, B or C": [a, b, c], "B": [b], "C": [c], "Don't": []}[recipe.config_source]
    for file in candidates:
        if file is not None and (yaml := file.path.with_suffix(".yaml")).is_file():
            return yaml
    return None
