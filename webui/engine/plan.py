"""``build_plan``: a GenerationRequest and the options of the moment → one frozen GenerationPlan.

The plan is built once, when the job starts: seeds, the styled prompts and their extra-network
tags, the sampling passes (txt2img, then hires fix), the stages that run them (base, hires,
refiner, each naming its checkpoint), and the loop callbacks. Options are read here and
nowhere else during the job.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Literal, Mapping, Sequence

from webui.engine.sampling import first_step_for
from webui.prompts.parser import ExtraNetworkRef, extract_extra_networks, strip_comments
from webui.request import USE_SAME_CHECKPOINT, USE_SAME_SAMPLER, USE_SAME_SCHEDULER, GenerationRequest

StageKind = Literal["base", "hires", "refiner"]
REFINER_PASSES = ("first pass", "second pass", "both passes")  # A1111's hires_fix_refiner_pass


@dataclass(frozen=True)
class PassPlan:
    """One sampling pass over a noise schedule: txt2img's, or hires fix's second pass."""

    kind: Literal["txt2img", "hires"]
    width: int
    height: int
    steps: int
    sampler: str
    schedule: str
    prompt: str  # what the encoder sees: styles applied, comments and network tags removed
    negative: str
    networks: tuple[ExtraNetworkRef, ...]
    denoising_strength: float | None = None  # None: from pure noise
    upscaler: str | None = None  # hires: how the previous pass is enlarged
    crop: tuple[int, int] = (0, 0)  # hires: latent cells cut off (x, y) after enlarging

    @property
    def run_steps(self) -> int:
        """Sampling steps this pass takes (a partial pass runs the end of its schedule)."""
        if self.denoising_strength is None:
            return self.steps
        return self.steps - first_step_for(self.steps, self.denoising_strength)


@dataclass(frozen=True)
class Stage:
    """A span of one pass run by one model: sampling steps [start_step, end_step) of the pass."""

    kind: StageKind
    pass_index: int
    checkpoint: str | None  # None: the job's model
    start_step: int
    end_step: int


@dataclass(frozen=True)
class GenerationPlan:
    request: GenerationRequest
    options: Mapping[str, Any]  # the options snapshot taken when the job started
    seeds: tuple[int, ...]
    subseeds: tuple[int, ...]
    prompt: str  # the styled prompts as infotext records them (comments removed, tags kept)
    negative_prompt: str
    hr_prompt: str
    hr_negative_prompt: str
    clip_skip: int
    checkpoint: str | None  # the job's model when the request overrides it
    keep_checkpoint: bool  # a checkpoint override stays loaded after the job
    vae: str
    passes: tuple[PassPlan, ...]
    stages: tuple[Stage, ...]
    callbacks: tuple[object, ...] = ()

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

    def stages_of(self, pass_index: int) -> list[Stage]:
        return [s for s in self.stages if s.pass_index == pass_index]

    @property
    def steps_per_batch(self) -> int:
        return sum(p.run_steps for p in self.passes)

    @property
    def refiner(self) -> Stage | None:
        return next((s for s in self.stages if s.kind == "refiner"), None)


def build_plan(
    request: GenerationRequest,
    options: Mapping[str, Any],
    styles: Any = None,
    callbacks: Sequence[object] = (),
) -> GenerationPlan:
    """Decide everything the job will do. Raises ValueError for what cannot run (a style gone)."""
    req = request
    seed = req.seed if req.seed >= 0 else random.randrange(2**32 - 1)
    subseed = req.subseed if req.subseed >= 0 else random.randrange(2**32 - 1)
    count = req.image_count
    overrides = req.override_settings

    prompt, negative = _styled(req.prompt, req.negative_prompt, req.styles, styles, options)
    passes = [_txt2img_pass(req, prompt, negative)]
    hr_prompt, hr_negative = prompt, negative
    if req.enable_hr:
        hr_prompt, hr_negative = _styled(req.hr_prompt or req.prompt, req.hr_negative_prompt or req.negative_prompt,
                                         req.styles, styles, options)
        passes.append(_hires_pass(req, hr_prompt, hr_negative))

    clip_skip = req.clip_skip or int(overrides.get("CLIP_stop_at_last_layers", options["CLIP_stop_at_last_layers"]))
    checkpoint = overrides.get("sd_model_checkpoint")
    return GenerationPlan(
        request=req,
        options=options,
        seeds=tuple(seed + i for i in range(count)),
        subseeds=tuple(subseed + i for i in range(count)),
        prompt=prompt,
        negative_prompt=negative,
        hr_prompt=hr_prompt,
        hr_negative_prompt=hr_negative,
        clip_skip=clip_skip,
        checkpoint=checkpoint,
        keep_checkpoint=checkpoint is not None and not req.override_settings_restore_afterwards,
        vae=str(overrides.get("sd_vae", options["sd_vae"])),
        passes=tuple(passes),
        stages=tuple(_stages(req, passes, str(options.get("hires_fix_refiner_pass", "second pass")))),
        callbacks=tuple(callbacks),
    )


def _styled(prompt: str, negative: str, names: Sequence[str], styles: Any, options: Mapping[str, Any]) -> tuple[str, str]:
    """Styles applied and # comments removed: the text infotext records, as A1111."""
    if names:
        if styles is None:
            raise ValueError("styles are not available in this engine")
        prompt, negative = styles.apply(prompt, negative, list(names))
    if options.get("enable_prompt_comments", True):
        prompt, negative = strip_comments(prompt), strip_comments(negative)
    return prompt, negative


def _without_tags(prompt: str, negative: str) -> tuple[str, str, tuple[ExtraNetworkRef, ...]]:
    prompt, refs = extract_extra_networks(prompt)
    negative, negative_refs = extract_extra_networks(negative)
    return prompt, negative, tuple(refs + negative_refs)


def _txt2img_pass(req: GenerationRequest, prompt: str, negative: str) -> PassPlan:
    text, negative_text, refs = _without_tags(prompt, negative)
    return PassPlan("txt2img", req.width, req.height, req.steps, req.sampler_name, req.scheduler,
                    text, negative_text, refs)


def _hires_pass(req: GenerationRequest, prompt: str, negative: str) -> PassPlan:
    text, negative_text, refs = _without_tags(prompt, negative)
    same_sampler = req.hr_sampler_name == USE_SAME_SAMPLER
    sampler = req.sampler_name if same_sampler else req.hr_sampler_name
    # A sampler chosen for the hires pass brings its own default schedule unless one is named.
    schedule = req.hr_scheduler if req.hr_scheduler != USE_SAME_SCHEDULER else (req.scheduler if same_sampler else "Automatic")
    width, height = req.hires_size
    return PassPlan("hires", width, height, req.hr_second_pass_steps or req.steps, sampler, schedule,
                    text, negative_text, refs, denoising_strength=req.denoising_strength,
                    upscaler=req.hr_upscaler, crop=req.hires_crop)


def refiner_switch_step(run_steps: int, switch_at: float) -> int:
    """A1111's switch: the first step whose completed ratio is no longer below ``switch_at``."""
    return next(step for step in range(run_steps + 1) if run_steps == 0 or not step / run_steps < switch_at)


def _stages(req: GenerationRequest, passes: Sequence[PassPlan], refiner_pass: str) -> list[Stage]:
    hires_checkpoint = None if req.hr_checkpoint_name == USE_SAME_CHECKPOINT else req.hr_checkpoint_name
    refiner = req.refiner_checkpoint
    refine_first = refiner is not None and (len(passes) == 1 or refiner_pass in ("first pass", "both passes"))
    refine_second = refiner is not None and len(passes) > 1 and refiner_pass in ("second pass", "both passes")
    stages: list[Stage] = []
    refined = False  # once the refiner took over, it stays (A1111 keeps it loaded)
    for index, plan in enumerate(passes):
        kind: StageKind = "base" if index == 0 else "hires"
        model = refiner if refined else (hires_checkpoint if index > 0 else None)
        if index > 0 and hires_checkpoint is not None:
            model = hires_checkpoint
        steps = plan.run_steps
        switch = steps
        if (refine_first if index == 0 else refine_second) and not (refined and model == refiner):
            switch = refiner_switch_step(steps, req.refiner_switch_at)
        if switch > 0:
            stages.append(Stage(kind, index, model, 0, switch))
        if switch < steps:
            stages.append(Stage("refiner", index, refiner, switch, steps))
            refined = True
    return stages
