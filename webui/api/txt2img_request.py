"""An A1111 txt2img body → GenerationRequest: defaults, infotext, overrides, checks, notes.

Where we differ from A1111 on purpose (see docs/api.md): a bad sampler, size, checkpoint or
number is a 422 naming the field, and features we do not have yet (face restoration,
k-diffusion churn controls...) are accepted and reported in ``info["notes"]``. Scripts are
checked against the loaded extensions (an unknown title is a 422).
"""

from __future__ import annotations

import math
from typing import Any

from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from webui import infotext, upscalers
from webui.api.common import field_error, plain, validation_errors
from webui.api.models import A1111_DEFAULT_SAMPLER, Txt2ImgApiRequest
from webui.app import Studio
from webui.auth.users import User
from webui.plugins.script_set import ScriptArgsError
from webui.request import GenerationRequest
from webui.request_img2img import Img2ImgInput

# Option keys the engine applies per request from override_settings.
_APPLIED_OVERRIDES = ("sd_model_checkpoint", "sd_vae", "CLIP_stop_at_last_layers")

# A1111's neutral values of the k-diffusion sigma controls (its options' defaults).
_SIGMA_DEFAULTS = {"s_min_uncond": 0.0, "s_churn": 0.0, "s_tmin": 0.0, "s_tmax": 0.0, "s_noise": 1.0}

# Infotext key → request field, for the ``infotext`` field (fills only fields the body left unset).
_INFOTEXT_FIELDS = (
    ("Prompt", "prompt"),
    ("Negative prompt", "negative_prompt"),
    ("Steps", "steps"),
    ("Sampler", "sampler_name"),
    ("Schedule type", "scheduler"),
    ("CFG scale", "cfg_scale"),
    ("Seed", "seed"),
    ("Size-1", "width"),
    ("Size-2", "height"),
    ("Variation seed", "subseed"),
    ("Variation seed strength", "subseed_strength"),
    ("Seed resize from-1", "seed_resize_from_w"),
    ("Seed resize from-2", "seed_resize_from_h"),
    ("Eta", "eta"),
    ("Tiling", "tiling"),
    ("Denoising strength", "denoising_strength"),
    ("Hires upscale", "hr_scale"),
    ("Hires resize-1", "hr_resize_x"),
    ("Hires resize-2", "hr_resize_y"),
    ("Hires upscaler", "hr_upscaler"),
    ("Hires steps", "hr_second_pass_steps"),
    ("Hires checkpoint", "hr_checkpoint_name"),
    ("Hires sampler", "hr_sampler_name"),
    ("Hires schedule type", "hr_scheduler"),
    ("Hires prompt", "hr_prompt"),
    ("Hires negative prompt", "hr_negative_prompt"),
    ("Refiner", "refiner_checkpoint"),
    ("Refiner switch at", "refiner_switch_at"),
)
# Infotext keys that mean the image was made with hires fix (A1111 turns it on when pasting them).
_HIRES_KEYS = ("Hires upscale", "Hires resize", "Hires upscaler")
# Request fields copied as they are when the body sets them (None: keep GenerationRequest's default).
_PLAIN_FIELDS = ("seed", "subseed", "subseed_strength", "seed_resize_from_w", "seed_resize_from_h", "steps",
                 "cfg_scale", "width", "height", "batch_size", "n_iter", "eta", "hr_scale", "hr_resize_x",
                 "hr_resize_y", "hr_upscaler", "hr_second_pass_steps", "denoising_strength", "hr_checkpoint_name",
                 "hr_sampler_name", "hr_scheduler", "hr_prompt", "hr_negative_prompt", "refiner_checkpoint",
                 "refiner_switch_at")

def build_generation_request(req: Txt2ImgApiRequest, studio: Studio, user: User | None = None,
                             img2img: Img2ImgInput | None = None) -> GenerationRequest:
    """An A1111 txt2img body → the engine's request. Raises ``RequestValidationError`` (→ 422).

    ``user``: the caller; only an admin may keep overrides afterwards (a model switch for everyone).
    ``img2img``: the init images and their settings, for the img2img endpoint.
    """
    fields = {name: getattr(req, name) for name in type(req).model_fields}
    notes: list[str] = []
    if req.infotext:
        _apply_infotext(req, fields, notes)

    _legacy_first_phase(fields, notes)
    override = dict(fields["override_settings"] or {})
    _check_overrides(override, studio)
    _check_checkpoints(fields, studio)
    _check_upscaler(fields, studio)
    styles = list(fields["styles"] or [])
    _check_styles(styles, studio)
    applied = [k for k in override if k in _APPLIED_OVERRIDES]
    others = sorted(k for k in override if k not in _APPLIED_OVERRIDES)
    if others:
        notes.append(f"override_settings not applied per request (not supported yet): {', '.join(others)}")
    override = {k: override[k] for k in applied}

    notes += _ignored_feature_notes(req, fields)

    sampler = fields["sampler_name"] or fields["sampler_index"] or A1111_DEFAULT_SAMPLER
    save = bool(fields["save_images"])
    kwargs: dict[str, Any] = {
        "prompt": fields["prompt"] or "",
        "negative_prompt": fields["negative_prompt"] or "",
        "styles": styles,
        "sampler_name": sampler,
        "scheduler": fields["scheduler"] or "Automatic",
        "tiling": bool(fields["tiling"]),
        "save_images": save and not fields["do_not_save_samples"],
        "save_grid": save and not fields["do_not_save_grid"],
        "override_settings": override,
        "clip_skip": override.get("CLIP_stop_at_last_layers"),
        "notes": notes,
        "img2img": img2img,
        "script_name": fields["script_name"],
        "script_args": list(fields["script_args"] or []),
        "alwayson_scripts": dict(fields["alwayson_scripts"] or {}),
    }
    keep = fields["override_settings_restore_afterwards"] is False
    if keep and override and user is not None and not user.is_admin:
        notes.append("override_settings applied to this job only: keeping them afterwards "
                     "(override_settings_restore_afterwards=false) changes the studio for everyone, which only "
                     "an admin may do")
    elif fields["override_settings_restore_afterwards"] is not None:
        kwargs["override_settings_restore_afterwards"] = fields["override_settings_restore_afterwards"]
    kwargs["enable_hr"] = bool(fields["enable_hr"])
    for name in _PLAIN_FIELDS:
        if fields[name] is not None:
            kwargs[name] = fields[name]
    try:
        request = GenerationRequest(**kwargs)
    except ValidationError as e:
        raise RequestValidationError(validation_errors(e)) from None
    try:  # a script that is not there, or named the wrong way: a 422 before anything is queued
        studio.jobs.script_set(request).check(request)
    except ScriptArgsError as e:
        raise RequestValidationError([{"type": "value_error", "loc": ["body", e.field], "msg": str(e)}]) from None
    for name in ("width", "height"):
        asked = kwargs.get(name)
        if asked is not None and getattr(request, name) != asked:
            request.notes.append(f"{name} {asked} is not a multiple of 8: rendered at {getattr(request, name)}")
    return request


def _apply_infotext(req: Txt2ImgApiRequest, fields: dict[str, Any], notes: list[str]) -> None:
    """A1111's ``infotext`` field: parameters from the text fill the fields the body did not set."""
    params = infotext.parse_infotext(req.infotext or "")
    explicit = req.model_fields_set
    filled = []
    for key, name in _INFOTEXT_FIELDS:
        if name in explicit or key not in params:
            continue
        fields[name] = params[key]
        filled.append(name)
    if "enable_hr" not in explicit and any(key in params for key in _HIRES_KEYS):
        fields["enable_hr"] = True
        filled.append("enable_hr")
    clip_skip = params.get("Clip skip")
    override = dict(fields["override_settings"] or {})
    if isinstance(clip_skip, int) and "CLIP_stop_at_last_layers" not in override:
        override["CLIP_stop_at_last_layers"] = clip_skip
        fields["override_settings"] = override
        filled.append("clip skip")
    if filled:
        notes.append(f"from infotext: {', '.join(filled)}")


def _check_overrides(override: dict[str, Any], studio: Studio) -> None:
    """Refuse (422) per-request overrides the engine would fail on halfway through the job."""
    errors = []
    if "sd_model_checkpoint" in override:
        value = override["sd_model_checkpoint"]
        if not isinstance(value, str) or studio.catalog.find_checkpoint(value) is None:
            names = ", ".join(f.title for f in studio.catalog.checkpoints) or "none"
            errors.append(field_error(("override_settings", "sd_model_checkpoint"),
                                       f"checkpoint not found: {value!r}; available: {names}", plain(value)))
    if "sd_vae" in override:
        value = override["sd_vae"]
        if not isinstance(value, str) or (value not in ("Automatic", "None", "") and studio.catalog.find_vae(value) is None):
            names = ", ".join(["Automatic", "None", *(f.name for f in studio.catalog.vaes)])
            errors.append(field_error(("override_settings", "sd_vae"), f"VAE not found: {value!r}; available: {names}", plain(value)))
    if "CLIP_stop_at_last_layers" in override:
        value = override["CLIP_stop_at_last_layers"]
        if isinstance(value, float) and value.is_integer():
            value = override["CLIP_stop_at_last_layers"] = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 12:
            errors.append(field_error(("override_settings", "CLIP_stop_at_last_layers"),
                                       f"clip skip must be an integer from 1 to 12, got {value!r}", plain(value)))
    if errors:
        raise RequestValidationError(errors)


def _check_checkpoints(fields: dict[str, Any], studio: Studio) -> None:
    """The hires checkpoint and the refiner must exist (422 before the job, not a failure in it)."""
    errors = []
    wanted = [("hr_checkpoint_name", fields["hr_checkpoint_name"]) if fields["enable_hr"] else None,
              ("refiner_checkpoint", fields["refiner_checkpoint"])]
    for item in filter(None, wanted):
        name, value = item
        if value in (None, "", "None", "none", "Use same checkpoint"):
            continue
        if not isinstance(value, str) or studio.catalog.find_checkpoint(value) is None:
            names = ", ".join(f.title for f in studio.catalog.checkpoints) or "none"
            errors.append(field_error((name,), f"checkpoint not found: {value!r}; available: {names}", plain(value)))
    if errors:
        raise RequestValidationError(errors)


def _check_upscaler(fields: dict[str, Any], studio: Studio) -> None:
    """hr_upscaler: a latent mode, None/Lanczos/Nearest or a model file the studio has (else a 422)."""
    value = fields["hr_upscaler"]
    if not fields["enable_hr"] or value in (None, ""):
        return
    text = " ".join(str(value).split())
    found = upscalers.find_upscaler(text) or studio.upscalers.find(text)
    if found is None:  # a file added since the last scan counts (a scan reads only the folders)
        studio.upscalers.refresh()
        found = studio.upscalers.find(text)
    if found is None:
        names = ", ".join(upscalers.hires_upscalers(studio.upscalers.names()))
        raise RequestValidationError([field_error(("hr_upscaler",), f"unknown upscaler {text[:200]!r}; available: "
                                                  f"{names}", plain(value))])
    fields["hr_upscaler"] = found


def _legacy_first_phase(fields: dict[str, Any], notes: list[str]) -> None:
    """A1111's old hires fields: firstphase_width/height is the first pass, width/height the result."""
    first_w, first_h = fields["firstphase_width"] or 0, fields["firstphase_height"] or 0
    if not fields["enable_hr"] or not (first_w or first_h):
        return
    fields["hr_resize_x"], fields["hr_resize_y"] = fields["width"], fields["height"]
    fields["width"], fields["height"] = first_w or fields["width"], first_h or fields["height"]
    notes.append(f"firstphase_width/height: first pass {fields['width']}x{fields['height']}, "
                 f"hires fix to {fields['hr_resize_x']}x{fields['hr_resize_y']}")


def _check_styles(names: list[str], studio: Studio) -> None:
    """Unknown style names are a 422 naming them (A1111 ignores them silently)."""
    known = set(studio.styles.names())
    errors = [field_error(("styles", i), f"style not found: {name!r}; available: {', '.join(sorted(known)) or 'none'}", name)
              for i, name in enumerate(names) if name not in known]
    if errors:
        raise RequestValidationError(errors)


def _ignored_feature_notes(req: Txt2ImgApiRequest, fields: dict[str, Any]) -> list[str]:
    notes = []
    if fields["firstpass_image"]:
        notes.append("firstpass_image ignored: hires fix always renders its own first pass")
    if fields["restore_faces"]:
        notes.append("face restoration is not available yet: restore_faces ignored")
    sigma = [f"{k}={fields[k]}" for k, neutral in _SIGMA_DEFAULTS.items()
             if fields[k] is not None and fields[k] != neutral and not (k == "s_tmax" and math.isinf(fields[k]))]
    if sigma:
        notes.append(f"{', '.join(sigma)} ignored: the diffusers samplers have no k-diffusion churn/noise controls")
    if fields["force_task_id"]:
        notes.append("force_task_id ignored: jobs get their own id (see /api/v1/jobs)")
    if req.model_extra:
        notes.append(f"unknown fields ignored: {', '.join(sorted(req.model_extra))}")
    return notes
