"""One batch of a job: its passes and stages run in order, then the latents are decoded.

Images of the batch with different prompts (scripts may give each image its own) are sampled
in groups of equal prompts, each group through all passes; the batch is put back together in
order before ``after_decode``.

    txt2img pass:  noise → base stage [→ refiner stage from the switch step]   (one sampling run)
    img2img pass:  encode the init images → noise to the start step → base stage [→ refiner stage]
                   (inpainting: the latent mask blended at every step, the original laid over at the end)
    hires pass:    enlarge → noise to the start step → hires stage [→ refiner stage]

A stage stopped early (interrupt, skip) ends the batch: the images are those of the last pass
that finished, or, when none had, the partly denoised latents of the first pass (as A1111).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from PIL import Image

from webui import upscalers
from webui.engine import hires, img2img, vae
from webui.engine.callbacks import BatchStart, Callbacks, DecodedBatch, StageContext
from webui.engine.denoiser import Denoiser, sdxl_size_conditions
from webui.engine.loop import denoise
from webui.engine.noise import LATENT_SCALE, batch_noise
from webui.engine.plan import GenerationPlan, PassPlan, Stage
from webui.engine.preparation import Preparation
from webui.engine.records import BatchFacts
from webui.engine.sampling import SamplingRun, start_run
from webui.models import configs
from webui.models.catalog import ModelFile
from webui.models.manager import ActiveModel, ModelSession
from webui.upscaling import Upscalers


@dataclass
class BatchOutcome:
    images: list[Image.Image]
    facts: BatchFacts
    stopped: bool
    prompts: list[tuple[str, str]]  # (prompt, negative) each image was made from
    positions: list[int]  # each image's position in the batch (an interrupt may leave some out)


@dataclass
class _Sampled:
    """Some images of a batch, decoded: what one group of equal prompts gave."""

    images: list[Image.Image]
    facts: BatchFacts
    stopped: bool
    context: StageContext


@dataclass
class _Finished:
    """A pass that ran to its end: its latents, the model that finished it, decoded images if any."""

    latents: torch.Tensor
    model: ActiveModel
    images: list[Image.Image] | None = None


class BatchRunner:
    """Runs the batches of one plan inside a model session."""

    def __init__(self, plan: GenerationPlan, models: ModelSession, main: ModelFile, prep: Preparation,
                 callbacks: Callbacks, upscalers: Upscalers | None = None):
        self.plan = plan
        self.upscalers = upscalers  # hires fix's model upscalers (webui.upscaling)
        self.models = models
        self.main = main
        self.prep = prep
        self.callbacks = callbacks

    def model_for(self, stage: Stage) -> ActiveModel:
        return self.models.get(stage.checkpoint or self.main, self.plan.vae)

    def run(self, iteration: int) -> BatchOutcome:
        """Batch ``iteration``: images with equal prompts are sampled together, in groups."""
        plan = self.plan
        seeds, subseeds = plan.batch(iteration)
        prompts = plan.prompts_of(iteration)
        start = BatchStart(iteration, seeds, subseeds, [p for p, _ in prompts], [n for _, n in prompts])
        self.callbacks.before_batch(start)
        prompts = list(zip(start.prompts, start.negative_prompts))
        if len(prompts) != len(seeds):
            raise ValueError(f"a batch callback left {len(prompts)} prompts for {len(seeds)} images")
        groups: dict[tuple[str, str], list[int]] = {}
        for position, pair in enumerate(prompts):
            groups.setdefault(pair, []).append(position)
        images: list[Image.Image | None] = [None] * len(seeds)
        outcome: _Sampled | None = None
        for (prompt, negative), positions in groups.items():
            outcome = self._sample(iteration, positions, plan.passes_for(prompt, negative))
            for position, image in zip(positions, outcome.images):
                images[position] = image
            if outcome.stopped:  # an interrupt: the groups not sampled yet are left out
                break
        assert outcome is not None
        made = [(i, image) for i, image in enumerate(images) if image is not None]
        decoded = DecodedBatch(outcome.context, [image for _, image in made])
        self.callbacks.after_decode(decoded)
        finished = [self._finish(i, image) for (i, _), image in zip(made, decoded.images)]
        return BatchOutcome(finished, outcome.facts, outcome.stopped, [prompts[i] for i, _ in made],
                            [i for i, _ in made])

    def _finish(self, position: int, image: Image.Image) -> Image.Image:
        return image if self.plan.init is None else self.plan.init.finish(position, image)

    def _sample(self, iteration: int, positions: list[int], passes: tuple[PassPlan, ...]) -> _Sampled:
        """The images at ``positions`` of a batch, sampled through ``passes`` and decoded."""
        plan = self.plan
        all_seeds, all_subseeds = plan.batch(iteration)
        seeds = tuple(all_seeds[i] for i in positions)
        subseeds = tuple(all_subseeds[i] for i in positions)
        finished: _Finished | None = None
        committed = current = BatchFacts()  # what the finished passes did / what has run so far
        context: StageContext | None = None  # the stage that ran last
        steps_before = 0
        for index, pass_plan in enumerate(passes):
            stages = plan.stages_of(index)
            start = None
            if finished is not None and finished.images is None and not upscalers.is_latent(pass_plan.upscaler or ""):
                # Decode with the model that made the latents, before another one takes the device.
                finished.images = self._decode(finished.model, finished.latents, context)
            model = self.model_for(stages[0]) if stages else self._active(finished)
            init = None
            if finished is not None:
                start = self._enlarge(finished, pass_plan, model)
            elif plan.init is not None:
                init = img2img.init_latents(model, plan.init, list(seeds), pass_plan.width, pass_plan.height,
                                            positions)
                start = init.latents
            if pass_plan.run_steps == 0:  # hires fix at denoising 0: the enlarged first pass as it is
                finished = _Finished(start if start is not None else finished.latents, model)
                committed = current = replace(current, hires=index > 0)
                continue
            run = start_run(
                configs.scheduler_config(model.spec), pass_plan.sampler, pass_plan.schedule, pass_plan.steps,
                seeds, device=model.device, eta=plan.request.eta, first_step=pass_plan.first_step,
                family=model.spec.family,
            )
            noise = self._noise(pass_plan, seeds, subseeds, model)
            if init is not None and plan.noise_multiplier != 1.0:
                noise = noise * plan.noise_multiplier
            latents = run.initial_latents(noise, start)
            blend = init.blend() if init is not None else None
            callbacks = Callbacks([*self.callbacks, blend]) if blend is not None else self.callbacks
            switch = run.run_steps
            if any(stage.until_switch for stage in stages):
                switch = run.switch_step(plan.request.refiner_switch_at,
                                         bool(plan.options.get("refiner_switch_by_sample_steps", False)))
            for stage in stages:
                end = run.index_of_step(switch) if stage.until_switch else run.end_index
                if stage.from_switch and switch >= run.run_steps or stage.until_switch and switch == 0:
                    continue  # the refiner never takes over, or takes over from the start
                model = self.model_for(stage)
                context = StageContext(
                    kind=stage.kind, model=model, run=run, latents=latents, seeds=tuple(seeds),
                    iteration=iteration, iterations=plan.iterations, steps_before=steps_before,
                    steps_total=plan.steps_per_batch,
                )
                denoiser = self._denoiser(model, pass_plan, run, len(seeds), init)
                with callbacks.patch_models(context):
                    callbacks.before_loop(context)
                    denoise(context, denoiser, callbacks, end)
                    callbacks.after_stage(context)
                latents = context.latents
                current = current.after(stage, model.file)
                if context.stopped:
                    if finished is None:  # nothing finished: the partly denoised first pass, as A1111
                        return _Sampled(self._final(_Finished(latents, model), context), current, True, context)
                    return _Sampled(self._final(finished, context), committed, True, context)
            steps_before += pass_plan.run_steps
            finished = _Finished(latents, model)
            committed = current = replace(current, hires=index > 0)
        assert finished is not None and context is not None
        return _Sampled(self._final(finished, context), committed, False, context)

    # --- pieces --------------------------------------------------------------------------------

    def _active(self, finished: _Finished | None) -> ActiveModel:
        assert finished is not None, "a pass without stages needs a previous pass"
        return self.models.get(finished.model.file, self.plan.vae)

    def _noise(self, plan: PassPlan, seeds, subseeds, model: ActiveModel) -> torch.Tensor:
        req = self.plan.request
        shape = (model.pipe.vae.config.latent_channels, plan.height // LATENT_SCALE, plan.width // LATENT_SCALE)
        resize_from = None
        if req.seed_resize_from_w > 0 and req.seed_resize_from_h > 0:
            resize_from = (req.seed_resize_from_w, req.seed_resize_from_h)
        noise = batch_noise(shape, list(seeds), list(subseeds), req.subseed_strength, resize_from)
        return noise.to(model.device, model.pipe.unet.dtype)

    def _denoiser(self, model: ActiveModel, plan: PassPlan, run: SamplingRun, images: int,
                  init: img2img.InitLatents | None = None) -> Denoiser:
        prompts = self.prep.prompts(model, plan, self.plan.clip_skip)
        spec, options = model.spec, self.plan.options
        sizes = None
        if spec.is_sdxl:
            aesthetic = None
            if spec.family == "sdxl-refiner":
                aesthetic = (float(options["sdxl_refiner_high_aesthetic_score"]),
                             float(options["sdxl_refiner_low_aesthetic_score"]))
            # The hires pass conditions on the size it was enlarged to, as A1111's.
            width, height = plan.upscale_to if plan.kind == "hires" else (plan.width, plan.height)
            sizes = sdxl_size_conditions(height, width, aesthetic=aesthetic)
        conditioning = None
        if spec.is_inpaint:
            conditioning = (init.conditioning(model) if init is not None
                            else vae.inpaint_conditioning(model, plan.height, plan.width, images, run.generators[0]))
        return Denoiser(model.pipe.unet, prompts, self.plan.request.cfg_scale, images, device=model.device,
                        sizes=sizes, image_conditioning=conditioning)

    def _enlarge(self, finished: _Finished, plan: PassPlan, model: ActiveModel) -> torch.Tensor:
        """The previous pass at this pass's size; pixels are encoded by the model of this pass."""
        assert plan.upscaler is not None
        if upscalers.is_latent(plan.upscaler):
            return hires.enlarge_latents(finished.latents.to(model.device), plan)
        assert finished.images is not None
        tiling = (int(self.plan.options["ESRGAN_tile"]), int(self.plan.options["ESRGAN_tile_overlap"]))
        return hires.enlarge_images(model, finished.images, plan, self.upscalers, tiling)

    def _decode(self, model: ActiveModel, latents: torch.Tensor, context: StageContext | None) -> list[Image.Image]:
        """Decode inside the callbacks' model patches (tiling must reach the VAE too)."""
        model = self.models.get(model.file, self.plan.vae)  # it may have left the device meanwhile
        assert context is not None
        if context.model is not model:
            context = replace(context, model=model, latents=latents)
        with self.callbacks.patch_models(context):
            return vae.decode(model, latents.to(model.device))

    def _final(self, finished: _Finished, context: StageContext | None) -> list[Image.Image]:
        """The images: decoded, unless the pixel upscaler already did."""
        return list(finished.images or self._decode(finished.model, finished.latents, context))
