"""The parts every generation tab shares, built per tab: element ids are ``<tab>_<name>``.

    build_prompt_row   prompt and negative prompt (token counters), Generate / Interrupt / Skip,
                       tool buttons, styles, the extra networks panel
    build_sampling     sampler and schedule type, steps, size, batch, CFG, seed and its extras
    build_results      progress bar, live preview, gallery, generation info, the log

A1111's element ids are kept (``txt2img_prompt``, ``txt2img_steps``...) so the img2img tab gets
``img2img_prompt``... from the same builders, and user CSS and scripts keep working.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import gradio as gr

from webui import samplers
from webui.jobs import JobState
from webui.request import MAX_SIZE, MIN_SIZE
from webui.ui.extra_networks import ExtraNetworksPanel, build_extra_networks
from webui.ui.protocol import StudioView
from webui.ui.session import page_user
from webui.ui.styles_ui import build_styles
from webui.ui.token_counter import add_token_counter

PRIVATE: dict[str, Any] = {"api_visibility": "private", "queue": False}


def default_sampler(studio: StudioView) -> str:
    wanted = samplers.find_sampler(studio.options.txt2img_default_sampler)
    return wanted.name if wanted else samplers.SAMPLERS[0].name


@dataclass
class PromptRow:
    prompt: gr.Textbox
    negative: gr.Textbox
    generate: gr.Button
    interrupt: gr.Button
    skip: gr.Button
    styles: gr.Dropdown
    networks: ExtraNetworksPanel


def build_prompt_row(studio: StudioView, demo: gr.Blocks, tab: str) -> PromptRow:
    with gr.Row(elem_id=f"{tab}_toprow"):
        with gr.Column(scale=6):
            with gr.Column(elem_classes=["sd-prompt-wrap"]):
                prompt = gr.Textbox(label="Prompt", show_label=False, lines=3, max_lines=12, elem_id=f"{tab}_prompt",
                                    placeholder="Prompt (press Ctrl+Enter to generate)")
                add_token_counter(studio, prompt, f"{tab}_token_counter")
            with gr.Column(elem_classes=["sd-prompt-wrap"]):
                negative = gr.Textbox(label="Negative prompt", show_label=False, lines=2, max_lines=12,
                                      elem_id=f"{tab}_neg_prompt", placeholder="Negative prompt")
                add_token_counter(studio, negative, f"{tab}_negative_token_counter")
        with gr.Column(scale=1, min_width=300):
            generate = gr.Button("Generate", variant="primary", elem_id=f"{tab}_generate", elem_classes=["sd-generate"])
            with gr.Row():
                interrupt = gr.Button("Interrupt", elem_id=f"{tab}_interrupt", visible=False, min_width=60,
                                      elem_classes=["sd-stop"])
                skip = gr.Button("Skip", elem_id=f"{tab}_skip", visible=False, min_width=60, elem_classes=["sd-stop"])
            with gr.Row(elem_id=f"{tab}_tools", elem_classes=["sd-tools"]) as tools:
                show_networks = gr.Button("🎴", elem_classes=["tool-button"], elem_id=f"{tab}_extra_networks",
                                          scale=0, min_width=40)
            styles = build_styles(studio, demo, prompt, negative, tools, tab).dropdown
    networks = build_extra_networks(studio, show_networks, tab)
    return PromptRow(prompt, negative, generate, interrupt, skip, styles, networks)


@dataclass
class SamplingControls:
    sampler: gr.Dropdown
    schedule: gr.Dropdown
    steps: gr.Slider
    width: gr.Slider
    height: gr.Slider
    n_iter: gr.Slider
    batch_size: gr.Slider
    cfg: gr.Slider
    seed: gr.Number
    subseed: gr.Number
    subseed_strength: gr.Slider
    resize_w: gr.Slider
    resize_h: gr.Slider
    buttons: dict[str, gr.Button] = field(default_factory=dict)

    @property
    def inputs(self) -> list[gr.components.Component]:
        """In the order of the run functions' parameters (named after GenerationRequest's fields)."""
        return [self.sampler, self.schedule, self.steps, self.width, self.height, self.cfg, self.seed, self.subseed,
                self.subseed_strength, self.resize_w, self.resize_h, self.n_iter, self.batch_size]


def build_sampling(studio: StudioView, tab: str, after_steps: Callable[[], None] | None = None) -> SamplingControls:
    """The settings column; ``after_steps`` builds what goes below the steps (hires fix, refiner)."""
    opts = studio.options
    names = [s.name for s in samplers.SAMPLERS]
    with gr.Row():
        sampler = gr.Dropdown(names, value=default_sampler(studio), label="Sampling method", elem_id=f"{tab}_sampling")
        schedule = gr.Dropdown(list(samplers.SCHEDULE_TYPES), value="Automatic", label="Schedule type",
                               elem_id=f"{tab}_scheduler")
    steps = gr.Slider(1, 150, step=1, precision=0, value=opts.txt2img_default_steps, label="Sampling steps",
                      elem_id=f"{tab}_steps")
    if after_steps is not None:
        after_steps()
    with gr.Row():
        with gr.Column(scale=3):
            width = gr.Slider(MIN_SIZE, MAX_SIZE, step=8, precision=0, value=opts.txt2img_default_width, label="Width",
                              elem_id=f"{tab}_width")
            height = gr.Slider(MIN_SIZE, MAX_SIZE, step=8, precision=0, value=opts.txt2img_default_height,
                               label="Height", elem_id=f"{tab}_height")
        with gr.Column(scale=2):
            n_iter = gr.Slider(1, 100, step=1, precision=0, value=1, label="Batch count", elem_id=f"{tab}_batch_count")
            batch_size = gr.Slider(1, 8, step=1, precision=0, value=1, label="Batch size", elem_id=f"{tab}_batch_size")
    cfg = gr.Slider(1.0, 30.0, step=0.5, value=opts.txt2img_default_cfg, label="CFG Scale", elem_id=f"{tab}_cfg_scale")
    buttons: dict[str, gr.Button] = {}
    with gr.Row(elem_id=f"{tab}_seed_row"):
        seed = gr.Number(value=-1, precision=0, label="Seed", elem_id=f"{tab}_seed", scale=4)
        buttons["random_seed"] = gr.Button("🎲", elem_classes=["tool-button"], elem_id=f"{tab}_random_seed", scale=0)
        buttons["reuse_seed"] = gr.Button("♻️", elem_classes=["tool-button"], elem_id=f"{tab}_reuse_seed", scale=0)
    with gr.Accordion("Extra", open=False, elem_id=f"{tab}_seed_extras"):
        with gr.Row():
            subseed = gr.Number(value=-1, precision=0, label="Variation seed", elem_id=f"{tab}_subseed", scale=4)
            buttons["random_subseed"] = gr.Button("🎲", elem_classes=["tool-button"], scale=0)
            buttons["reuse_subseed"] = gr.Button("♻️", elem_classes=["tool-button"], scale=0)
            subseed_strength = gr.Slider(0.0, 1.0, step=0.01, value=0.0, label="Variation strength",
                                         elem_id=f"{tab}_subseed_strength", scale=4)
        with gr.Row():
            resize_w = gr.Slider(0, MAX_SIZE, step=8, precision=0, value=0, label="Resize seed from width",
                                 elem_id=f"{tab}_seed_resize_from_w")
            resize_h = gr.Slider(0, MAX_SIZE, step=8, precision=0, value=0, label="Resize seed from height",
                                 elem_id=f"{tab}_seed_resize_from_h")
    return SamplingControls(sampler, schedule, steps, width, height, n_iter, batch_size, cfg, seed, subseed,
                            subseed_strength, resize_w, resize_h, buttons)


@dataclass
class ResultsPanel:
    progress: gr.HTML
    preview: gr.Image
    gallery: gr.Gallery
    info: gr.Textbox
    log: gr.HTML
    shown: gr.State  # infotexts, seeds and subseeds of what the gallery shows
    job: gr.State  # the id of this page's last job (Interrupt and Skip act on it)

    @property
    def outputs(self) -> list[Any]:
        """What a run function yields into: (gallery, info, log, progress, preview, state, job)."""
        return [self.gallery, self.info, self.log, self.progress, self.preview, self.shown, self.job]


def build_results(tab: str) -> ResultsPanel:
    progress = gr.HTML("", elem_id=f"{tab}_progress")
    preview = gr.Image(label="Preview", type="pil", format="png", visible=False, interactive=False, height=512,
                       elem_id=f"{tab}_preview")
    gallery = gr.Gallery(label="Output", format="png", columns=4, height=512, object_fit="contain", interactive=False,
                         elem_id=f"{tab}_gallery")
    info = gr.Textbox(label="Generation info", lines=3, max_lines=12, interactive=False, buttons=["copy"],
                      elem_id=f"{tab}_generation_info")
    log = gr.HTML("", elem_id=f"{tab}_html_log")
    shown = gr.State({"infotexts": [], "seeds": [], "subseeds": [], "selected": 0})
    return ResultsPanel(progress, preview, gallery, info, log, shown, gr.State(None))


def wire_panel(studio: StudioView, demo: gr.Blocks, row: PromptRow, sampling: SamplingControls,
               results: ResultsPanel, run: Callable[..., Any], inputs: list[Any], api_name: str) -> None:
    """Generate (with Interrupt/Skip shown while it runs), seed buttons, gallery selection, defaults."""

    def running(active: bool) -> tuple[dict, ...]:
        # While running, Interrupt/Skip replace Generate and the preview takes the gallery's place
        # (same height), so the layout does not jump. Fresh update objects for each output.
        return tuple(gr.update(visible=active if busy else not active) for busy in (False, True, True, False, True))

    def select(state: dict, evt: gr.SelectData) -> tuple[str, dict]:
        index = evt.index if isinstance(evt.index, int) else 0
        texts = state.get("infotexts", [])
        return (texts[index] if 0 <= index < len(texts) else ""), {**state, "selected": index}

    def reuse(state: dict, key: str) -> int:
        values = state.get(key, [])
        index = state.get("selected", 0)
        return values[index] if 0 <= index < len(values) else -1

    switched = [row.generate, row.interrupt, row.skip, results.gallery, results.preview]
    # Polling only: the job queue serialises the work, so any number of pages may wait at once.
    row.generate.click(lambda: running(True), outputs=switched, **PRIVATE).then(
        run, inputs=inputs, outputs=results.outputs, api_name=api_name, concurrency_limit=None, show_progress="hidden",
    ).then(lambda: running(False), outputs=switched, **PRIVATE)

    def stop(job_id: str | None, request: gr.Request, skip: bool = False) -> None:
        """Interrupt (or skip in) this page's own job; another page's or user's is never touched."""
        job = studio.queue.get(job_id) if job_id else None
        user = page_user(studio, request)
        if job is None or not (user.is_admin or job.owner == user.name):
            return
        if job.state is JobState.QUEUED and not skip:
            studio.queue.cancel(job.id)
        elif skip:
            studio.queue.skip(job_id=job.id)
        else:
            studio.queue.interrupt(job_id=job.id)

    def skip(job_id: str | None, request: gr.Request) -> None:
        stop(job_id, request, skip=True)  # a named function: Gradio passes gr.Request by annotation only

    # queue=False: these must reach the server while Generate's event is still streaming.
    row.interrupt.click(stop, inputs=results.job, **PRIVATE)
    row.skip.click(skip, inputs=results.job, **PRIVATE)
    results.gallery.select(select, inputs=results.shown, outputs=[results.info, results.shown], **PRIVATE)
    buttons = sampling.buttons
    buttons["random_seed"].click(lambda: -1, outputs=sampling.seed, **PRIVATE)
    buttons["random_subseed"].click(lambda: -1, outputs=sampling.subseed, **PRIVATE)
    buttons["reuse_seed"].click(lambda s: reuse(s, "seeds"), inputs=results.shown, outputs=sampling.seed, **PRIVATE)
    buttons["reuse_subseed"].click(lambda s: reuse(s, "subseeds"), inputs=results.shown, outputs=sampling.subseed,
                                   **PRIVATE)
    # The "Defaults" settings apply from the next page load, without a restart.
    opts = studio.options
    demo.load(lambda: (default_sampler(studio), opts.txt2img_default_steps, opts.txt2img_default_width,
                       opts.txt2img_default_height, opts.txt2img_default_cfg),
              outputs=[sampling.sampler, sampling.steps, sampling.width, sampling.height, sampling.cfg], **PRIVATE)
