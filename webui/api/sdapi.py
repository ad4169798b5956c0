"""``/sdapi/v1``: the A1111-compatible REST API.

Every generation goes through the Studio's job queue (``studio.generate``), from a plain ``def``
endpoint so the wait happens on a threadpool thread, never on the event loop.

Where we differ from A1111, on purpose (see docs/api.md): a bad sampler, size, step count or
number is a 422 with a readable ``message`` instead of a silent substitution or a 500, and the
features we do not have yet (face restoration, scripts, ...) are accepted and ignored with a
note in ``info["notes"]`` rather than refused.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Body, Depends, Query
from fastapi.exceptions import RequestValidationError

from webui import infotext, samplers
from webui.api import network_info
from webui.api.access import (
    admin_only,
    caller,
    failure,
    owner_filter,
    shown_path,
    submit_refusal,
)
from webui.api.common import error_response, field_error
from webui.api.images import encode_preview, response_images
from webui.api.img2img_request import build_img2img_request
from webui.api.models import (
    EmbeddingsResponse,
    HypernetworkItem,
    ImageToImageResponse,
    Img2ImgApiRequest,
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
from webui.api.txt2img_request import build_generation_request
from webui.app import GenerationCancelled, GenerationFailed, Studio
from webui.auth.users import User
from webui.image_metadata import read_metadata
from webui.jobs import QueueFull
from webui.limits import LimitExceeded
from webui.models.safe_load import CheckpointError
from webui.request_img2img import decode_image
from webui.settings import OptionError, OptionSaveError

log = logging.getLogger(__name__)

# --- the router --------------------------------------------------------------------------------


def sdapi_router(studio: Studio) -> APIRouter:
    router = APIRouter(prefix="/sdapi/v1", tags=["sdapi (A1111-compatible)"])

    def generate(request, req: Txt2ImgApiRequest, user: User) -> tuple[list[str], str] | Any:
        """Run a request to its end: (base64 images, info JSON), or the error response."""
        try:
            result = studio.generate(request, owner=user.name)
        except GenerationCancelled as e:
            return error_response(409, "Cancelled", str(e))
        except GenerationFailed as e:
            return failure(str(e))
        except (LimitExceeded, QueueFull, RuntimeError) as e:  # over a limit, queue full, or stopping
            return submit_refusal(e)
        images, info = response_images(result, studio.options, send=req.send_images is not False)
        return images, json.dumps(info)

    @router.post("/txt2img", response_model=TextToImageResponse, responses={400: {}, 422: {}, 429: {}, 500: {}})
    def txt2img(req: Txt2ImgApiRequest, user: User = Depends(caller)):
        """Generate synchronously (queued behind other jobs, fairly across users); A1111's body and response."""
        outcome = generate(build_generation_request(req, studio, user), req, user)
        if not isinstance(outcome, tuple):
            return outcome
        images, info = outcome
        return TextToImageResponse(images=images, parameters=req.model_dump(mode="json"), info=info)

    @router.post("/img2img", response_model=ImageToImageResponse, responses={400: {}, 422: {}, 429: {}, 500: {}})
    def img2img(req: Img2ImgApiRequest, user: User = Depends(caller)):
        """img2img, inpaint and outpaint, synchronously; A1111's body and response."""
        outcome = generate(build_img2img_request(req, studio, user), req, user)
        if not isinstance(outcome, tuple):
            return outcome
        images, info = outcome
        parameters = req.model_dump(mode="json")
        if not req.include_init_images:  # A1111 leaves the (large) inputs out of the echo
            parameters["init_images"], parameters["mask"] = None, None
        return ImageToImageResponse(images=images, parameters=parameters, info=info)

    # --- models ---

    roots = [studio.paths.ckpt_dir, studio.paths.vae_dir, *(f for fs in studio.paths.network_folders().values() for f in fs)]

    @router.get("/sd-models", response_model=list[SDModelItem])
    def sd_models(user: User = Depends(caller)):
        items = []
        for f in studio.catalog.checkpoints:
            sidecar = f.path.with_suffix(".yaml")
            items.append(SDModelItem(
                title=f.title, model_name=f.model_name, hash=f.short_hash, sha256=f.sha256,
                filename=shown_path(f.path, roots, user),
                config=shown_path(sidecar, roots, user) if sidecar.is_file() else None,
            ))
        return items

    @router.post("/refresh-checkpoints")
    def refresh_checkpoints():
        studio.refresh_checkpoints()
        return None

    @router.get("/sd-vae", response_model=list[SDVaeItem])
    def sd_vae(user: User = Depends(caller)):
        return [SDVaeItem(model_name=f.name, filename=shown_path(f.path, roots, user)) for f in studio.catalog.vaes]

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
        active = studio.manager.selected
        return network_info.embeddings_report(studio.networks.list("embedding"), active.spec if active else None)

    @router.post("/refresh-embeddings")
    def refresh_embeddings():
        studio.networks.refresh("embedding")
        return None

    @router.get("/loras", response_model=list[LoraItem])
    def loras(user: User = Depends(caller)):
        items = []
        for f in studio.networks.list("lora"):
            metadata = network_info.lora_metadata(f.path)
            alias = metadata.get("ss_output_name")
            items.append(LoraItem(name=f.name, alias=alias if isinstance(alias, str) and alias else f.name,
                                  path=shown_path(f.path, roots, user), metadata=metadata))
        return items

    @router.post("/refresh-loras")
    def refresh_loras():
        studio.networks.refresh("lora")
        return None

    @router.get("/hypernetworks", response_model=list[HypernetworkItem])
    def hypernetworks(user: User = Depends(caller)):
        return [HypernetworkItem(name=f.name, path=shown_path(f.path, roots, user))
                for f in studio.networks.list("hypernetwork")]

    # --- options and flags ---

    @router.get("/options")
    def get_options() -> dict[str, Any]:
        return studio.options.as_dict()

    @router.post("/options", responses={400: {}, 403: {}, 422: {}, 507: {}})
    def set_options(changes: dict[str, Any] = Body(...), user: User = Depends(caller)):
        """Change options (A1111 keys; admins only when logins are on); ``sd_model_checkpoint``
        switches the model for everyone (users choose theirs per request with override_settings)."""
        refused = admin_only(user, "change settings or switch the model for everyone; use override_settings "
                                   "for your own jobs")
        if refused is not None:
            return refused
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
        except OptionSaveError as e:
            return error_response(507, "NotSaved", str(e))
        except OptionError as e:
            return error_response(422, "OptionError", str(e))
        except CheckpointError as e:
            active = studio.manager.selected
            kept = f"; {active.file.title} stays loaded" if active else ""
            return error_response(400, "CheckpointError", f"{e}{kept}")
        active = studio.manager.selected
        if "sd_model_checkpoint" in changes and active is not None and studio.options.sd_model_checkpoint != active.file.title:
            studio.options.update({"sd_model_checkpoint": active.file.title})  # the title with its hash
        return None

    @router.get("/cmd-flags")
    def cmd_flags() -> dict[str, Any]:
        """The command line, with every login secret masked (A1111 echoes them)."""
        flags = {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(studio.cmd).items()}
        for secret in ("gradio_auth", "api_auth"):
            if flags.get(secret):
                flags[secret] = "********"
        return flags

    # --- progress and control ---

    @router.get("/progress", response_model=ProgressResponse)
    def progress(skip_current_image: bool = Query(False), user: User = Depends(caller)):
        """The caller's running job (an admin's: whichever runs), as A1111 reports it."""
        job = studio.queue.current(owner_filter(user))
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
    def interrupt(user: User = Depends(caller)):
        """Stop the caller's running job (an admin's: whichever runs) after its current step."""
        studio.queue.interrupt(owner_filter(user))
        return {}

    @router.post("/skip")
    def skip(user: User = Depends(caller)):
        studio.queue.skip(owner_filter(user))
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
            raise RequestValidationError([field_error(("image",), str(e))]) from None
        text, items = read_metadata(image)
        # As A1111 v1.10: the text parsed even when empty (its defaults), and extensions'
        # on_infotext_pasted may change what was parsed.
        params = infotext.parse_infotext(text)
        plugins = getattr(studio, "plugins", None)
        if plugins is not None:
            plugins.callbacks.call("infotext_pasted", text, params)
        return PNGInfoResponse(info=text, items=items, parameters=params)

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
