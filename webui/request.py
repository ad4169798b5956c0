"""GenerationRequest: the single currency between front ends (UI, API, scripts) and the engine."""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from webui import samplers, upscalers
from webui.prompts.parser import extract_extra_networks
from webui.request_img2img import Img2ImgInput
from webui.request_scripts import (
    MAX_ALWAYSON,
    MAX_SCRIPT_ARGS,
    AlwaysOnArgs,
    ScriptValue,
    check_stored_images,
)

MIN_SIZE, MAX_SIZE = 64, 2048
MAX_STEPS = 150
MAX_SCHEDULE_STEPS = 1000
# Hard caps, checked while parsing the body: limit_prompt_chars is the configurable, lower limit.
MAX_PROMPT_CHARS = 200_000
MAX_STYLES, MAX_STYLE_NAME_CHARS = 32, 200
LATENT_SCALE = 8

USE_SAME_CHECKPOINT = "Use same checkpoint"
USE_SAME_SAMPLER = "Use same sampler"
USE_SAME_SCHEDULER = "Use same scheduler"
_NO_REFINER = ("", "None", "none")


def capped(limit: int) -> AfterValidator:
    """A length cap on text, checked while parsing. Not ``max_length``: pydantic would refuse a lone
    surrogate with an obscure message before ``_unicode_text`` can say what is wrong."""

    def check(text: str | None) -> str | None:
        if text is not None and len(text) > limit:
            raise ValueError(f"has {len(text)} characters; at most {limit} characters are accepted")
        return text

    return AfterValidator(check)


PromptText = Annotated[str, capped(MAX_PROMPT_CHARS)]


class GenerationRequest(BaseModel):
    """Everything one txt2img or img2img job needs. Validation errors read well in a 422 or in the UI."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    prompt: PromptText = ""
    negative_prompt: PromptText = ""
    styles: list[Annotated[str, capped(MAX_STYLE_NAME_CHARS)]] = Field(
        default_factory=list, max_length=MAX_STYLES, description="names from styles.csv, applied in order")
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
    # Hires fix: a second, img2img-like pass at a larger size (A1111's fields and UI defaults).
    enable_hr: bool = False
    hr_scale: float = Field(2.0, ge=1.0, le=4.0)
    hr_resize_x: int = Field(0, ge=0, le=MAX_SIZE, description="0 = from hr_scale (or from hr_resize_y's ratio)")
    hr_resize_y: int = Field(0, ge=0, le=MAX_SIZE)
    hr_upscaler: str = upscalers.DEFAULT_LATENT_MODE
    hr_second_pass_steps: int = Field(0, ge=0, le=MAX_STEPS, description="0 = the same as steps")
    denoising_strength: float = Field(0.7, ge=0.0, le=1.0)
    hr_checkpoint_name: str = USE_SAME_CHECKPOINT
    hr_sampler_name: str = USE_SAME_SAMPLER
    hr_scheduler: str = USE_SAME_SCHEDULER
    hr_prompt: PromptText = Field("", description="'' = the prompt")
    hr_negative_prompt: PromptText = Field("", description="'' = the negative prompt")
    # SDXL refiner (any checkpoint): takes over the same schedule at refiner_switch_at.
    refiner_checkpoint: str | None = None
    refiner_switch_at: float = Field(0.8, ge=0.0, le=1.0)
    # img2img (inpaint, outpaint): set when the job starts from images; denoising_strength is its strength.
    img2img: Img2ImgInput | None = None
    # Scripts (A1111's names): a selectable script with its args, and always-on scripts' args by title.
    script_name: Annotated[str, capped(MAX_STYLE_NAME_CHARS)] | None = None
    script_args: list[ScriptValue] = Field(default_factory=list, max_length=MAX_SCRIPT_ARGS)
    alwayson_scripts: dict[Annotated[str, capped(MAX_STYLE_NAME_CHARS)], AlwaysOnArgs] = Field(
        default_factory=dict, max_length=MAX_ALWAYSON)
    override_settings: dict[str, Any] = Field(default_factory=dict)
    override_settings_restore_afterwards: bool = True
    notes: list[str] = Field(default_factory=list, description="front-end notes carried into the result info")

    @field_validator("script_name")
    @classmethod
    def _no_script(cls, value: str | None) -> str | None:
        return None if value is None or value.strip() in ("", "None") else value

    @field_validator("script_args", "alwayson_scripts", mode="before")
    @classmethod
    def _few_stored_images(cls, value: Any) -> Any:
        return check_stored_images(value)

    @field_validator("cfg_scale", "subseed_strength", "eta", "hr_scale", "denoising_strength", "refiner_switch_at")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value

    @field_validator("prompt", "negative_prompt", "hr_prompt", "hr_negative_prompt", "styles")
    @classmethod
    def _unicode_text(cls, value: str | list[str]) -> str | list[str]:
        for text in [value] if isinstance(value, str) else value:
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:  # a lone surrogate (JSON "\ud800") would fail every later step
                raise ValueError("holds a lone surrogate (like \\ud800): not valid Unicode text") from None
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

    @field_validator("hr_checkpoint_name", "hr_sampler_name", "hr_scheduler", mode="before")
    @classmethod
    def _same_when_empty(cls, value: Any, info: Any) -> Any:
        same = {"hr_checkpoint_name": USE_SAME_CHECKPOINT, "hr_sampler_name": USE_SAME_SAMPLER,
                "hr_scheduler": USE_SAME_SCHEDULER}[info.field_name]
        return same if value in (None, "") else value

    @field_validator("refiner_checkpoint")
    @classmethod
    def _no_refiner(cls, value: str | None) -> str | None:
        return None if value is None or value.strip() in _NO_REFINER else value

    @model_validator(mode="after")
    def _hires_settings(self) -> "GenerationRequest":
        # Checked only when hires fix is on: clients send every field, A1111 ignores them otherwise.
        if not self.enable_hr:
            return self
        # Built-in names are made canonical here; a model upscaler's name is checked against the
        # studio's catalog where the request meets it (the API, the engine), not in this pure model.
        wanted = " ".join(str(self.hr_upscaler or upscalers.DEFAULT_LATENT_MODE).split())
        self.hr_upscaler = upscalers.find_upscaler(wanted) or wanted
        if self.hr_sampler_name != USE_SAME_SAMPLER:
            found = samplers.split_combined_name(self.hr_sampler_name)
            if found is None:
                raise ValueError(f"hires fix: unknown sampler {self.hr_sampler_name!r}")
            spec, suffix = found
            self.hr_sampler_name = spec.name
            if suffix and self.hr_scheduler == USE_SAME_SCHEDULER:
                self.hr_scheduler = suffix  # "LMS Karras" → LMS + Karras, as for the first pass
        sampler, schedule = self.hires_sampler
        if self.hr_scheduler != USE_SAME_SCHEDULER:
            try:  # a schedule named for the hires pass must work with its sampler
                samplers.resolve(sampler, schedule)
            except samplers.UnknownSampler as e:
                raise ValueError(f"hires fix: {e}") from None
        if sampler == "PLMS" and self.hires_steps[1] > 0:
            raise ValueError("hires fix: PLMS cannot start part-way through its schedule (A1111 does not offer it "
                             "for img2img either); choose another hires sampler")
        width, height = self.hires_size
        if max(width, height) > MAX_SIZE or min(width, height) < MIN_SIZE:
            raise ValueError(f"hires fix would render {width}x{height}; each side must be {MIN_SIZE} to {MAX_SIZE}")
        return self

    @model_validator(mode="after")
    def _img2img_batch(self) -> "GenerationRequest":
        if self.img2img is None:
            return self
        if self.sampler_name == "PLMS":
            raise ValueError("img2img: PLMS cannot start part-way through its schedule (A1111 does not offer it "
                             "for img2img either); choose another sampler")
        count = len(self.img2img.init_images)
        if count > 1:  # A1111: several init images make one batch of them
            if count > self.batch_size:
                raise ValueError(f"img2img: {count} init images, but the batch size is {self.batch_size}; "
                                 "send at most batch size images, or one for the whole batch")
            self.batch_size = count
        outpaint = self.img2img.outpaint
        if outpaint is not None and outpaint.grows and self.enable_hr:
            raise ValueError("outpaint with hires fix is not supported: outpaint first, then upscale the result")
        width, height = self.render_size
        if max(width, height) > MAX_SIZE:
            raise ValueError(f"outpaint would render {width}x{height}; each side may be at most {MAX_SIZE}")
        return self

    @model_validator(mode="after")
    def _finite_network_weights(self) -> "GenerationRequest":
        for text in (self.prompt, self.negative_prompt, self.hr_prompt, self.hr_negative_prompt):
            for ref in extract_extra_networks(text)[1]:
                for arg in ref.args:
                    value = str(arg).split("=", 1)[-1].strip()
                    try:
                        number = float(value)
                    except ValueError:
                        continue  # not a number at all: the engine reports it and ignores the tag
                    if not math.isfinite(number):
                        raise ValueError(f"<{ref.kind}:{ref.name}:...>: weight {value!r} is not a finite number")
        return self

    @property
    def image_count(self) -> int:
        return self.batch_size * self.n_iter

    @property
    def render_size(self) -> tuple[int, int]:
        """(width, height) of the first pass: the request's size, grown by outpainting (multiples of 8)."""
        outpaint = self.img2img.outpaint if self.img2img is not None else None
        if outpaint is None or not outpaint.grows:
            return self.width, self.height
        return (-(-(self.width + outpaint.left + outpaint.right) // 8) * 8,
                -(-(self.height + outpaint.up + outpaint.down) // 8) * 8)

    @property
    def hires_sampler(self) -> tuple[str, str]:
        """(sampler, schedule type) of the hires pass: the first pass's unless named (A1111's rule).

        When only the sampler is changed and it cannot run the first pass's schedule type (LCM
        with Karras), its own default (Automatic) is used.
        """
        sampler = self.sampler_name if self.hr_sampler_name == USE_SAME_SAMPLER else self.hr_sampler_name
        if self.hr_scheduler != USE_SAME_SCHEDULER:
            return sampler, self.hr_scheduler
        try:
            samplers.resolve(sampler, self.scheduler)
        except samplers.UnknownSampler:
            return sampler, "Automatic"
        return sampler, self.scheduler

    @property
    def hires_steps(self) -> tuple[int, int]:
        """(schedule length, first step) of the hires pass, as A1111's ``setup_img2img_steps`` with
        explicit steps: ``hr_second_pass_steps or steps`` steps run at the end of a schedule of
        ``int(steps / min(d, 0.999))``; denoising 0 runs none."""
        wanted = self.hr_second_pass_steps or self.steps
        if self.denoising_strength <= 0:
            return wanted, wanted
        # Capped at the models' 1000 training timesteps (a tiny strength would ask for more).
        steps = min(MAX_SCHEDULE_STEPS, int(wanted / min(self.denoising_strength, 0.999)))
        return steps, steps - wanted

    @property
    def hires_upscale_to(self) -> tuple[int, int]:
        """A1111's hires target before cropping: (width, height) the first pass is upscaled to."""
        w, h = self.width, self.height
        rx, ry = self.hr_resize_x, self.hr_resize_y
        if rx == 0 and ry == 0:
            return int(w * self.hr_scale), int(h * self.hr_scale)
        if ry == 0:
            return rx, rx * h // w
        if rx == 0:
            return ry * w // h, ry
        # Both given: scale to cover the box, keeping the aspect ratio; the excess is cropped.
        return (rx, rx * h // w) if w / h < rx / ry else (ry * w // h, ry)

    @property
    def hires_crop(self) -> tuple[int, int]:
        """Latent cells to crop (x, y) to reach hr_resize_x × hr_resize_y exactly."""
        if self.hr_resize_x == 0 or self.hr_resize_y == 0:
            return 0, 0
        to_x, to_y = self.hires_upscale_to
        return (to_x - self.hr_resize_x) // LATENT_SCALE, (to_y - self.hr_resize_y) // LATENT_SCALE

    @property
    def hires_size(self) -> tuple[int, int]:
        """The final image size with hires fix (multiples of 8, as the latents are)."""
        to_x, to_y = self.hires_upscale_to
        crop_x, crop_y = self.hires_crop
        return (to_x // LATENT_SCALE - crop_x) * LATENT_SCALE, (to_y // LATENT_SCALE - crop_y) * LATENT_SCALE
