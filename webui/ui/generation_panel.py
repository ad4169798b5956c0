"""The parts every generation tab shares, built per tab: element ids are ``<tab>_<name>``.

    build_prompt_row   prompt and negative prompt (token counters), Generate / Interrupt / Skip,
                       tool buttons (clear prompts, extra networks, styles), the extra networks panel
    build_sampling     sampler and schedule type, steps, size (with the swap button), batch, CFG,
                       seed and its extras
    build_results      progress bar, live preview, gallery, Open folder / Save / Zip, generation
                       info, the log

Tool buttons show symbols that common text fonts have (DejaVu Sans, Segoe UI Symbol...), never
emoji, which a browser without an emoji font draws as empty boxes; their hover titles are set by
the page script (``TOOL_TITLES`` in webui/ui/txt2img.py) from the end of their element id.

A1111's element ids are kept (``txt2img_prompt``, ``txt2img_steps``...) so the img2img tab gets
``img2img_prompt``... from the same builders, and user CSS and scripts keep working.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from html import escape as html_escape
from pathlib import Path
from typing import Any, Callable

import gradio as gr

from webui import samplers
from webui.jobs import JobState
from webui.request import MAX_PROMPT_CHARS, MAX_SIZE, MIN_SIZE
from webui.ui import output_folder
from webui.ui.extra_networks import ExtraNetworksPanel, build_extra_networks
from webui.ui.job_view import error_html, shown_state
from webui.ui.protocol import StudioView
from webui.ui.served_files import ServedFiles
from webui.ui.session import page_user
from webui.ui.styles_ui import build_styles
from webui.ui.token_counter import add_token_counter

PRIVATE: dict[str, Any] = {"api_visibility": "private", "queue": False}

# The tool buttons' symbols (see the module's docstring).
ICON_RANDOM = "\u2684"  # ⚄ a die
ICON_REUSE = "\u267b"  # ♻ (text presentation)
ICON_REFRESH = "\u21bb"  # ↻
ICON_NETWORKS = "\u25a6"  # ▦ a grid of cards
ICON_CLEAR = "\u232b"  # ⌫
ICON_SWAP = "\u21c5"  # ⇅


def offered_schedules(sampler: str | None, first: tuple[str, ...] = ()) -> list[str]:
    """The schedule types a sampler's dropdown offers (every one for an unknown sampler)."""
    return [*first, *(samplers.schedules_for(sampler or "") or samplers.SCHEDULE_TYPES)]


def default_sampler(studio: StudioView) -> str:
    wanted = samplers.find_sampler(studio.options.txt2img_default_sampler)
    return wanted.name if wanted else samplers.SAMPLERS[0].name


def request_fields(studio: StudioView, prompt: str | None, negative_prompt: str | None, styles: list[str] | None,
                   sampler_name: str | None, scheduler: str | None, steps: float, cfg_scale: float,
                   seed: float | None, subseed: float | None, subseed_strength: float | None,
                   seed_resize_from_w: float | None, seed_resize_from_h: float | None, n_iter: float,
                   batch_size: float) -> dict[str, Any]:
    """The shared controls' values as GenerationRequest fields (every tab but for the size)."""
    return dict(
        prompt=prompt or "", negative_prompt=negative_prompt or "", styles=list(styles or []),
        sampler_name=sampler_name or default_sampler(studio), scheduler=scheduler or "Automatic", steps=steps,
        cfg_scale=cfg_scale, seed=-1 if seed is None else seed, subseed=-1 if subseed is None else subseed,
        subseed_strength=subseed_strength or 0.0,
        # 0 on the sliders means "off", the request's -1.
        seed_resize_from_w=seed_resize_from_w if seed_resize_from_w and seed_resize_from_w > 0 else -1,
        seed_resize_from_h=seed_resize_from_h if seed_resize_from_h and seed_resize_from_h > 0 else -1,
        n_iter=n_iter, batch_size=batch_size,
    )


@dataclass
class PromptRow:
    prompt: gr.Textbox
    negative: gr.Textbox
    generate: gr.Button
    interrupt: gr.Button
    skip: gr.Button
    styles: gr.Dropdown
    networks: ExtraNetworksPanel
    clear: gr.Button | None = None  # empties both prompts


def build_prompt_row(studio: StudioView, demo: gr.Blocks, tab: str) -> PromptRow:
    with gr.Row(elem_id=f"{tab}_toprow"):
        with gr.Column(scale=6):
            with gr.Column(elem_classes=["sd-prompt-wrap"]):
                prompt = gr.Textbox(label="Prompt", show_label=False, lines=3, max_lines=12, elem_id=f"{tab}_prompt",
                                    placeholder="Prompt (press Ctrl+Enter to generate)", max_length=MAX_PROMPT_CHARS)
                add_token_counter(studio, prompt, f"{tab}_token_counter")
            with gr.Column(elem_classes=["sd-prompt-wrap"]):
                negative = gr.Textbox(label="Negative prompt", show_label=False, lines=2, max_lines=12,
                                      elem_id=f"{tab}_neg_prompt", placeholder="Negative prompt",
                                      max_length=MAX_PROMPT_CHARS)
                add_token_counter(studio, negative, f"{tab}_negative_token_counter")
        with gr.Column(scale=1, min_width=300):
            generate = gr.Button("Generate", variant="primary", elem_id=f"{tab}_generate", elem_classes=["sd-generate"])
            with gr.Row():
                interrupt = gr.Button("Interrupt", elem_id=f"{tab}_interrupt", visible=False, min_width=60,
                                      elem_classes=["sd-stop"])
                skip = gr.Button("Skip", elem_id=f"{tab}_skip", visible=False, min_width=60, elem_classes=["sd-stop"])
            with gr.Row(elem_id=f"{tab}_tools", elem_classes=["sd-tools"]) as tools:
                clear = gr.Button(ICON_CLEAR, elem_classes=["tool-button"], elem_id=f"{tab}_clear_prompt", scale=0,
                                  min_width=40)
                show_networks = gr.Button(ICON_NETWORKS, elem_classes=["tool-button"],
                                          elem_id=f"{tab}_extra_networks", scale=0, min_width=40)
            styles = build_styles(studio, demo, prompt, negative, tools, tab).dropdown
    networks = build_extra_networks(studio, show_networks, tab)
    return PromptRow(prompt, negative, generate, interrupt, skip, styles, networks, clear)


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
        schedule = gr.Dropdown(offered_schedules(default_sampler(studio)), value="Automatic", label="Schedule type",
                               elem_id=f"{tab}_scheduler")
    # Only the schedule types the chosen sampler can run are offered (the choice is kept when it can).
    sampler.change(lambda name, current: gr.update(choices=offered_schedules(name), value=current
                                                   if current in offered_schedules(name) else "Automatic"),
                   inputs=[sampler, schedule], outputs=schedule, **PRIVATE)
    steps = gr.Slider(1, 150, step=1, precision=0, value=opts.txt2img_default_steps, label="Sampling steps",
                      elem_id=f"{tab}_steps")
    if after_steps is not None:
        after_steps()
    buttons: dict[str, gr.Button] = {}
    with gr.Row():
        with gr.Column(scale=3):
            width = gr.Slider(MIN_SIZE, MAX_SIZE, step=8, precision=0, value=opts.txt2img_default_width, label="Width",
                              elem_id=f"{tab}_width")
            height = gr.Slider(MIN_SIZE, MAX_SIZE, step=8, precision=0, value=opts.txt2img_default_height,
                               label="Height", elem_id=f"{tab}_height")
        with gr.Column(scale=0, min_width=48, elem_id=f"{tab}_dimensions_row", elem_classes=["sd-dimensions-tools"]):
            buttons["res_switch"] = gr.Button(ICON_SWAP, elem_classes=["tool-button"], elem_id=f"{tab}_res_switch_btn",
                                              scale=0, min_width=40)
        with gr.Column(scale=2):
            n_iter = gr.Slider(1, 100, step=1, precision=0, value=1, label="Batch count", elem_id=f"{tab}_batch_count")
            batch_size = gr.Slider(1, 8, step=1, precision=0, value=1, label="Batch size", elem_id=f"{tab}_batch_size")
    cfg = gr.Slider(1.0, 30.0, step=0.5, value=opts.txt2img_default_cfg, label="CFG Scale", elem_id=f"{tab}_cfg_scale")
    # precision=None: Gradio would round a typed 1.5 to 2; the request refuses it instead.
    with gr.Row(elem_id=f"{tab}_seed_row"):
        seed = gr.Number(value=-1, precision=None, label="Seed", elem_id=f"{tab}_seed", scale=4)
        buttons["random_seed"] = gr.Button(ICON_RANDOM, elem_classes=["tool-button"], elem_id=f"{tab}_random_seed",
                                           scale=0)
        buttons["reuse_seed"] = gr.Button(ICON_REUSE, elem_classes=["tool-button"], elem_id=f"{tab}_reuse_seed",
                                          scale=0)
    with gr.Accordion("Extra", open=False, elem_id=f"{tab}_seed_extras"):
        with gr.Row():
            subseed = gr.Number(value=-1, precision=None, label="Variation seed", elem_id=f"{tab}_subseed", scale=4)
            buttons["random_subseed"] = gr.Button(ICON_RANDOM, elem_classes=["tool-button"],
                                                  elem_id=f"{tab}_random_subseed", scale=0)
            buttons["reuse_subseed"] = gr.Button(ICON_REUSE, elem_classes=["tool-button"],
                                                 elem_id=f"{tab}_reuse_subseed", scale=0)
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
    shown: gr.State  # infotexts, seeds, subseeds and served files of what the gallery shows
    job: gr.State  # the id of this page's last job (Interrupt and Skip act on it)
    open_folder: gr.Button | None = None  # the latest images of the tab's output folder
    save: gr.Button | None = None  # the selected image (all, when none is) as a download
    save_zip: gr.Button | None = None  # a zip of every shown image as a download
    download: gr.File | None = None
    folder: gr.Accordion | None = None
    folder_gallery: gr.Gallery | None = None
    folder_info: gr.HTML | None = None

    @property
    def outputs(self) -> list[Any]:
        """What a run function yields into: (gallery, info, log, progress, preview, state, job)."""
        return [self.gallery, self.info, self.log, self.progress, self.preview, self.shown, self.job]


def build_results(tab: str) -> ResultsPanel:
    progress = gr.HTML("", elem_id=f"{tab}_progress")
    preview = gr.Image(label="Preview", type="pil", format="png", visible=False, interactive=False, height=512,
                       elem_id=f"{tab}_preview", elem_classes=["sd-preview"])
    gallery = gr.Gallery(label="Output", format="png", columns=4, height=512, object_fit="contain", interactive=False,
                         elem_id=f"{tab}_gallery")
    with gr.Row(elem_id=f"{tab}_results_tools", elem_classes=["sd-results-tools"]):
        open_folder = gr.Button("Open folder", elem_id=f"{tab}_open_folder", size="sm", scale=0, min_width=110)
        save = gr.Button("Save", elem_id=f"{tab}_save", size="sm", scale=0, min_width=70)
        save_zip = gr.Button("Zip", elem_id=f"{tab}_save_zip", size="sm", scale=0, min_width=70)
    download = gr.File(label="Download", file_count="multiple", interactive=False, visible=False, height=120,
                       elem_id=f"{tab}_download_files")
    with gr.Accordion("Output folder", open=True, visible=False, elem_id=f"{tab}_folder") as folder:
        folder_info = gr.HTML("", elem_id=f"{tab}_folder_info")
        folder_gallery = gr.Gallery(show_label=False, columns=6, height=360, object_fit="contain", interactive=False,
                                    elem_id=f"{tab}_folder_gallery")
    info = gr.Textbox(label="Generation info", lines=3, max_lines=12, interactive=False, buttons=["copy"],
                      elem_id=f"{tab}_generation_info")
    log = gr.HTML("", elem_id=f"{tab}_html_log")
    shown = gr.State(shown_state())
    return ResultsPanel(progress, preview, gallery, info, log, shown, gr.State(None), open_folder, save, save_zip,
                        download, folder, folder_gallery, folder_info)


def wire_panel(studio: StudioView, demo: gr.Blocks, row: PromptRow, sampling: SamplingControls,
               results: ResultsPanel, run: Callable[..., Any], inputs: list[Any], api_name: str,
               served: ServedFiles | None = None) -> None:
    """Generate (with Interrupt/Skip shown while it runs), tool and seed buttons, size snapping,
    gallery selection, Open folder / Save / Zip, defaults.

    ``served`` is the UI's one served folder (``build_ui`` also leaves it on ``demo.served_files``,
    which is used when it is not given); without one, Open folder, Save and Zip are hidden.
    """

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
        index = state.get("selected") or 0  # nothing clicked yet: the first image's
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
    # In the page only (no round trip): swap the sizes, empty the prompts, and snap a typed size to
    # the sliders' step of 8 once the box is left (the request would floor it), so the number shown
    # is the number used. ``release`` fires on leaving the number box and on letting go of the slider.
    if "res_switch" in buttons:
        buttons["res_switch"].click(None, inputs=[sampling.width, sampling.height],
                                    outputs=[sampling.width, sampling.height], js="(w, h) => [h, w]")
    if row.clear is not None:
        row.clear.click(None, outputs=[row.prompt, row.negative], js="() => ['', '']")
    for size in (sampling.width, sampling.height):
        snap = (f"(v) => Math.min({size.maximum}, Math.max({size.minimum}, Math.round((Number(v) || 0) / 8) * 8))")
        size.release(None, inputs=size, outputs=size, js=snap)
    _wire_files(studio, demo, results, served, (results.gallery.elem_id or api_name).removesuffix("_gallery"))
    # The "Defaults" settings apply from the next page load, without a restart.
    opts = studio.options
    demo.load(lambda: (default_sampler(studio), opts.txt2img_default_steps, opts.txt2img_default_width,
                       opts.txt2img_default_height, opts.txt2img_default_cfg),
              outputs=[sampling.sampler, sampling.steps, sampling.width, sampling.height, sampling.cfg], **PRIVATE)


def _wire_files(studio: StudioView, demo: gr.Blocks, results: ResultsPanel, served: ServedFiles | None,
                tab: str) -> None:
    """Open folder (a gallery of the tab's latest saved images), Save and Zip (downloads of what the
    gallery shows: the served files recorded in the page's state, never paths the page sends)."""
    parts = (results.open_folder, results.save, results.save_zip, results.download, results.folder,
             results.folder_gallery, results.folder_info)
    if any(part is None for part in parts):
        return
    assert results.open_folder and results.save and results.save_zip and results.download and results.folder
    assert results.folder_gallery and results.folder_info
    served = served or getattr(demo, "served_files", None)
    if served is None:
        for button in (results.open_folder, results.save, results.save_zip):
            button.visible = False
        return

    def show_folder(request: gr.Request) -> tuple[dict, Any, str]:
        user = page_user(studio, request)
        try:
            where, _ = output_folder.tab_folder(studio, tab)
            images = output_folder.latest_images(studio, tab, user)
        except (ValueError, OSError) as e:
            return gr.update(visible=True, open=True), [], error_html(f"Output folder: {e}")
        whose = "your images" if studio.auth.enabled and not user.is_admin else "images"
        note = (f"The latest {len(images)} {whose} in {where}" if images else f"No {whose} in {where} yet.")
        gallery = [(served.serve(path), path.name) for path in images]
        return gr.update(visible=True, open=True), gallery, f'<div class="sd-timings">{html_escape(note)}</div>'

    def shown_files(state: dict | None) -> list[str]:
        return [f for f in (state or {}).get("files", []) if isinstance(f, str) and served.holds(f)]

    def save(state: dict | None) -> tuple[dict, Any]:
        files = list((state or {}).get("files", []))
        index = (state or {}).get("selected")
        if isinstance(index, int) and 0 <= index < len(files):
            files = [files[index]]
        files = shown_files({"files": files})
        if not files:
            return gr.update(value=None, visible=False), error_html("Save: no image is shown.")
        return gr.update(value=files, visible=True), gr.skip()

    def save_zip(state: dict | None) -> tuple[dict, Any]:
        files = shown_files(state)
        if not files:
            return gr.update(value=None, visible=False), error_html("Zip: no image is shown.")
        target = served.reserve(f"{tab}-images.zip")
        names: set[str] = set()
        with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as archive:  # PNGs are compressed already
            for i, file in enumerate(files):
                name = Path(file).name
                if name in names:
                    name = f"{i:03d}-{name}"
                names.add(name)
                archive.write(file, name)
        return gr.update(value=[str(target)], visible=True), gr.skip()

    folder_outputs = [results.folder, results.folder_gallery, results.folder_info]
    # The downloads offered were of the last results: a new run takes them away.
    results.gallery.change(lambda: gr.update(value=None, visible=False), outputs=results.download, **PRIVATE)
    results.open_folder.click(show_folder, outputs=folder_outputs, api_visibility="private")
    results.save.click(save, inputs=results.shown, outputs=[results.download, results.log], **PRIVATE)
    results.save_zip.click(save_zip, inputs=results.shown, outputs=[results.download, results.log],
                           api_visibility="private")


@dataclass
class GenerationTab:
    """A built generation tab, for the wiring between tabs (Send to, paste parameters)."""

    row: PromptRow
    results: ResultsPanel
    send: dict[str, gr.Button]
    sampling: SamplingControls
