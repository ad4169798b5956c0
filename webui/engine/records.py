"""What a job writes down: A1111's infotext parameters per image and the API's ``info`` object.

Keys, order and value formats follow A1111 (``create_infotext`` and the hires / refiner /
network code that adds to ``extra_generation_params``); values that are None are left out.
An image carries only the keys of what really shaped it: hires keys when the hires pass
finished, refiner keys when the refiner ran.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

from webui import infotext, samplers
from webui.engine.plan import GenerationPlan, Stage
from webui.models.catalog import ModelFile
from webui.models.manager import ActiveModel
from webui.request import USE_SAME_SAMPLER, USE_SAME_SCHEDULER
from webui.version import VERSION


@dataclass(frozen=True)
class BatchFacts:
    """What actually happened to one batch (a stop can end it before all passes ran)."""

    hires: bool = False  # the hires pass finished
    refiner: ModelFile | None = None  # the refiner took part
    hires_checkpoint: ModelFile | None = None  # the hires pass ran on this checkpoint

    def after(self, stage: Stage, model: ModelFile) -> "BatchFacts":
        """These facts once ``stage`` has run on ``model``."""
        if stage.kind == "refiner":
            return replace(self, refiner=model)
        if stage.kind == "hires" and stage.checkpoint is not None:
            return replace(self, hires_checkpoint=model)
        return self


def short_title(file: ModelFile) -> str:
    """A1111's ``short_title``: the model name and its 10-hex hash."""
    return f"{file.model_name} [{file.short_hash}]" if file.short_hash else file.model_name


def number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def infotext_params(plan: GenerationPlan, model: ActiveModel, facts: BatchFacts, networks: dict[str, str],
                    seed: int, subseed: int, position: int) -> dict[str, Any]:
    """A1111's parameter line for one image, in A1111's order."""
    req, options = plan.request, plan.options
    label = samplers.infotext_schedule_label(req.sampler_name, req.scheduler)
    varied = req.subseed_strength > 0
    resized = req.seed_resize_from_w > 0 and req.seed_resize_from_h > 0
    batch = req.batch_size > 1
    return {
        "Steps": req.steps,
        "Sampler": req.sampler_name,
        "Schedule type": None if label == "Automatic" else label,
        "CFG scale": number(req.cfg_scale),
        "Seed": seed,
        "Size": "{}x{}".format(*req.render_size),
        "Model hash": model.file.short_hash,
        "Model": model.file.model_name,
        "VAE hash": model.vae_file.short_hash if model.vae_file else None,
        "VAE": model.vae_file.path.name if model.vae_file else None,
        "Batch size": req.batch_size if batch else None,
        "Batch pos": position if batch else None,
        "Variation seed": subseed if varied else None,
        "Variation seed strength": number(req.subseed_strength) if varied else None,
        "Seed resize from": f"{req.seed_resize_from_w}x{req.seed_resize_from_h}" if resized else None,
        "Denoising strength": number(req.denoising_strength) if facts.hires or req.img2img else None,
        "Eta": req.eta,
        "Clip skip": plan.clip_skip if plan.clip_skip > 1 else None,
        "Tiling": True if req.tiling else None,
        **_img2img_params(plan),
        **(_hires_params(plan, facts) if facts.hires else {}),
        **networks,
        **(_refiner_params(plan, facts) if facts.refiner else {}),
        **plan.extra_params,
        "Emphasis": options["emphasis"] if options["emphasis"] != "Original" else None,
        "Version": VERSION,
    }


def _img2img_params(plan: GenerationPlan) -> dict[str, Any]:
    """A1111's img2img and inpaint keys (what its img2img tab reads back when pasting)."""
    settings = plan.request.img2img
    if settings is None:
        return {}
    params: dict[str, Any] = {
        "Resize mode": settings.resize_mode_name if settings.resize_mode else None,
        "Noise multiplier": number(plan.noise_multiplier) if plan.noise_multiplier != 1.0 else None,
    }
    outpaint = settings.outpaint
    if outpaint is not None and outpaint.grows:
        params["Outpaint"] = f"{outpaint.method} left {outpaint.left} right {outpaint.right} up {outpaint.up} down {outpaint.down}"
    inpaint = settings.inpaint
    if inpaint is not None:
        if inpaint.blur_x == inpaint.blur_y:
            params["Mask blur"] = inpaint.blur_x
        else:
            params["Mask blur x"], params["Mask blur y"] = inpaint.blur_x, inpaint.blur_y
        params["Mask mode"] = "Inpaint not masked" if inpaint.invert else None
        params["Masked content"] = inpaint.masked_content
        params["Inpaint area"] = "Only masked" if inpaint.only_masked else "Whole picture"
        params["Masked area padding"] = inpaint.padding if inpaint.only_masked else None
    return params


def _hires_params(plan: GenerationPlan, facts: BatchFacts) -> dict[str, Any]:
    req = plan.request
    params: dict[str, Any] = {
        "Hires checkpoint": short_title(facts.hires_checkpoint) if facts.hires_checkpoint else None,
        "Hires sampler": req.hr_sampler_name if req.hr_sampler_name not in (USE_SAME_SAMPLER, req.sampler_name) else None,
        "Hires schedule type": req.hr_scheduler if req.hr_scheduler != USE_SAME_SCHEDULER else None,
        "Hires prompt": req.hr_prompt if req.hr_prompt and req.hr_prompt != req.prompt else None,
        "Hires negative prompt": (req.hr_negative_prompt if req.hr_negative_prompt
                                  and req.hr_negative_prompt != req.negative_prompt else None),
    }
    if req.hr_resize_x == 0 and req.hr_resize_y == 0:
        params["Hires upscale"] = number(req.hr_scale)
    else:
        params["Hires resize"] = f"{req.hr_resize_x}x{req.hr_resize_y}"
    params["Hires steps"] = req.hr_second_pass_steps or None
    params["Hires upscaler"] = req.hr_upscaler
    return params


def _refiner_params(plan: GenerationPlan, facts: BatchFacts) -> dict[str, Any]:
    """In the order A1111's apply_refiner adds them, when the refiner took over."""
    assert facts.refiner is not None
    options = plan.options
    refiner_pass = options.get("hires_fix_refiner_pass", "second pass")
    by_steps = bool(options.get("refiner_switch_by_sample_steps", False))
    return {
        "Refiner switch by sampling steps": True if by_steps else None,
        "Hires refiner": refiner_pass if plan.request.enable_hr and refiner_pass != "second pass" else None,
        "Refiner": short_title(facts.refiner),
        "Refiner switch at": number(plan.request.refiner_switch_at),
    }


# The keys of A1111's fixed parameter dict; everything else is in ``extra_generation_params``.
_CORE_KEYS = frozenset({
    "Steps", "Sampler", "Schedule type", "CFG scale", "Seed", "Size", "Model hash", "Model", "VAE hash", "VAE",
    "Batch size", "Batch pos", "Variation seed", "Variation seed strength", "Seed resize from", "Denoising strength",
    "Clip skip", "Tiling", "Version",
})


def extra_generation_params(params: dict[str, Any]) -> dict[str, Any]:
    """The parameters A1111 keeps in ``p.extra_generation_params`` (hires, refiner, networks...)."""
    return {k: v for k, v in params.items() if k not in _CORE_KEYS and v is not None}


def build_infotext(prompts: tuple[str, str], params: dict[str, Any]) -> str:
    """The infotext of an image made from ``prompts`` (its prompt and negative prompt)."""
    return infotext.build_infotext(prompts[0], prompts[1], params)


def api_info(plan: GenerationPlan, model: ActiveModel, infotexts: list[str], seeds: list[int], subseeds: list[int],
             extra: dict[str, Any], warnings: list[str], prompts: list[tuple[str, str]]) -> dict[str, Any]:
    """The ``info`` object of A1111's API response, with its key names (plus notes, warnings)."""
    req = plan.request
    first_seed = plan.seeds[0] if plan.seeds else req.seed
    first_subseed = plan.subseeds[0] if plan.subseeds else req.subseed
    return {
        "prompt": req.prompt,
        "all_prompts": [p for p, _ in prompts],  # (prompt, negative) each image was made from
        "negative_prompt": req.negative_prompt,
        "all_negative_prompts": [n for _, n in prompts],
        "seed": first_seed,
        "all_seeds": seeds,
        "subseed": first_subseed,
        "all_subseeds": subseeds,
        "subseed_strength": req.subseed_strength,
        "width": req.render_size[0],
        "height": req.render_size[1],
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
        "denoising_strength": req.denoising_strength if req.enable_hr or req.img2img else None,
        "extra_generation_params": extra,
        "index_of_first_image": 0,
        "infotexts": infotexts,
        "styles": list(req.styles),
        "job_timestamp": time.strftime("%Y%m%d%H%M%S"),
        "clip_skip": plan.clip_skip,
        "is_using_inpainting_conditioning": model.spec.is_inpaint,
        "model_family": model.spec.family,
        "notes": list(req.notes),
        "warnings": warnings,
        "version": VERSION,
    }
