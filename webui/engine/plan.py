"""``build_plan``: a GenerationRequest and the options of the moment → one frozen GenerationPlan.

The plan is built once, when the job starts: seeds, the styled prompts and their extra-network
tags, the sampling passes (txt2img, then hires fix), the stages that run them (base, hires,
refiner, each naming its checkpoint), and the loop callbacks. Options are read here and
nowhere else during the job.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Mapping, Sequence

from webui.engine import init_image
from webui.engine.img2img import img2img_steps
from webui.engine.init_image import PreparedInput
from webui.prompts.parser import ExtraNetworkRef, extract_extra_networks, strip_comments
from webui.request import USE_SAME_CHECKPOINT, GenerationRequest

StageKind = Literal["base", "hires", "refiner"]


@dataclass(frozen=True)
class PassPlan:
    """One sampling pass over a noise schedule: txt2img's or img2img's, or hires fix's second pass."""

    kind: Literal["txt2img", "img2img", "hires"]
    width: int
    height: int
    steps: int  # length of the noise schedule
    sampler: str
    schedule: str
    prompt: str  # what the encoder sees: styles applied, comments and network tags removed
    negative: str
    networks: tuple[ExtraNetworkRef, ...]
    first_step: int = 0  # a partial pass (img2img, hires) starts here, from the init images / previous pass
    upscaler: str | None = None  # hires: how the previous pass is enlarged
    upscale_to: tuple[int, int] = (0, 0)  # hires: the size it is enlarged to, before cropping
    crop: tuple[int, int] = (0, 0)  # hires: latent cells cut off (x, y) after enlarging

    @property
    def run_steps(self) -> int:
        """Sampling steps this pass takes; prompt schedules count these (A1111)."""
        return self.steps - self.first_step


@dataclass(frozen=True)
class Stage:
    """A span of one pass run by one model: the whole pass, or its part before / after the
    refiner's switch step (known once the pass's schedule is, see ``SamplingRun.switch_step``)."""

    kind: StageKind
    pass_index: int
    checkpoint: str | None  # None: the job's model
    until_switch: bool = False  # ends where the refiner takes over
    from_switch: bool = False  # starts there (the refiner)


@dataclass(frozen=True)
class JobAdditions:
    """What a front end running scripts adds to a request's job (see webui/plugins/).

    ``prompts`` / ``negative_prompts``: one styled prompt per image (A1111's ``all_prompts``),
    used as they are; ``seeds`` / ``subseeds``: one per image (``all_seeds``); ``extra_params``:
    infotext keys after the engine's own (``extra_generation_params``).
    """

    callbacks: tuple[object, ...] = ()
    prompts: tuple[str, ...] | None = None
    negative_prompts: tuple[str, ...] | None = None
    seeds: tuple[int, ...] | None = None
    subseeds: tuple[int, ...] | None = None
    extra_params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GenerationPlan:
    request: GenerationRequest
    options: Mapping[str, Any]  # the options snapshot taken when the job started
    seeds: tuple[int, ...]
    subseeds: tuple[int, ...]
    prompt: str  # the styled prompts as infotext records them (comments removed, tags kept)
    negative_prompt: str
    clip_skip: int
    checkpoint: str | None  # the job's model when the request overrides it
    keep_overrides: bool  # checkpoint / VAE overrides stay in effect after the job
    vae: str
    passes: tuple[PassPlan, ...]
    stages: tuple[Stage, ...]
    callbacks: tuple[object, ...] = ()
    init: PreparedInput | None = None  # img2img: the init images (and mask) made ready for the first pass
    noise_multiplier: float = 1.0  # img2img: A1111's initial noise multiplier
    image_prompts: tuple[tuple[str, str], ...] = ()  # (prompt, negative) per image; () = the plan's for all
    extra_params: Mapping[str, Any] = field(default_factory=dict)  # infotext keys added by scripts

    @property
    def batch_size(self) -> int:
        return self.request.batch_size

    @property
    def iterations(self) -> int:
        return self.request.n_iter

    def batch(self, iteration: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(seeds, subseeds) of batch ``iteration``."""
        window = slice(iteration * self.batch_size, (iteration + 1) * self.batch_size)
        return self.seeds[window], self.subseeds[window]

    def prompts_of(self, iteration: int) -> list[tuple[str, str]]:
        """(prompt, negative) of each image of batch ``iteration``."""
        count = len(self.batch(iteration)[0])
        if not self.image_prompts:
            return [(self.prompt, self.negative_prompt)] * count
        first = iteration * self.batch_size
        return list(self.image_prompts[first:first + count])

    def passes_for(self, prompt: str, negative: str) -> tuple[PassPlan, ...]:
        """The passes with another (styled) prompt: the first pass's, and hires fix's when it has
        none of its own (A1111: an empty hires prompt is the prompt)."""
        if (prompt, negative) == (self.prompt, self.negative_prompt):
            return self.passes
        text, negative_text, refs = _without_tags(prompt, negative)
        passes = []
        for plan in self.passes:
            if plan.kind != "hires" or not (self.request.hr_prompt or self.request.hr_negative_prompt):
                plan = replace(plan, prompt=text, negative=negative_text, networks=refs)
            passes.append(plan)
        return tuple(passes)

    def stages_of(self, pass_index: int) -> list[Stage]:
        return [s for s in self.stages if s.pass_index == pass_index]

    @property
    def steps_per_batch(self) -> int:
        return sum(p.run_steps for p in self.passes)


def build_plan(
    request: GenerationRequest,
    options: Mapping[str, Any],
    styles: Any = None,
    callbacks: Sequence[object] = (),
    additions: JobAdditions | None = None,
) -> GenerationPlan:
    """Decide everything the job will do. Raises ValueError for what cannot run (a style gone)."""
    req = request
    add = additions or JobAdditions()
    count = req.image_count
    overrides = req.override_settings

    prompt, negative = styled_prompts(req, options, styles)
    init = None
    if req.img2img is not None:
        init = init_image.prepare(req.img2img, req.width, req.height)
    passes = [_first_pass(req, prompt, negative, options)]
    if req.enable_hr:  # A1111: an empty hires prompt is the prompt; styles apply to both
        hr_prompt, hr_negative = _styled(req.hr_prompt or req.prompt, req.hr_negative_prompt or req.negative_prompt,
                                         req.styles, styles, options)
        passes.append(_hires_pass(req, hr_prompt, hr_negative))

    clip_skip = req.clip_skip or int(overrides.get("CLIP_stop_at_last_layers", options["CLIP_stop_at_last_layers"]))
    return GenerationPlan(
        request=req,
        options=options,
        seeds=_per_image(add.seeds, req.seed, count, "seeds"),
        subseeds=_per_image(add.subseeds, req.subseed, count, "subseeds"),
        prompt=prompt,
        negative_prompt=negative,
        clip_skip=clip_skip,
        checkpoint=overrides.get("sd_model_checkpoint"),
        keep_overrides=bool(overrides) and not req.override_settings_restore_afterwards,
        vae=str(overrides.get("sd_vae", options["sd_vae"])),
        passes=tuple(passes),
        stages=tuple(_stages(req, len(passes), str(options.get("hires_fix_refiner_pass", "second pass")))),
        callbacks=(*callbacks, *add.callbacks),
        init=init,
        noise_multiplier=_noise_multiplier(req, options),
        image_prompts=_image_prompts(add, prompt, negative, count),
        extra_params=dict(add.extra_params),
    )


def styled_prompts(req: GenerationRequest, options: Mapping[str, Any], styles: Any = None) -> tuple[str, str]:
    """The request's prompt and negative prompt with its styles applied and # comments removed."""
    return _styled(req.prompt, req.negative_prompt, req.styles, styles, options)


def _per_image(given: Sequence[int] | None, first: int, count: int, what: str) -> tuple[int, ...]:
    """Seeds of the job's images: given one per image, or ``first`` (-1: random) + i."""
    if given is not None:
        if len(given) < count:
            raise ValueError(f"{len(given)} {what} for {count} images")
        return tuple(int(s) % 2**32 for s in given[:count])
    start = first if first >= 0 else random.randrange(2**32 - 1)
    return tuple(start + i for i in range(count))


def _image_prompts(add: JobAdditions, prompt: str, negative: str, count: int) -> tuple[tuple[str, str], ...]:
    if add.prompts is None and add.negative_prompts is None:
        return ()
    prompts = list(add.prompts or ()) or [prompt] * count
    negatives = list(add.negative_prompts or ()) or [negative] * count
    if len(prompts) < count or len(negatives) < count:
        raise ValueError(f"{len(prompts)} prompts and {len(negatives)} negative prompts for {count} images")
    return tuple(zip(prompts[:count], negatives[:count]))


def _noise_multiplier(req: GenerationRequest, options: Mapping[str, Any]) -> float:
    if req.img2img is None:
        return 1.0
    if req.img2img.initial_noise_multiplier is not None:
        return req.img2img.initial_noise_multiplier
    return float(options.get("initial_noise_multiplier", 1.0))


def _styled(prompt: str, negative: str, names: Sequence[str], styles: Any, options: Mapping[str, Any]) -> tuple[str, str]:
    """Styles applied and # comments removed: the text infotext records, as A1111."""
    if names:
        if styles is None:
            raise ValueError("styles are not available in this engine")
        # Capped: a style edited into "{prompt}{prompt}" after the job was queued must not explode.
        prompt, negative = styles.apply(prompt, negative, list(names),
                                        max_chars=int(options.get("limit_prompt_chars", 200_000)))
    if options.get("enable_prompt_comments", True):
        prompt, negative = strip_comments(prompt), strip_comments(negative)
    return prompt, negative


def _without_tags(prompt: str, negative: str) -> tuple[str, str, tuple[ExtraNetworkRef, ...]]:
    prompt, refs = extract_extra_networks(prompt)
    negative, negative_refs = extract_extra_networks(negative)
    return prompt, negative, tuple(refs + negative_refs)


def _first_pass(req: GenerationRequest, prompt: str, negative: str, options: Mapping[str, Any]) -> PassPlan:
    text, negative_text, refs = _without_tags(prompt, negative)
    width, height = req.render_size
    if req.img2img is None:
        return PassPlan("txt2img", width, height, req.steps, req.sampler_name, req.scheduler, text, negative_text, refs)
    steps, first_step = img2img_steps(req.steps, req.denoising_strength, bool(options.get("img2img_fix_steps", False)))
    return PassPlan("img2img", width, height, steps, req.sampler_name, req.scheduler, text, negative_text, refs,
                    first_step=first_step)


def _hires_pass(req: GenerationRequest, prompt: str, negative: str) -> PassPlan:
    text, negative_text, refs = _without_tags(prompt, negative)
    sampler, schedule = req.hires_sampler
    steps, first_step = req.hires_steps
    width, height = req.hires_size
    return PassPlan("hires", width, height, steps, sampler, schedule, text, negative_text, refs,
                    first_step=first_step, upscaler=req.hr_upscaler, upscale_to=req.hires_upscale_to,
                    crop=req.hires_crop)


def _stages(req: GenerationRequest, passes: int, refiner_pass: str) -> list[Stage]:
    """Base (and hires) stages, split where the refiner takes over, as A1111's apply_refiner.

    Without hires fix the refiner joins the only pass; with it, ``refiner_pass`` says which. The
    hires pass runs on the hires checkpoint, else the job's (A1111 reloads it for the pass).
    """
    hires_checkpoint = None if req.hr_checkpoint_name == USE_SAME_CHECKPOINT else req.hr_checkpoint_name
    refiner = req.refiner_checkpoint
    joins = [refiner is not None and (passes == 1 or refiner_pass in ("first pass", "both passes")),
             refiner is not None and refiner_pass in ("second pass", "both passes")]
    stages: list[Stage] = []
    for index in range(passes):
        kind: StageKind = "base" if index == 0 else "hires"
        model = hires_checkpoint if index > 0 else None
        if joins[index]:
            stages += [Stage(kind, index, model, until_switch=True), Stage("refiner", index, refiner, from_switch=True)]
        else:
            stages.append(Stage(kind, index, model))
    return stages
