"""txt2img: GenerationRequest in, Result out; progress and previews through the job context.

Pure engine code: no Gradio, no FastAPI. The pipeline comes from the model manager; prompt
embeddings from our own encoder; the scheduler from the A1111 sampler table; the noise from
A1111-style seeds, so the same request on CPU gives the same image bit for bit.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import torch
from PIL import Image

from webui import infotext, samplers
from webui.engine.noise import LATENT_SCALE, batch_noise
from webui.engine.preview import latents_to_preview
from webui.models import configs
from webui.models.manager import ActiveModel, ModelManager
from webui.outputs import dated_folder, make_grid, save_png
from webui.prompts.conditioning import PromptPlan, build_plan, scheduled_unet
from webui.prompts.encoder import PromptEncoder
from webui.prompts.parser import extract_extra_networks, strip_comments
from webui.request import GenerationRequest
from webui.settings import Options, Paths
from webui.version import VERSION

log = logging.getLogger(__name__)


class _NoProgress:
    """Stand-in job context for direct calls (tests, scripts) outside the queue."""

    interrupted = False
    skipped = False

    def report(self, *args: Any, **kwargs: Any) -> None:
        pass

    def preview_wanted(self, step: int) -> bool:
        return False

    def consume_skip(self) -> bool:
        return False


@dataclass
class GeneratedImage:
    image: Image.Image
    seed: int
    subseed: int
    infotext: str
    path: Path | None = None


@dataclass
class Result:
    """What a finished job hands back to the UI and the API."""

    images: list[GeneratedImage]
    info: dict[str, Any]
    grid: GeneratedImage | None = None
    interrupted: bool = False
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def infotexts(self) -> list[str]:
        return [g.infotext for g in self.images]


class Txt2ImgEngine:
    def __init__(self, manager: ModelManager, options: Options, paths: Paths, *, styles: Any = None, networks: Any = None):
        self.manager = manager
        self.options = options
        self.paths = paths
        self.styles = styles  # webui.styles.StyleDatabase
        self.networks = networks  # webui.networks.catalog.NetworkCatalog

    def run(self, request: GenerationRequest, ctx: Any = None) -> Result:
        ctx = ctx or _NoProgress()
        with self._overrides(request) as clip_skip, self.manager.use() as model:
            return self._generate(model, request, ctx, clip_skip)

    @contextlib.contextmanager
    def _overrides(self, request: GenerationRequest) -> Iterator[int]:
        """Apply per-request setting overrides (checkpoint, VAE, clip skip), restoring them after."""
        overrides = request.override_settings
        restore: dict[str, Any] = {}
        finished = False
        load = lambda title: self.manager.load(title, self.options.sd_vae)  # noqa: E731 - keep the chosen VAE
        try:
            # Inside the try: when a later override fails (e.g. a broken VAE), earlier ones are undone.
            for key, apply in (("sd_model_checkpoint", load), ("sd_vae", self.manager.set_vae)):
                if key in overrides and overrides[key] != self.options.get(key):
                    restore[key] = self.options.get(key)
                    apply(overrides[key])
            clip_skip = request.clip_skip or int(overrides.get("CLIP_stop_at_last_layers", self.options.CLIP_stop_at_last_layers))
            yield clip_skip
            finished = True
        finally:
            if request.override_settings_restore_afterwards or not finished:
                if "sd_model_checkpoint" in restore:
                    self.manager.load(restore["sd_model_checkpoint"], self.options.sd_vae)
                elif "sd_vae" in restore:
                    self.manager.set_vae(restore["sd_vae"])
            elif restore:
                # Kept: the settings must name what is now loaded, as A1111's do.
                kept = {key: overrides[key] for key in restore}
                if "sd_model_checkpoint" in kept:
                    kept["sd_model_checkpoint"] = self.manager.active.file.title
                self.options.update(kept)

    def _generate(self, model: ActiveModel, req: GenerationRequest, ctx: Any, clip_skip: int) -> Result:
        started = time.perf_counter()
        pipe, spec = model.pipe, model.spec
        seed = req.seed if req.seed >= 0 else random.randrange(2**32 - 1)
        subseed = req.subseed if req.subseed >= 0 else random.randrange(2**32 - 1)
        seeds = [seed + i for i in range(req.image_count)]
        subseeds = [subseed + i for i in range(req.image_count)]

        pipe.scheduler = samplers.make_scheduler(configs.scheduler_config(spec), req.sampler_name, req.scheduler)
        styled = self._styled(req)  # what infotext records, as A1111: styles in, comments out
        prompt, negative, refs = self._without_network_tags(*styled)

        images: list[GeneratedImage] = []
        interrupted = False
        with self._networks(model, refs, [prompt, negative]) as networks, _tiling(pipe, req.tiling):
            encoder = PromptEncoder(
                pipe, sdxl=spec.is_sdxl, emphasis=self.options.emphasis,
                comma_backtrack=self.options.comma_padding_backtrack,
                embedding_ids=networks.embedding_token_ids if networks else frozenset(),
            )
            plan = build_plan(encoder, prompt, negative, req.steps, clip_skip, networks.expand if networks else _same)
            params = self._infotext_params(model, req, clip_skip, networks.infotext if networks else {})
            notes = list(networks.notes) if networks else []
            for n in range(req.n_iter):
                batch = slice(n * req.batch_size, (n + 1) * req.batch_size)
                pictures = self._denoise(model, req, plan, seeds[batch], subseeds[batch], ctx, n)
                for image, s, ss in zip(pictures, seeds[batch], subseeds[batch]):
                    text = infotext.build_infotext(*styled, _with_seed(params, s, ss, req))
                    images.append(self._save(GeneratedImage(image, s, ss, text), req))
                if ctx.interrupted:
                    interrupted = True
                    break
                ctx.consume_skip()

        grid = self._grid(images, req, params, styled) if images else None
        info = self._info(model, req, images, seed, subseed, clip_skip, styled)
        info["notes"] += notes
        return Result(images, info, grid, interrupted, {"total": time.perf_counter() - started})

    def _styled(self, req: GenerationRequest) -> tuple[str, str]:
        """Styles applied and # comments removed: the text the encoder sees."""
        prompt, negative = req.prompt, req.negative_prompt
        if req.styles:
            if self.styles is None:
                raise ValueError("styles are not available in this engine")
            prompt, negative = self.styles.apply(prompt, negative, req.styles)
        if self.options.enable_prompt_comments:
            prompt, negative = strip_comments(prompt), strip_comments(negative)
        return prompt, negative

    @staticmethod
    def _without_network_tags(prompt: str, negative: str) -> tuple[str, str, list]:
        prompt, refs = extract_extra_networks(prompt)
        negative, negative_refs = extract_extra_networks(negative)
        return prompt, negative, refs + negative_refs

    @contextlib.contextmanager
    def _networks(self, model: ActiveModel, refs: list, texts: list[str]) -> Iterator[Any]:
        """LoRA / hypernetworks / embeddings for this job only; None when no catalog is wired."""
        if self.networks is None:
            yield None
            return
        from webui.networks.apply import applied_networks

        with applied_networks(model.pipe, model.spec, refs, texts, self.networks, self.networks.hashes) as applied:
            yield applied

    def _denoise(
        self, model: ActiveModel, req: GenerationRequest, plan: PromptPlan,
        seeds: list[int], subseeds: list[int], ctx: Any, iteration: int,
    ) -> list[Image.Image]:
        pipe, spec = model.pipe, model.spec
        unet = pipe.unet
        device, dtype = unet.device, unet.dtype
        latent_shape = (pipe.vae.config.latent_channels, req.height // LATENT_SCALE, req.width // LATENT_SCALE)
        resize_from = None
        if req.seed_resize_from_w > 0 and req.seed_resize_from_h > 0:
            resize_from = (req.seed_resize_from_w, req.seed_resize_from_h)
        noise = batch_noise(latent_shape, seeds, subseeds, req.subseed_strength, resize_from)
        generators = [torch.Generator("cpu").manual_seed(s) for s in seeds]  # ancestral/SDE step noise
        count = len(seeds)
        cond, uncond = plan.first()
        plan.step = 0

        def on_step(pipeline, index: int, timestep, tensors: dict) -> dict:
            # Heun-like schedulers run two loop iterations per step; report sampling steps.
            done = min(req.steps, -(-(index + 1) * req.steps // max(1, pipeline.num_timesteps)))
            plan.step = done
            preview = None
            if ctx.preview_wanted(done) and self.options.live_previews_enable:
                preview = latents_to_preview(tensors["latents"], sdxl=spec.is_sdxl)
            ctx.report(done, req.steps, image_index=iteration, image_count=req.n_iter, preview=preview)
            if ctx.interrupted or ctx.skipped:
                pipeline._interrupt = True
            return tensors

        kwargs: dict[str, Any] = dict(
            prompt_embeds=cond.embeds.to(device, dtype).expand(count, -1, -1),
            negative_prompt_embeds=uncond.embeds.to(device, dtype).expand(count, -1, -1),
            num_inference_steps=req.steps,
            guidance_scale=req.cfg_scale,
            generator=generators,
            output_type="pil",
            callback_on_step_end=on_step,
            callback_on_step_end_tensor_inputs=["latents"],
        )
        if req.eta is not None:
            kwargs["eta"] = req.eta
        if spec.is_sdxl:
            kwargs["pooled_prompt_embeds"] = cond.pooled.to(device, dtype).expand(count, -1)
            kwargs["negative_pooled_prompt_embeds"] = uncond.pooled.to(device, dtype).expand(count, -1)
        if spec.family == "sdxl-refiner":
            # The refiner ships as an img2img pipeline; at strength 1 the start image is fully noised,
            # and our latents replace that noise (img2img does not scale given latents itself).
            pipe.scheduler.set_timesteps(req.steps)
            kwargs.update(image=_gray(req), strength=1.0, latents=noise.to(device, dtype) * pipe.scheduler.init_noise_sigma)
        else:
            kwargs.update(width=req.width, height=req.height, latents=noise.to(device, dtype))
        if spec.is_inpaint:
            # A1111's txt2img on an inpainting model: everything masked, over a flat grey image.
            kwargs.update(image=_gray(req), mask_image=Image.new("L", (req.width, req.height), 255), strength=1.0)
        with scheduled_unet(unet, plan, count):
            return pipe(**kwargs).images

    def _save(self, generated: GeneratedImage, req: GenerationRequest) -> GeneratedImage:
        if req.save_images and self.options.samples_save:
            folder = dated_folder(self.paths.outputs(self._outdir("outdir_txt2img_samples")), self.options.save_to_dirs)
            text = generated.infotext if self.options.enable_pnginfo else None
            generated.path = save_png(generated.image, folder, str(generated.seed), text)
        return generated

    def _outdir(self, key: str) -> str:
        shared = self.options.outdir_samples
        return str(Path(shared) / Path(self.options.get(key)).name) if shared else self.options.get(key)

    def _grid(self, images: list[GeneratedImage], req: GenerationRequest, params: dict, styled: tuple[str, str]) -> GeneratedImage | None:
        if len(images) < 2:
            return None
        first = images[0]
        text = infotext.build_infotext(*styled, _with_seed(params, first.seed, first.subseed, req))
        grid = GeneratedImage(make_grid([g.image for g in images]), first.seed, first.subseed, text)
        if req.save_grid and self.options.grid_save:
            folder = dated_folder(self.paths.outputs(self._outdir("outdir_txt2img_grids")), self.options.save_to_dirs)
            grid.path = save_png(grid.image, folder, str(first.seed), text if self.options.enable_pnginfo else None, prefix="grid-")
        return grid

    def _infotext_params(self, model: ActiveModel, req: GenerationRequest, clip_skip: int, extra: dict[str, str]) -> dict[str, Any]:
        """A1111's parameter line, in A1111's order; seeds are filled per image."""
        emphasis = self.options.emphasis
        return {
            "Steps": req.steps,
            "Sampler": req.sampler_name,
            "Schedule type": samplers.infotext_schedule_label(req.sampler_name, req.scheduler),
            "CFG scale": _number(req.cfg_scale),
            "Seed": None,
            "Size": f"{req.width}x{req.height}",
            "Model hash": model.file.short_hash,
            "Model": model.file.model_name,
            "VAE hash": model.vae_file.short_hash if model.vae_file else None,
            "VAE": model.vae_file.path.name if model.vae_file else None,
            "Variation seed": None,
            "Variation seed strength": None,
            "Seed resize from": (
                f"{req.seed_resize_from_w}x{req.seed_resize_from_h}"
                if req.seed_resize_from_w > 0 and req.seed_resize_from_h > 0 else None
            ),
            "Eta": req.eta,
            "Clip skip": clip_skip if clip_skip > 1 else None,
            "Tiling": True if req.tiling else None,
            **extra,
            "Emphasis": emphasis if emphasis != "Original" else None,
            "Version": VERSION,
        }

    def _info(
        self, model: ActiveModel, req: GenerationRequest, images: list[GeneratedImage], seed: int, subseed: int,
        clip_skip: int, styled: tuple[str, str],
    ) -> dict[str, Any]:
        """The ``info`` object of A1111's API response, with its key names."""
        return {
            "prompt": req.prompt,
            "all_prompts": [styled[0]] * len(images),
            "negative_prompt": req.negative_prompt,
            "all_negative_prompts": [styled[1]] * len(images),
            "seed": seed,
            "all_seeds": [g.seed for g in images],
            "subseed": subseed,
            "all_subseeds": [g.subseed for g in images],
            "subseed_strength": req.subseed_strength,
            "width": req.width,
            "height": req.height,
            "sampler_name": req.sampler_name,
            "scheduler": req.scheduler,
            "cfg_scale": req.cfg_scale,
            "steps": req.steps,
            "batch_size": req.batch_size,
            "n_iter": req.n_iter,
            "restore_faces": False,
            "face_restoration_model": None,
            "sd_model_name": model.file.model_name,
            "sd_model_hash": model.file.short_hash,
            "sd_vae_name": model.vae_file.path.name if model.vae_file else None,
            "sd_vae_hash": model.vae_file.short_hash if model.vae_file else None,
            "seed_resize_from_w": req.seed_resize_from_w,
            "seed_resize_from_h": req.seed_resize_from_h,
            "denoising_strength": None,
            "extra_generation_params": {},
            "index_of_first_image": 0,
            "infotexts": [g.infotext for g in images],
            "styles": list(req.styles),
            "job_timestamp": time.strftime("%Y%m%d%H%M%S"),
            "clip_skip": clip_skip,
            "is_using_inpainting_conditioning": model.spec.is_inpaint,
            "model_family": model.spec.family,
            "notes": list(req.notes),
            "version": VERSION,
        }


def _with_seed(params: dict[str, Any], seed: int, subseed: int, req: GenerationRequest) -> dict[str, Any]:
    out = dict(params, Seed=seed)
    if req.subseed_strength > 0:
        out["Variation seed"] = subseed
        out["Variation seed strength"] = _number(req.subseed_strength)
    return out


def _same(text: str) -> str:
    return text


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def _gray(req: GenerationRequest) -> Image.Image:
    return Image.new("RGB", (req.width, req.height), (127, 127, 127))


@contextlib.contextmanager
def _tiling(pipe, enabled: bool) -> Iterator[None]:
    """Seamless tiling as A1111 does it: circular padding in every UNet and VAE convolution."""
    if not enabled:
        yield
        return
    convs = [m for part in (pipe.unet, pipe.vae) for m in part.modules() if isinstance(m, torch.nn.Conv2d)]
    saved = [m.padding_mode for m in convs]
    for m in convs:
        m.padding_mode = "circular"
    try:
        yield
    finally:
        for m, mode in zip(convs, saved):
            m.padding_mode = mode
