"""Following a queued job in a generation tab: the progress bar, live preview, then the results.

Shared by every tab that generates. Results are shown as saved PNG files, not PIL images:
Gradio re-encodes PIL images to webp and would drop the "parameters" infotext.
"""

from __future__ import annotations

import html
import logging
from typing import Any, Iterator

import gradio as gr
from pydantic import ValidationError

from webui.jobs import Job, JobState, QueueFull
from webui.limits import LimitExceeded
from webui.request import GenerationRequest
from webui.result import GeneratedImage, Result
from webui.ui.protocol import StudioView
from webui.ui.served_files import ServedFiles

log = logging.getLogger(__name__)

POLL_SECONDS = 0.25
_FIELD_LABELS = {
    "width": "Width", "height": "Height", "steps": "Sampling steps", "cfg_scale": "CFG Scale",
    "seed": "Seed", "subseed": "Variation seed", "subseed_strength": "Variation strength",
    "seed_resize_from_w": "Resize seed from width", "seed_resize_from_h": "Resize seed from height",
    "batch_size": "Batch size", "n_iter": "Batch count", "sampler_name": "Sampling method",
    "scheduler": "Schedule type", "hr_scale": "Upscale by", "hr_resize_x": "Resize width to",
    "hr_resize_y": "Resize height to", "hr_second_pass_steps": "Hires steps",
    "denoising_strength": "Denoising strength", "refiner_switch_at": "Switch at",
}


def validation_message(error: ValidationError) -> str:
    """Pydantic's errors as one line per field, with the labels the user sees."""
    lines = []
    for e in error.errors():
        where = ".".join(_FIELD_LABELS.get(str(p), str(p)) for p in e.get("loc", ()))
        msg = str(e.get("msg", "invalid")).removeprefix("Value error, ")
        if e.get("type") == "int_from_float":  # a seed of 1.5: refused, never rounded
            msg = f"must be a whole number, not {e.get('input')}"
        lines.append(f"{where}: {msg}" if where else msg)
    return "\n".join(lines) or "invalid request"


def progress_html(job: Job, position: int | None) -> str:
    if job.state is JobState.QUEUED:
        ahead = f" ({position} ahead of you)" if position else ""
        return _bar(0, f"Waiting in queue{ahead}…")
    p = job.progress
    pct = int(round(p.fraction * 100))
    eta = f" · ETA {seconds(p.eta_seconds)}" if p.eta_seconds is not None else ""
    return _bar(pct, f"{pct}%{eta} · {p.textinfo}")


def _bar(pct: int, text: str) -> str:
    return (f'<div class="sd-progress"><div class="sd-progress-bar" style="width:{pct}%"></div>'
            f'<span class="sd-progress-text">{html.escape(text)}</span></div>')


def seconds(value: float) -> str:
    return f"{value:.1f}s" if value < 60 else f"{int(value // 60)}m {int(value % 60)}s"


def error_html(message: str) -> str:
    return f'<div class="sd-error">{html.escape(message)}</div>'


def warnings_html(warnings: list[str]) -> str:
    if not warnings:
        return ""
    items = "".join(f"<li>{html.escape(w)}</li>" for w in warnings)
    return f'<div class="sd-warnings">⚠️ Not everything asked for was used:<ul>{items}</ul></div>'


def outputs(*, gallery: list | None = None, info: Any = "", log_html: Any = "", progress: Any = "",
            state: dict | None = None, job_id: Any = None) -> tuple:
    """(gallery, info, log, progress, preview, state, job id); ``None`` keeps what is shown. Plain
    values, not updates, so API clients get a list of files; visibility is switched by the caller.
    A new gallery without a state gets one that lists its files only (Save and Zip use them)."""
    if gallery is not None and state is None:
        state = shown_state(files=[g for g in gallery if isinstance(g, str)])
    return (gr.skip() if gallery is None else gallery, info, log_html, progress, None,
            gr.skip() if state is None else state, gr.skip() if job_id is None else job_id)


def shown_state(infotexts: list[str] | None = None, seeds: list[int] | None = None,
                subseeds: list[int] | None = None, files: list[str] | None = None) -> dict:
    """What the gallery shows, kept on the server: ``files`` are served paths (Save and Zip read
    them, never paths sent by the page); ``selected`` is the clicked image's index, None before."""
    return {"infotexts": infotexts or [], "seeds": seeds or [], "subseeds": subseeds or [], "files": files or [],
            "selected": None}


def _shown_items(studio: StudioView, result: Result) -> list[GeneratedImage]:
    """Grid first (when there is one and return_grid is on), then each image."""
    items = []
    if result.grid is not None and studio.options.return_grid:
        items.append(result.grid)
    items.extend(result.images)
    return items


def finished_outputs(studio: StudioView, served: ServedFiles, job: Job, what: str) -> tuple:
    """The outputs for a finished job: images and infotext, or the error (also logged)."""
    wall = (job.finished_at or 0) - (job.started_at or job.created_at)
    if job.state is JobState.FAILED:
        log.error("%s failed: %s", what, job.error)
        return outputs(gallery=[], log_html=error_html(f"Error: {job.error}"))
    if job.state is JobState.CANCELLED:
        return outputs(gallery=[], log_html=error_html("Cancelled."))
    result: Result = job.result
    items = _shown_items(studio, result)
    # Saved images go to the page as their files (a served copy: Gradio would re-encode a picture
    # and drop the infotext); unsaved ones (saving off) as PNG without it.
    gallery = [served.serve(g.path) if g.path is not None else served.serve_image(g.load(), f"{g.seed}.png")
               for g in items]
    state = shown_state([g.infotext for g in items], [g.seed for g in items], [g.subseed for g in items], gallery)
    timings = f"Time taken: {seconds(result.timings.get('total', wall))}"
    if job.started_at and job.created_at and job.started_at - job.created_at > 0.5:
        timings += f" · waited in queue {seconds(job.started_at - job.created_at)}"
    note = " · Interrupted" if result.interrupted else ""
    log_html = warnings_html(result.warnings) + f'<div class="sd-timings">{html.escape(timings + note)}</div>'
    if not items:
        log_html = error_html("Interrupted before any image was finished.")
    return outputs(gallery=gallery, info=state["infotexts"][0] if items else "", log_html=log_html, state=state)


def follow(studio: StudioView, served: ServedFiles, job: Job, what: str) -> Iterator[tuple]:
    """Yield progress (and new previews) until the job ends, then its results."""
    yield (gr.skip(), gr.skip(), "", progress_html(job, studio.queue.queue_position(job.id)), None, gr.skip(), job.id)
    shown_key: tuple = ()
    while not job.finished:
        job.done_event.wait(POLL_SECONDS)  # wakes at once when the job ends
        position = studio.queue.queue_position(job.id) if job.state is JobState.QUEUED else None
        p = job.progress
        key = (job.state, p.step, p.image_index, p.preview_step, position)
        if key == shown_key or job.finished:
            continue
        new_preview = p.preview_step != (shown_key[3] if shown_key else None) and p.preview is not None
        shown_key = key
        yield (gr.skip(), gr.skip(), gr.skip(), progress_html(job, position),
               p.preview if new_preview else gr.skip(), gr.skip(), gr.skip())
    yield finished_outputs(studio, served, job, what)


def submit_and_follow(studio: StudioView, served: ServedFiles, owner: str, request: GenerationRequest,
                      what: str) -> Iterator[tuple]:
    """Queue ``request`` for ``owner`` and follow it; a refusal (over a limit, queue full, the
    studio stopping) is shown as a message instead."""
    try:
        job = studio.submit(request, owner=owner)
    except (LimitExceeded, QueueFull, RuntimeError) as e:
        log.error("%s not queued: %s", what, e)
        yield outputs(info=gr.skip(), log_html=error_html(str(e)))
        return
    yield from follow(studio, served, job, what)
