"""txt2img tab: A1111's layout; builds a GenerationRequest, submits it, shows progress and results.

No generation here: Generate submits to ``studio.queue`` and polls the job, yielding the progress
bar and live preview, then the saved PNG files. Files, not PIL images, go to the gallery because
Gradio re-encodes PIL images to webp and would drop the "parameters" infotext.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any, Iterator

import gradio as gr
from pydantic import ValidationError

from webui import samplers
from webui.jobs import Job, JobState
from webui.request import MAX_SIZE, MIN_SIZE, GenerationRequest
from webui.styles import StyleError
from webui.ui.extra_networks import ExtraNetworksPanel, build_extra_networks
from webui.ui.styles_ui import build_styles
from webui.ui.token_counter import add_token_counter

POLL_SECONDS = 0.25
_OUTPUT_KEYS = ("outdir_samples", "outdir_txt2img_samples", "outdir_txt2img_grids")
_FIELD_LABELS = {
    "width": "Width", "height": "Height", "steps": "Sampling steps", "cfg_scale": "CFG Scale",
    "seed": "Seed", "subseed": "Variation seed", "subseed_strength": "Variation strength",
    "seed_resize_from_w": "Resize seed from width", "seed_resize_from_h": "Resize seed from height",
    "batch_size": "Batch size", "n_iter": "Batch count", "sampler_name": "Sampling method",
    "scheduler": "Schedule type",
}


# Ctrl+Enter in a prompt box clicks Generate, as in A1111 (runs once when the page loads); tool
# buttons get their hover titles (Gradio buttons have no title parameter).
HOTKEYS_JS = """
() => {
  const titles = {
    txt2img_extra_networks: 'Show/hide extra networks', txt2img_style_apply: 'Apply the selected styles to the prompts',
    txt2img_style_create: 'Save the current prompts as a style', txt2img_styles_refresh: 'Reload styles.csv',
  };
  document.addEventListener('mouseover', (e) => {
    const button = e.target.closest && e.target.closest('button[id]');
    if (button && titles[button.id] && !button.title) button.title = titles[button.id];
  });
  document.addEventListener('keydown', (e) => {
    if ((e.ctrlKey || e.metaKey) && e.key === 'Enter' && e.target.closest('#txt2img_prompt, #txt2img_neg_prompt')) {
      e.preventDefault();
      const button = document.querySelector('#txt2img_generate');
      if (button && button.offsetParent !== null) button.click();
    }
  });
}
"""


def output_folders(studio: Any) -> list[str]:
    """Where txt2img writes images (Gradio must be allowed to serve them)."""
    folders = {str(studio.paths.outputs(studio.options.get(k)).resolve()) for k in _OUTPUT_KEYS if studio.options.get(k)}
    return sorted(folders)


def _allow(demo: gr.Blocks, paths: list[Path]) -> None:
    # An output folder set in Settings after start is not in launch()'s allowed_paths yet; allow
    # the exact folder of each image returned (Gradio reads this list at every file it serves).
    for folder in {str(p.resolve().parent) for p in paths}:
        if folder not in demo.allowed_paths:
            demo.allowed_paths.append(folder)


def validation_message(error: ValidationError) -> str:
    """Pydantic's errors as one line per field, with the labels the user sees."""
    lines = []
    for e in error.errors():
        where = ".".join(_FIELD_LABELS.get(str(p), str(p)) for p in e.get("loc", ()))
        msg = str(e.get("msg", "invalid")).removeprefix("Value error, ")
        lines.append(f"{where}: {msg}" if where else msg)
    return "\n".join(lines) or "invalid request"


def _progress_html(job: Job, position: int | None) -> str:
    if job.state is JobState.QUEUED:
        ahead = f" ({position} ahead)" if position else ""
        return _bar(0, f"Waiting in queue{ahead}…")
    p = job.progress
    pct = int(round(p.fraction * 100))
    eta = f" · ETA {_seconds(p.eta_seconds)}" if p.eta_seconds is not None else ""
    return _bar(pct, f"{pct}%{eta} · {p.textinfo}")


def _bar(pct: int, text: str) -> str:
    return (f'<div class="sd-progress"><div class="sd-progress-bar" style="width:{pct}%"></div>'
            f'<span class="sd-progress-text">{html.escape(text)}</span></div>')


def _seconds(value: float) -> str:
    return f"{value:.1f}s" if value < 60 else f"{int(value // 60)}m {int(value % 60)}s"


def _error_html(message: str) -> str:
    return f'<div class="sd-error">{html.escape(message)}</div>'


def _shown_items(studio: Any, result: Any) -> list[Any]:
    """Grid first (when there is one and return_grid is on), then each image; saved ones by path."""
    items = []
    if result.grid is not None and studio.options.return_grid:
        items.append(result.grid)
    items.extend(result.images)
    return items


def _finished_outputs(studio: Any, demo: gr.Blocks, job: Job) -> tuple:
    """(gallery, info, log, progress, preview, state) for a finished job."""
    wall = (job.finished_at or 0) - (job.started_at or job.created_at)
    if job.state is JobState.FAILED:
        return _outputs(gallery=[], log=_error_html(f"Error: {job.error}"))
    if job.state is JobState.CANCELLED:
        return _outputs(gallery=[], log=_error_html("Cancelled."))
    result = job.result
    items = _shown_items(studio, result)
    paths = [g.path for g in items if g.path is not None]
    _allow(demo, paths)
    # Unsaved images (saving off) still show, as PNG; only saved files keep their infotext.
    gallery = [str(g.path) if g.path is not None else g.image for g in items]
    state = {"infotexts": [g.infotext for g in items], "seeds": [g.seed for g in items],
             "subseeds": [g.subseed for g in items], "selected": 0}
    timings = f"Time taken: {_seconds(result.timings.get('total', wall))}"
    if job.started_at and job.created_at and job.started_at - job.created_at > 0.5:
        timings += f" · waited in queue {_seconds(job.started_at - job.created_at)}"
    note = " · Interrupted" if result.interrupted else ""
    log = f'<div class="sd-timings">{html.escape(timings + note)}</div>'
    info = state["infotexts"][0] if items else ""
    if not items:
        log = _error_html("Interrupted before any image was finished.")
    return _outputs(gallery=gallery, info=info, log=log, state=state)


def _outputs(*, gallery: list | None = None, info: Any = "", log: Any = "", progress: Any = "",
             state: dict | None = None) -> tuple:
    """(gallery, info, log, progress, preview, state); ``None`` keeps what is shown. Plain values,
    not updates, so API clients get a list of files; visibility is switched by ``running``."""
    return (gr.skip() if gallery is None else gallery, info, log, progress, None,
            gr.skip() if state is None else state)


def build_txt2img_tab(studio: Any, demo: gr.Blocks) -> ExtraNetworksPanel:
    opts = studio.options
    sampler_names = [s.name for s in samplers.SAMPLERS]

    def default_sampler() -> str:
        wanted = samplers.find_sampler(opts.txt2img_default_sampler)
        return wanted.name if wanted else sampler_names[0]

    with gr.Row(elem_id="txt2img_toprow"):
        with gr.Column(scale=6):
            with gr.Column(elem_classes=["sd-prompt-wrap"]):
                prompt = gr.Textbox(label="Prompt", show_label=False, lines=3, max_lines=12, elem_id="txt2img_prompt",
                                    placeholder="Prompt (press Ctrl+Enter to generate)")  # see HOTKEYS_JS
                add_token_counter(studio, prompt, "txt2img_token_counter")
            with gr.Column(elem_classes=["sd-prompt-wrap"]):
                negative = gr.Textbox(label="Negative prompt", show_label=False, lines=2, max_lines=12,
                                      elem_id="txt2img_neg_prompt", placeholder="Negative prompt")
                add_token_counter(studio, negative, "txt2img_negative_token_counter")
        with gr.Column(scale=1, min_width=300):
            generate = gr.Button("Generate", variant="primary", elem_id="txt2img_generate")
            with gr.Row():
                interrupt = gr.Button("Interrupt", elem_id="txt2img_interrupt", visible=False, min_width=60)
                skip = gr.Button("Skip", elem_id="txt2img_skip", visible=False, min_width=60)
            with gr.Row(elem_id="txt2img_tools") as tools:
                show_networks = gr.Button("🎴", elem_classes=["tool-button"], elem_id="txt2img_extra_networks",
                                          scale=0, min_width=40)
            styles = build_styles(studio, demo, prompt, negative, tools).dropdown
    networks = build_extra_networks(studio, show_networks)

    with gr.Row(equal_height=False):
        with gr.Column(scale=1, elem_id="txt2img_settings"):
            with gr.Row():
                sampler = gr.Dropdown(sampler_names, value=default_sampler(), label="Sampling method",
                                      elem_id="txt2img_sampling")
                schedule = gr.Dropdown(list(samplers.SCHEDULE_TYPES), value="Automatic", label="Schedule type",
                                       elem_id="txt2img_scheduler")
            steps = gr.Slider(1, 150, step=1, precision=0, value=opts.txt2img_default_steps,
                              label="Sampling steps", elem_id="txt2img_steps")
            with gr.Row():
                with gr.Column(scale=3):
                    width = gr.Slider(MIN_SIZE, MAX_SIZE, step=8, precision=0, value=opts.txt2img_default_width,
                                      label="Width", elem_id="txt2img_width")
                    height = gr.Slider(MIN_SIZE, MAX_SIZE, step=8, precision=0, value=opts.txt2img_default_height,
                                       label="Height", elem_id="txt2img_height")
                with gr.Column(scale=2):
                    n_iter = gr.Slider(1, 100, step=1, precision=0, value=1, label="Batch count", elem_id="txt2img_batch_count")
                    batch_size = gr.Slider(1, 8, step=1, precision=0, value=1, label="Batch size", elem_id="txt2img_batch_size")
            cfg = gr.Slider(1.0, 30.0, step=0.5, value=opts.txt2img_default_cfg, label="CFG Scale",
                            elem_id="txt2img_cfg_scale")
            with gr.Row(elem_id="txt2img_seed_row"):
                seed = gr.Number(value=-1, precision=0, label="Seed", elem_id="txt2img_seed", scale=4)
                random_seed = gr.Button("🎲", elem_classes=["tool-button"], elem_id="txt2img_random_seed", scale=0)
                reuse_seed = gr.Button("♻️", elem_classes=["tool-button"], elem_id="txt2img_reuse_seed", scale=0)
            with gr.Accordion("Extra", open=False, elem_id="txt2img_seed_extras"):
                with gr.Row():
                    subseed = gr.Number(value=-1, precision=0, label="Variation seed", elem_id="txt2img_subseed", scale=4)
                    random_subseed = gr.Button("🎲", elem_classes=["tool-button"], scale=0)
                    reuse_subseed = gr.Button("♻️", elem_classes=["tool-button"], scale=0)
                    subseed_strength = gr.Slider(0.0, 1.0, step=0.01, value=0.0, label="Variation strength",
                                                 elem_id="txt2img_subseed_strength", scale=4)
                with gr.Row():
                    resize_w = gr.Slider(0, MAX_SIZE, step=8, precision=0, value=0, label="Resize seed from width",
                                         elem_id="txt2img_seed_resize_from_w")
                    resize_h = gr.Slider(0, MAX_SIZE, step=8, precision=0, value=0, label="Resize seed from height",
                                         elem_id="txt2img_seed_resize_from_h")

        with gr.Column(scale=1, elem_id="txt2img_results"):
            progress = gr.HTML("", elem_id="txt2img_progress")
            preview = gr.Image(label="Preview", type="pil", format="png", visible=False, interactive=False,
                               height=512, elem_id="txt2img_preview")
            gallery = gr.Gallery(label="Output", format="png", columns=4, height=512, object_fit="contain",
                                 interactive=False, elem_id="txt2img_gallery")
            info = gr.Textbox(label="Generation info", lines=3, max_lines=12, interactive=False,
                              buttons=["copy"], elem_id="txt2img_generation_info")
            html_log = gr.HTML("", elem_id="txt2img_html_log")
    shown = gr.State({"infotexts": [], "seeds": [], "subseeds": [], "selected": 0})

    # Parameter names follow GenerationRequest, so API clients can pass them by keyword.
    def run(prompt: str, negative_prompt: str, sampler_name: str, scheduler: str, steps: float,
            width: float, height: float, cfg_scale: float, seed: float | None, subseed: float | None,
            subseed_strength: float, seed_resize_from_w: float, seed_resize_from_h: float, n_iter: float,
            batch_size: float, styles: list[str] | None = None, request: gr.Request | None = None) -> Iterator[tuple]:
        try:
            studio.styles.check(styles or [])  # a style deleted from styles.csv since it was picked
            req = GenerationRequest(
                prompt=prompt or "", negative_prompt=negative_prompt or "", styles=list(styles or []),
                sampler_name=sampler_name or default_sampler(), scheduler=scheduler or "Automatic",
                steps=steps, width=width, height=height, cfg_scale=cfg_scale,
                seed=-1 if seed is None else seed, subseed=-1 if subseed is None else subseed,
                subseed_strength=subseed_strength or 0.0,
                # 0 on the sliders means "off", the request's -1.
                seed_resize_from_w=seed_resize_from_w if seed_resize_from_w and seed_resize_from_w > 0 else -1,
                seed_resize_from_h=seed_resize_from_h if seed_resize_from_h and seed_resize_from_h > 0 else -1,
                n_iter=n_iter, batch_size=batch_size,
            )
        except ValidationError as e:
            yield _outputs(info=gr.skip(), log=_error_html(validation_message(e)))
            return
        except StyleError as e:
            yield _outputs(info=gr.skip(), log=_error_html(f"Styles: {e}"))
            return
        try:
            job = studio.submit(req, owner=getattr(request, "session_hash", None))
        except RuntimeError as e:  # the queue is stopping (server shutdown)
            yield _outputs(info=gr.skip(), log=_error_html(str(e)))
            return
        yield (gr.skip(), gr.skip(), "", _progress_html(job, studio.queue.queue_position(job.id)), None, gr.skip())
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
            yield (gr.skip(), gr.skip(), gr.skip(), _progress_html(job, position),
                   p.preview if new_preview else gr.skip(), gr.skip())
        yield _finished_outputs(studio, demo, job)

    def select(state: dict, evt: gr.SelectData) -> tuple[str, dict]:
        index = evt.index if isinstance(evt.index, int) else 0
        texts = state.get("infotexts", [])
        return (texts[index] if 0 <= index < len(texts) else ""), {**state, "selected": index}

    def reuse(state: dict, key: str) -> int:
        values = state.get(key, [])
        index = state.get("selected", 0)
        return values[index] if 0 <= index < len(values) else -1

    def running(active: bool) -> tuple[dict, ...]:
        # While running, Interrupt/Skip replace Generate and the preview takes the gallery's place
        # (same height), so the layout does not jump.
        # (Fresh update objects for each output: Gradio mutates them while post-processing.)
        return tuple(gr.update(visible=active if busy else not active) for busy in (False, True, True, False, True))

    inputs = [prompt, negative, sampler, schedule, steps, width, height, cfg, seed, subseed, subseed_strength,
              resize_w, resize_h, n_iter, batch_size, styles]
    outputs = [gallery, info, html_log, progress, preview, shown]
    switched = [generate, interrupt, skip, gallery, preview]
    private: dict[str, Any] = {"api_visibility": "private", "queue": False}

    # Polling only: the job queue serialises the work, so any number of pages may wait at once.
    generate.click(lambda: running(True), outputs=switched, **private).then(
        run, inputs=inputs, outputs=outputs, api_name="txt2img", concurrency_limit=None, show_progress="hidden",
    ).then(lambda: running(False), outputs=switched, **private)
    # queue=False: these must reach the server while Generate's event is still streaming.
    interrupt.click(lambda: studio.queue.interrupt() and None, **private)
    skip.click(lambda: studio.queue.skip() and None, **private)
    gallery.select(select, inputs=shown, outputs=[info, shown], **private)
    random_seed.click(lambda: -1, outputs=seed, **private)
    random_subseed.click(lambda: -1, outputs=subseed, **private)
    reuse_seed.click(lambda s: reuse(s, "seeds"), inputs=shown, outputs=seed, **private)
    reuse_subseed.click(lambda s: reuse(s, "subseeds"), inputs=shown, outputs=subseed, **private)
    # The "Defaults" settings apply from the next page load, without a restart.
    demo.load(lambda: (default_sampler(), opts.txt2img_default_steps, opts.txt2img_default_width,
                       opts.txt2img_default_height, opts.txt2img_default_cfg),
              outputs=[sampler, steps, width, height, cfg], **private)
    return networks
