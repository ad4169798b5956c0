"""GenerationRequest: the single currency between front ends (UI, API, scripts) and the engine."""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from webui import samplers

MIN_SIZE, MAX_SIZE = 64, 2048
MAX_STEPS = 150


class GenerationRequest(BaseModel):
    """Everything one txt2img job needs. Validation errors read well in a 422 or in the UI."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = ""
    negative_prompt: str = ""
    styles: list[str] = Field(default_factory=list, description="names from styles.csv, applied in order")
    seed: int = Field(-1, ge=-1, le=2**32 - 1, description="-1 = random; image i uses seed + i")
    subseed: int = Field(-1, ge=-1, le=2**32 - 1, description="variation seed; -1 = random")
    subseed_strength: float = Field(0.0, ge=0.0, le=1.0)
    seed_resize_from_w: int = Field(-1, ge=-1, le=MAX_SIZE)
    seed_resize_from_h: int = Field(-1, ge=-1, le=MAX_SIZE)
    sampler_name: str = "Euler a"
    scheduler: str = "Automatic"
    steps: int = Field(20, ge=1, le=MAX_STEPS)
    cfg_scale: float = Field(7.0, ge=0.0, le=30.0)
    width: int = Field(512, ge=MIN_SIZE, le=MAX_SIZE)
    height: int = Field(512, ge=MIN_SIZE, le=MAX_SIZE)
    batch_size: int = Field(1, ge=1, le=64)
    n_iter: int = Field(1, ge=1, le=100)
    eta: float | None = Field(None, ge=0.0, le=1.0)
    clip_skip: int | None = Field(None, ge=1, le=12, description="None = the Clip skip setting")
    tiling: bool = False
    save_images: bool = True
    save_grid: bool = True
    override_settings: dict[str, Any] = Field(default_factory=dict)
    override_settings_restore_afterwards: bool = True
    notes: list[str] = Field(default_factory=list, description="front-end notes carried into the result info")

    @field_validator("cfg_scale", "subseed_strength", "eta")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value

    @field_validator("width", "height")
    @classmethod
    def _multiple_of_8(cls, value: int) -> int:
        # The VAE works on 8-pixel cells; A1111 silently renders a smaller image. Round down, openly.
        return value - value % 8

    @model_validator(mode="after")
    def _known_sampler(self) -> "GenerationRequest":
        samplers.resolve(self.sampler_name, self.scheduler)  # raises with the valid names
        spec, suffix = samplers.split_combined_name(self.sampler_name)
        if suffix and samplers.is_automatic(self.scheduler):
            self.scheduler = suffix  # "DPM++ 2M Karras" → DPM++ 2M + Karras, as A1111 reads it
        self.sampler_name = spec.name
        return self

    @property
    def image_count(self) -> int:
        return self.batch_size * self.n_iter
