"""``p`` and ``Processed``: a job as scripts see it, with A1111's attribute names.

:class:`Processing` holds a request's fields under A1111's names (``prompt``, ``steps``,
``cfg_scale``, ``init_images``, ``image_mask``, ``inpainting_fill``...) plus what a job works
out on the way (``all_prompts``, ``all_seeds``, the current batch's ``prompts`` and ``seeds``,
``extra_generation_params``). Scripts change it; :meth:`Processing.to_request` turns it back
into a validated :class:`GenerationRequest` for the engine. :class:`Processed` is what
``process_images`` returns.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field, fields
from typing import Any

from PIL import Image

from webui.request import GenerationRequest
from webui.request_img2img import (
    MASKED_CONTENT,
    Img2ImgInput,
    InpaintSettings,
    OutpaintSettings,
)
from webui.result import GeneratedImage, Result

# GenerationRequest fields that p carries under the same name.
_SHARED = ("prompt", "negative_prompt", "styles", "seed", "subseed", "subseed_strength", "seed_resize_from_w",
           "seed_resize_from_h", "sampler_name", "scheduler", "steps", "cfg_scale", "width", "height", "batch_size",
           "n_iter", "eta", "tiling", "enable_hr", "hr_scale", "hr_resize_x", "hr_resize_y", "hr_upscaler",
           "hr_second_pass_steps", "denoising_strength", "hr_checkpoint_name", "hr_sampler_name", "hr_scheduler",
           "hr_prompt", "hr_negative_prompt", "refiner_checkpoint", "refiner_switch_at", "override_settings",
           "override_settings_restore_afterwards", "clip_skip")


@dataclass(eq=False)
class Processing:
    """One job's settings as scripts read and change them (A1111's ``StableDiffusionProcessing``)."""

    prompt: str = ""
    negative_prompt: str = ""
    styles: list[str] = field(default_factory=list)
    seed: int = -1
    subseed: int = -1
    subseed_strength: float = 0.0
    seed_resize_from_w: int = -1
    seed_resize_from_h: int = -1
    sampler_name: str = "Euler a"
    scheduler: str = "Automatic"
    steps: int = 20
    cfg_scale: float = 7.0
    width: int = 512
    height: int = 512
    batch_size: int = 1
    n_iter: int = 1
    eta: float | None = None
    tiling: bool = False
    clip_skip: int | None = None
    enable_hr: bool = False
    hr_scale: float = 2.0
    hr_resize_x: int = 0
    hr_resize_y: int = 0
    hr_upscaler: str = "Latent"
    hr_second_pass_steps: int = 0
    denoising_strength: float = 0.75
    hr_checkpoint_name: str = "Use same checkpoint"
    hr_sampler_name: str = "Use same sampler"
    hr_scheduler: str = "Use same scheduler"
    hr_prompt: str = ""
    hr_negative_prompt: str = ""
    refiner_checkpoint: str | None = None
    refiner_switch_at: float = 0.8
    override_settings: dict[str, Any] = field(default_factory=dict)
    override_settings_restore_afterwards: bool = True
    do_not_save_samples: bool = False
    do_not_save_grid: bool = False
    # img2img (set init_images to make the job img2img; image_mask to inpaint)
    init_images: list[Image.Image] = field(default_factory=list)
    image_mask: Image.Image | None = None
    resize_mode: int = 0
    mask_blur_x: int = 4
    mask_blur_y: int = 4
    inpainting_fill: int = 1  # 0 fill, 1 original, 2 latent noise, 3 latent nothing
    inpaint_full_res: bool = False  # "Only masked"
    inpaint_full_res_padding: int = 32
    inpainting_mask_invert: int = 0
    initial_noise_multiplier: float | None = None
    outpaint: OutpaintSettings | None = None  # grow the canvas (left/right/up/down, fill method, blur)
    # Worked out by process_images (None until then); scripts may rewrite them in process / process_batch.
    all_prompts: list[str] | None = None
    all_negative_prompts: list[str] | None = None
    all_seeds: list[int] | None = None
    all_subseeds: list[int] | None = None
    prompts: list[str] = field(default_factory=list)  # the current batch's
    negative_prompts: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    subseeds: list[int] = field(default_factory=list)
    iteration: int = 0
    extra_generation_params: dict[str, Any] = field(default_factory=dict)
    comments: dict[str, Any] = field(default_factory=dict)
    # Scripts of the job (None for a p made by a script: process_images runs no hooks then).
    scripts: Any = None
    script_args: list[Any] = field(default_factory=list)
    user: str | None = None
    outpath_samples: str | None = None
    outpath_grids: str | None = None
    is_api: bool = False
    # The request this came from (img2img extras such as outpaint and the batch folder are kept).
    source: GenerationRequest | None = field(default=None, repr=False)

    @property
    def is_img2img(self) -> bool:
        return bool(self.init_images)

    @property
    def mask_blur(self) -> int:
        return self.mask_blur_x

    @mask_blur.setter
    def mask_blur(self, value: int) -> None:
        self.mask_blur_x = self.mask_blur_y = int(value)

    @property
    def mask(self) -> Image.Image | None:  # A1111's constructor argument name
        return self.image_mask

    @mask.setter
    def mask(self, value: Image.Image | None) -> None:
        self.image_mask = value

    @classmethod
    def from_request(cls, request: GenerationRequest, *, user: str | None = None) -> Processing:
        p = cls(**{name: getattr(request, name) for name in _SHARED}, user=user, source=request)
        p.styles = list(request.styles)
        p.override_settings = dict(request.override_settings)
        p.do_not_save_samples = not request.save_images
        p.do_not_save_grid = not request.save_grid
        settings = request.img2img
        if settings is not None:
            p.init_images = list(settings.init_images)
            p.resize_mode = settings.resize_mode
            p.initial_noise_multiplier = settings.initial_noise_multiplier
            p.outpaint = settings.outpaint
            if settings.inpaint is not None:
                inpaint = settings.inpaint
                p.image_mask = inpaint.mask
                p.mask_blur_x, p.mask_blur_y = inpaint.blur_x, inpaint.blur_y
                p.inpainting_fill = MASKED_CONTENT.index(inpaint.masked_content)
                p.inpaint_full_res = inpaint.only_masked
                p.inpaint_full_res_padding = inpaint.padding
                p.inpainting_mask_invert = int(inpaint.invert)
        return p

    def to_request(self) -> GenerationRequest:
        """The engine's request for this p (pydantic's ValidationError when a script set a bad value)."""
        values = {name: getattr(self, name) for name in _SHARED}
        source = self.source
        return GenerationRequest(
            **values,
            save_images=not self.do_not_save_samples,
            save_grid=not self.do_not_save_grid,
            img2img=self._img2img(),
            notes=list(source.notes) if source is not None else [],
        )

    def _img2img(self) -> Img2ImgInput | None:
        if not self.init_images:
            return None
        kept = self.source.img2img if self.source is not None else None
        inpaint = None
        if self.image_mask is not None:
            previous = kept.inpaint if kept is not None else None
            inpaint = InpaintSettings(
                mask=self.image_mask, blur_x=self.mask_blur_x, blur_y=self.mask_blur_y,
                invert=bool(self.inpainting_mask_invert), masked_content=MASKED_CONTENT[self.inpainting_fill],
                only_masked=self.inpaint_full_res, padding=self.inpaint_full_res_padding,
                round=previous.round if previous is not None else True,
            )
        return Img2ImgInput(
            init_images=list(self.init_images), resize_mode=self.resize_mode,
            initial_noise_multiplier=self.initial_noise_multiplier, inpaint=inpaint,
            outpaint=self.outpaint,
            output_dir=kept.output_dir if kept is not None else None,
            output_name=kept.output_name if kept is not None else None,
        )

    def __deepcopy__(self, memo: dict) -> Processing:
        """A deep copy that shares the job's scripts and source request (scripts copy ``p`` to run
        variations of it; the script set holds locks and is the job's, not the copy's)."""
        clone = copy.copy(self)
        memo[id(self)] = clone
        for name, value in vars(self).items():
            if name not in ("scripts", "source"):
                setattr(clone, name, copy.deepcopy(value, memo))
        return clone

    def __getattr__(self, name: str) -> Any:
        # Only reached for names that are not fields: say what is missing instead of a bare error.
        raise AttributeError(f"p.{name} is not provided by SD Studio (A1111's processing object attributes that "
                             "are: docs/extensions.md, 'The p object')")


FIELD_NAMES = frozenset(f.name for f in fields(Processing))


@dataclass(eq=False)
class Processed:
    """What ``process_images`` returns (A1111's names)."""

    p: Processing
    images: list[Image.Image]
    infotexts: list[str]
    seed: int
    all_seeds: list[int]
    subseed: int
    all_subseeds: list[int]
    info: str  # the first image's infotext, as A1111
    all_prompts: list[str]
    all_negative_prompts: list[str]
    js_info: dict[str, Any] = field(default_factory=dict)
    index_of_first_image: int = 0
    comments: str = ""
    # The engine's result behind these images (their saved files), when they came from one.
    generated: list[GeneratedImage] = field(default_factory=list, repr=False)
    grid: GeneratedImage | None = field(default=None, repr=False)
    interrupted: bool = False
    warnings: list[str] = field(default_factory=list)

    @property
    def prompt(self) -> str:
        return self.all_prompts[0] if self.all_prompts else self.p.prompt

    @property
    def negative_prompt(self) -> str:
        return self.all_negative_prompts[0] if self.all_negative_prompts else self.p.negative_prompt

    @property
    def width(self) -> int:
        return self.p.width

    @property
    def height(self) -> int:
        return self.p.height

    @property
    def extra_generation_params(self) -> dict[str, Any]:
        return dict(self.js_info.get("extra_generation_params") or {})

    def js(self) -> str:
        """The API's ``info`` object as JSON text (A1111's ``Processed.js()``)."""
        return json.dumps(self.js_info, default=str)

    @classmethod
    def from_result(cls, p: Processing, result: Result) -> Processed:
        info = result.info
        generated = list(result.images)
        return cls(
            p=p, images=[g.load() for g in generated], infotexts=[g.infotext for g in generated],
            seed=generated[0].seed if generated else int(info.get("seed", -1)),
            all_seeds=[g.seed for g in generated], subseed=generated[0].subseed if generated else -1,
            all_subseeds=[g.subseed for g in generated], info=generated[0].infotext if generated else "",
            all_prompts=list(info.get("all_prompts") or []), all_negative_prompts=list(info.get("all_negative_prompts") or []),
            js_info=dict(info), generated=generated, grid=result.grid, interrupted=result.interrupted,
            warnings=list(result.warnings),
        )

    def to_result(self, notes: list[str]) -> Result:
        """The job's result: these images (with their saved files when the engine made them)."""
        by_image = {id(g.image): g for g in self.generated if g.image is not None}
        images = []
        for i, image in enumerate(self.images):
            known = by_image.get(id(image))
            if known is None:
                seed = self.all_seeds[i] if i < len(self.all_seeds) else self.seed
                subseed = self.all_subseeds[i] if i < len(self.all_subseeds) else self.subseed
                infotext = self.infotexts[i] if i < len(self.infotexts) else self.info
                known = GeneratedImage(image, seed, subseed, infotext)
            images.append(known)
        info = dict(self.js_info)
        info["infotexts"] = [g.infotext for g in images]
        info["notes"] = [*info.get("notes", []), *notes]
        info["warnings"] = [*self.warnings, *notes]
        info["index_of_first_image"] = self.index_of_first_image
        grid = self.grid if self.grid is not None and len(images) == len(self.generated) else None
        return Result(images, info, grid, self.interrupted, warnings=[*self.warnings, *notes])
