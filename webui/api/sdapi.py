"""``/sdapi/v1``: the A1111-compatible REST API.

Every generation goes through the Studio's job queue (``studio.generate``), from a plain ``def``
endpoint so the wait happens on a threadpool thread, never on the event loop.

Where we differ from A1111, on purpose (see docs/api.md): a bad sampler, size, step count or
number is a 422 with a readable ``message`` instead of a silent substitution or a 500, and the
features we do not have yet (hires fix, face restoration, refiner, scripts, ...) are
accepted and ignored with a note in ``info["notes"]`` rather than refused.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import io
import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Body, Query
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from PIL import Image, UnidentifiedImageError
from pydantic import ValidationError

from webui import infotext, samplers
from webui.api import network_info
from webui.api.models import (
    A1111_DEFAULT_SAMPLER,
    EmbeddingsResponse,
    HypernetworkItem,
    LoraItem,
    MemoryResponse,
    PNGInfoRequest,
    PNGInfoResponse,
    ProgressResponse,
    ProgressState,
    PromptStyleItem,
    SamplerItem,
    SchedulerItem,
    SDModelItem,
    SDVaeItem,
    TextToImageResponse,
    Txt2ImgApiRequest,
)
from webui.app import GenerationCancelled, GenerationFailed, Studio
from webui.result import GeneratedImage, Result
from webui.models.safe_load import CheckpointError
from webui.request import GenerationRequest
from webui.settings import OptionError

log = logging.getLogger(__name__)

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
)

# PIL metadata that is not generation info (A1111 hides the same keys in png-info).
_HIDDEN_INFO_KEYS = {
    "parameters", "exif", "jfif", "jfif_version", "jfif_unit", "jfif_density", "dpi", "loop",
    "background", "timestamp", "duration", "progressive", "progression", "icc_profile",
    "chromaticity", "photoshop", "transparency", "gamma", "srgb", "aspect",
}


# --- errors ------------------------------------------------------------------------------------


def error_response(status: int, error: str, message: str) -> JSONResponse:
    """The error shape of every endpoint here: {"error", "detail", "message"}."""
    return JSONResponse(status_code=status, content={"error": error, "detail": message, "message": message})


def _field_error(loc: tuple[Any, ...], msg: str, value: Any = None) -> dict[str, Any]:
    return {"type": "value_error", "loc": ("body", *loc), "msg": msg, "input": value}


def _validation_errors(exc: ValidationError) -> list[dict[str, Any]]:
    """GenerationRequest's errors, located in the body; sampler errors named after their field."""
    errors = []
    for error in exc.errors():
        loc = tuple(error.get("loc", ()))
        if not loc:
            cause = (error.get("ctx") or {}).get("error")
            if isinstance(cause, (samplers.UnknownSchedule, samplers.UnsupportedSchedule)):
                loc = ("scheduler",)
            elif isinstance(cause, samplers.UnknownSampler):
                loc = ("sampler_name",)
        msg = str(error.get("msg", ""))
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]  # pydantic's prefix says nothing to an API user
        errors.append({**error, "loc": ("body", *loc), "msg": msg})
    return errors


# --- request conversion ------------------------------------------------------------------------


def build_generation_request(req: Txt2ImgApiRequest, studio: Studio) -> GenerationRequest:
    """An A1111 txt2img body → the engine's request. Raises ``RequestValidationError`` (→ 422)."""
    fields = {name: getattr(req, name) for name in Txt2ImgApiRequest.model_fields}
    notes: list[str] = []
    if req.infotext:
        _apply_infotext(req, fields, notes)

    override = dict(fields["override_settings"] or {})
    _check_overrides(override, studio)
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
    }
    if fields["override_settings_restore_afterwards"] is not None:
        kwargs["override_settings_restore_afterwards"] = fields["override_settings_restore_afterwards"]
    for name in ("seed", "subseed", "subseed_strength", "seed_resize_from_w", "seed_resize_from_h", "steps",
                 "cfg_scale", "width", "height", "batch_size", "n_iter", "eta"):
        if fields[name] is not None:
            kwargs[name] = fields[name]
    try:
        request = GenerationRequest(**kwargs)
    except ValidationError as e:
        raise RequestValidationError(_validation_errors(e)) from None
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
            errors.append(_field_error(("override_settings", "sd_model_checkpoint"),
                                       f"checkpoint not found: {value!r}; available: {names}", _plain(value)))
    if "sd_vae" in override:
        value = override["sd_vae"]
        if not isinstance(value, str) or (value not in ("Automatic", "None", "") and studio.catalog.find_vae(value) is None):
            names = ", ".join(["Automatic", "None", *(f.name for f in studio.catalog.vaes)])
            errors.append(_field_error(("override_settings", "sd_vae"), f"VAE not found: {value!r}; available: {names}", _plain(value)))
    if "CLIP_stop_at_last_layers" in override:
        value = override["CLIP_stop_at_last_layers"]
        if isinstance(value, float) and value.is_integer():
            value = override["CLIP_stop_at_last_layers"] = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 12:
            errors.append(_field_error(("override_settings", "CLIP_stop_at_last_layers"),
                                       f"clip skip must be an integer from 1 to 12, got {value!r}", _plain(value)))
    if errors:
        raise RequestValidationError(errors)


def _check_styles(names: list[str], studio: Studio) -> None:
    """Unknown style names are a 422 naming them (A1111 ignores them silently)."""
    known = set(studio.styles.names())
    errors = [_field_error(("styles", i), f"style not found: {name!r}; available: {', '.join(sorted(known)) or 'none'}", name)
              for i, name in enumerate(names) if name not in known]
    if errors:
        raise RequestValidationError(errors)


def _ignored_feature_notes(req: Txt2ImgApiRequest, fields: dict[str, Any]) -> list[str]:
    notes = []
    if fields["enable_hr"]:
        notes.append("hires. fix is not available yet: enable_hr and the hr_* fields were ignored; "
                     f"rendered at {fields['width']}x{fields['height']} without an upscale pass")
    elif fields["firstphase_width"] or fields["firstphase_height"]:
        notes.append("firstphase_width/firstphase_height ignored (hires. fix is not available yet)")
    if fields["firstpass_image"]:
        notes.append("firstpass_image ignored (hires. fix is not available yet)")
    if fields["restore_faces"]:
        notes.append("face restoration is not available yet: restore_faces ignored")
    if fields["refiner_checkpoint"] not in (None, "", "None"):
        notes.append(f"the refiner is not available yet: refiner_checkpoint {fields['refiner_checkpoint']!r} ignored")
    if fields["script_name"]:
        notes.append(f"scripts are not available yet: script_name {fields['script_name']!r} and its script_args ignored")
    if fields["alwayson_scripts"]:
        notes.append(f"always-on scripts are not available yet: {', '.join(map(str, fields['alwayson_scripts']))} ignored")
    sigma = [f"{k}={fields[k]}" for k, neutral in _SIGMA_DEFAULTS.items()
             if fields[k] is not None and fields[k] != neutral and not (k == "s_tmax" and math.isinf(fields[k]))]
    if sigma:
        notes.append(f"{', '.join(sigma)} ignored: the diffusers samplers have no k-diffusion churn/noise controls")
    if fields["force_task_id"]:
        notes.append("force_task_id ignored: jobs get their own id (see /api/v1/jobs)")
    if req.model_extra:
        notes.append(f"unknown fields ignored: {', '.join(sorted(req.model_extra))}")
    return notes


# --- images ------------------------------------------------------------------------------------


def png_bytes(generated: GeneratedImage, with_infotext: bool = True) -> bytes:
    """The image as PNG: the saved file's bytes when there is one, else encoded with its infotext."""
    if generated.path is not None:
        try:
            return Path(generated.path).read_bytes()
        except OSError:
            pass  # moved or deleted since: encode from memory
    buffer = io.BytesIO()
    infotext.save_with_infotext(generated.image, buffer, "PNG", generated.infotext if with_infotext else None)
    return buffer.getvalue()


def encode_preview(image: Any) -> str | None:
    if not isinstance(image, Image.Image):
        return None
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def response_images(result: Result, studio: Studio, send: bool) -> tuple[list[str], dict[str, Any]]:
    """base64 PNGs (grid first, as A1111, when the return_grid option is on) and the info dict."""
    info = dict(result.info)
    with_text = bool(studio.options.enable_pnginfo)
    shown = list(result.images)
    if result.grid is not None and studio.options.return_grid:
        shown.insert(0, result.grid)
        info["infotexts"] = [result.grid.infotext, *info.get("infotexts", [])]
        info["index_of_first_image"] = 1
    if result.interrupted:
        info["interrupted"] = True
    images = [_b64(png_bytes(g, with_text)) for g in shown] if send else []
    return images, info


def decode_image(data: str) -> Image.Image:
    """A base64 image or data URL → PIL image; ``ValueError`` with a readable message."""
    text = data.strip()
    if text.startswith("data:"):
        if "," not in text:
            raise ValueError("a data URL needs a ',' before the base64 data")
        text = text.split(",", 1)[1]
    text = "".join(text.split())
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not valid base64") from None
    try:
        image = Image.open(io.BytesIO(raw))
        image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise ValueError(f"not a readable image ({type(e).__name__})") from None
    return image


def _plain(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool, type(None))):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)


# --- the router --------------------------------------------------------------------------------


def sdapi_router(studio: Studio) -> APIRouter:
    router = APIRouter(prefix="/sdapi/v1", tags=["sdapi (A1111-compatible)"])

    @router.post("/txt2img", response_model=TextToImageResponse, responses={422: {}, 500: {}})
    def txt2img(req: Txt2ImgApiRequest):
        """Generate synchronously (queued behind other jobs); A1111's body and response."""
        request = build_generation_request(req, studio)
        try:
            result = studio.generate(request)
        except GenerationCancelled as e:
            return error_response(409, "Cancelled", str(e))
        except GenerationFailed as e:
            return error_response(500, "GenerationFailed", str(e))
        except RuntimeError as e:  # the queue is stopping
            return error_response(503, "Unavailable", str(e))
        images, info = response_images(result, studio, send=req.send_images is not False)
        return TextToImageResponse(images=images, parameters=req.model_dump(mode="json"), info=json.dumps(info))

    # --- models ---

    @router.get("/sd-models", response_model=list[SDModelItem])
    def sd_models():
        items = []
        for f in studio.catalog.checkpoints:
            sidecar = f.path.with_suffix(".yaml")
            items.append(SDModelItem(
                title=f.title, model_name=f.model_name, hash=f.short_hash, sha256=f.sha256,
                filename=str(f.path), config=str(sidecar) if sidecar.is_file() else None,
            ))
        return items

    @router.post("/refresh-checkpoints")
    def refresh_checkpoints():
        studio.refresh_checkpoints()
        return None

    @router.get("/sd-vae", response_model=list[SDVaeItem])
    def sd_vae():
        return [SDVaeItem(model_name=f.name, filename=str(f.path)) for f in studio.catalog.vaes]

    @router.post("/refresh-vae")
    def refresh_vae():
        studio.refresh_checkpoints()  # one rescan covers both folders
        return None

    @router.get("/samplers", response_model=list[SamplerItem])
    def sampler_list():
        return samplers.api_sampler_list()

    @router.get("/schedulers", response_model=list[SchedulerItem])
    def scheduler_list():
        return samplers.api_scheduler_list()

    # --- styles and extra networks ---

    @router.get("/prompt-styles", response_model=list[PromptStyleItem])
    def prompt_styles():
        return [PromptStyleItem(name=s.name, prompt=s.prompt, negative_prompt=s.negative_prompt) for s in studio.styles.all()]

    @router.get("/embeddings", response_model=EmbeddingsResponse)
    def embeddings():
        """Embedding files; "loaded" are those whose width fits the active model, as in A1111."""
        active = studio.manager.active
        return network_info.embeddings_report(studio.networks.list("embedding"), active.spec if active else None)

    @router.post("/refresh-embeddings")
    def refresh_embeddings():
        studio.networks.refresh("embedding")
        return None

    @router.get("/loras", response_model=list[LoraItem])
    def loras():
        items = []
        for f in studio.networks.list("lora"):
            metadata = network_info.lora_metadata(f.path)
            alias = metadata.get("ss_output_name")
            items.append(LoraItem(name=f.name, alias=alias if isinstance(alias, str) and alias else f.name,
                                  path=str(f.path), metadata=metadata))
        return items

    @router.post("/refresh-loras")
    def refresh_loras():
        studio.networks.refresh("lora")
        return None

    @router.get("/hypernetworks", response_model=list[HypernetworkItem])
    def hypernetworks():
        return [HypernetworkItem(name=f.name, path=str(f.path)) for f in studio.networks.list("hypernetwork")]

    # --- options and flags ---

    @router.get("/options")
    def get_options() -> dict[str, Any]:
        return studio.options.as_dict()

    @router.post("/options", responses={400: {}, 422: {}})
    def set_options(changes: dict[str, Any] = Body(...)):
        """Change options (A1111 keys); ``sd_model_checkpoint`` switches the model. All or nothing."""
        changes = dict(changes)
        if "sd_model_checkpoint" in changes:
            wanted = changes.pop("sd_model_checkpoint")
            found = studio.catalog.find_checkpoint(wanted) if isinstance(wanted, str) else None
            if found is None:
                names = ", ".join(f.title for f in studio.catalog.checkpoints) or "none"
                return error_response(422, "CheckpointNotFound", f"checkpoint not found: {wanted!r}; available: {names}")
            # Applied first: if loading fails, no other option has been touched.
            changes = {"sd_model_checkpoint": found.title, **changes}
        try:
            studio.options.update(changes)
        except OptionError as e:
            return error_response(422, "OptionError", str(e))
        except CheckpointError as e:
            active = studio.manager.active
            kept = f"; {active.file.title} stays loaded" if active else ""
            return error_response(400, "CheckpointError", f"{e}{kept}")
        active = studio.manager.active
        if "sd_model_checkpoint" in changes and active is not None and studio.options.sd_model_checkpoint != active.file.title:
            studio.options.update({"sd_model_checkpoint": active.file.title})  # the title with its hash
        return None

    @router.get("/cmd-flags")
    def cmd_flags() -> dict[str, Any]:
        return {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(studio.cmd).items()}

    # --- progress and control ---

    @router.get("/progress", response_model=ProgressResponse)
    def progress(skip_current_image: bool = Query(False)):
        job = studio.queue.current()
        if job is None:
            return ProgressResponse(progress=0.0, eta_relative=0.0, state=ProgressState(), current_image=None, textinfo=None)
        p = job.progress
        started = job.started_at or time.time()
        interrupted, skipped = studio.queue.current_flags()
        state = ProgressState(
            skipped=skipped,
            interrupted=interrupted,
            job="txt2img",
            job_count=p.image_count,
            job_timestamp=time.strftime("%Y%m%d%H%M%S", time.localtime(started)),
            job_no=p.image_index,
            sampling_step=p.step,
            sampling_steps=p.total,
        )
        image = None if skip_current_image else encode_preview(p.preview)
        return ProgressResponse(progress=min(1.0, p.fraction), eta_relative=p.eta_seconds or 0.0,
                                state=state, current_image=image, textinfo=p.textinfo)

    @router.post("/interrupt")
    def interrupt():
        studio.queue.interrupt()
        return {}

    @router.post("/skip")
    def skip():
        studio.queue.skip()
        return {}

    @router.get("/memory", response_model=MemoryResponse)
    def memory():
        return MemoryResponse(ram=_ram(), cuda=_cuda())

    # --- images ---

    @router.post("/png-info", response_model=PNGInfoResponse, responses={422: {}})
    def png_info(req: PNGInfoRequest):
        if not req.image.strip():
            return PNGInfoResponse(info="", items={}, parameters={})
        try:
            image = decode_image(req.image)
        except ValueError as e:
            raise RequestValidationError([_field_error(("image",), str(e))]) from None
        text = infotext.read_image_infotext(image) or ""
        items = {str(k): _plain(v) for k, v in (image.info or {}).items()
                 if k not in _HIDDEN_INFO_KEYS and not isinstance(v, (bytes, bytearray))}
        return PNGInfoResponse(info=text, items=items, parameters=infotext.parse_infotext(text) if text else {})

    return router


def _ram() -> dict[str, Any]:
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil is a dependency
        return {"error": "psutil is not installed"}
    total = psutil.virtual_memory().total
    used = psutil.Process(os.getpid()).memory_info().rss
    return {"free": psutil.virtual_memory().available, "used": used, "total": total}


def _cuda() -> dict[str, Any]:
    import torch

    if not torch.cuda.is_available():
        return {"error": "unavailable: no CUDA device"}
    try:
        free, total = torch.cuda.mem_get_info()
        stats = torch.cuda.memory_stats()
    except RuntimeError as e:
        return {"error": str(e)}

    def pair(name: str) -> dict[str, int]:
        return {"current": stats.get(f"{name}.all.current", 0), "peak": stats.get(f"{name}.all.peak", 0)}

    return {
        "system": {"free": free, "used": total - free, "total": total},
        "active": pair("active_bytes"),
        "allocated": pair("allocated_bytes"),
        "reserved": pair("reserved_bytes"),
        "inactive": pair("inactive_split_bytes"),
        "events": {"retries": stats.get("num_alloc_retries", 0), "oom": stats.get("num_ooms", 0)},
    }
