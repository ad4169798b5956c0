"""Prompts from file or textbox (A1111's script, same title and args): one job per line.

API args (positional, as A1111 v1.10.1): checkbox_iterate ("Iterate seed every line"),
checkbox_iterate_batch ("Use same random seed for all lines"), prompt_position ("start" |
"end"), prompt_txt (the lines). The line syntax and what is refused: webui/scripts/prompt_lines.py
and docs/scripts.md.
"""

from __future__ import annotations

import copy
import random
from pathlib import Path
from typing import Any

import gradio as gr
from pydantic import ValidationError

from webui.limits import LimitExceeded, check, work_units
from webui.plugins import context
from webui.plugins.api import Processed, Processing, Script, process_images
from webui.plugins.jobs import job_part
from webui.scripts import prompt_lines, script_limits
from webui.scripts.processed_list import combine

POSITIONS = ("start", "end")


class PromptsFromFile(Script):
    def title(self) -> str:
        return "Prompts from file or textbox"

    def ui(self, is_img2img: bool) -> list[Any]:
        iterate = gr.Checkbox(False, label="Iterate seed every line", elem_id=self.elem_id("checkbox_iterate"))
        same_seed = gr.Checkbox(False, label="Use same random seed for all lines",
                                elem_id=self.elem_id("checkbox_iterate_batch"))
        position = gr.Radio(list(POSITIONS), value="start", label="Insert prompts at the",
                            elem_id=self.elem_id("prompt_position"))
        text = gr.Textbox("", label="List of prompt inputs", lines=2, elem_id=self.elem_id("prompt_txt"))
        upload = gr.File(label="Upload prompt inputs", type="filepath", file_types=[".txt"],
                         elem_id=self.elem_id("file"))
        upload.upload(_load_file, inputs=[upload], outputs=[upload, text], show_progress="hidden")
        return [iterate, same_seed, position, text]

    def check_args(self, p: Processing, iterate: Any = False, same_seed: Any = False, position: Any = "start",
                   text: Any = "") -> None:
        """Every line parsed and made into its job's settings before anything is queued (a 422)."""
        lines = _lines(position, text)
        limits = script_limits.current()
        images, work = 0, 0.0
        for line in lines:
            job = _line_job(p, line, position, deep=False)
            try:
                line_request = job.to_request()
                if limits is not None:
                    check(line_request, limits)
            except (ValidationError, LimitExceeded) as e:
                raise ValueError(f"line {line.number}: {_reason(e)}") from None
            images += line_request.image_count
            if limits is not None and images > limits.images_per_job:
                raise ValueError(f"line {line.number}: the lines ask for {images} images so far; the limit "
                                 f"(limit_images_per_job) is {limits.images_per_job}")
            _check_names(line)
            work += work_units(line_request)
        if limits is not None and work > limits.work_per_job:  # the lines are one job: one work limit
            raise ValueError(f"the {len(lines)} lines would take {work:.0f} units of work in all (512×512 "
                             f"image-steps: pixels × steps × images over every pass); the limit "
                             f"(limit_work_per_job) is {limits.work_per_job}")

    def run(self, p: Processing, iterate: Any = False, same_seed: Any = False, position: Any = "start",
            text: Any = "") -> Processed:
        lines = _lines(position, text)
        if (iterate or same_seed) and p.seed == -1:
            p.seed = random.randrange(2**32 - 1)
        p.do_not_save_grid = True  # as A1111: the lines' images, no grid
        runs: list[Processed] = []
        notes: list[str] = []
        for index, line in enumerate(lines):
            _check_names(line)
            job = _line_job(p, line, position)
            notes += [f"line {line.number}: --{key} ignored (no face restoration here)" if key == "restore_faces"
                      else f"line {line.number}: --{key} ignored" for key in line.ignored]
            with job_part(index, len(lines)):  # progress: this line's share of the whole list
                done = process_images(job)
            runs.append(done)
            if iterate:
                p.seed = (p.seed + job.batch_size * job.n_iter) % 2**32
            if done.interrupted:
                break
        return combine(p, runs, notes)


def _lines(position: Any, text: Any) -> list[prompt_lines.PromptLine]:
    if position not in POSITIONS:
        raise ValueError(f"prompt position must be one of {', '.join(POSITIONS)}, got {position!r}")
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise ValueError(f"the list of prompt inputs must be text, got {type(text).__name__}")
    lines = prompt_lines.parse_lines(text)
    if not lines:
        raise ValueError("the list of prompt inputs is empty: one prompt (or --option line) per line")
    return lines


def _line_job(p: Processing, line: prompt_lines.PromptLine, position: str, deep: bool = True) -> Processing:
    """A copy of ``p`` with the line's settings; its prompts go before or after the tab's (A1111).

    ``deep``: a copy the line's job may change freely (hooks run on it); a shallow one is enough
    to check the line (only attributes are set, nothing is changed in place)."""
    # Either copy shares the job's always-on scripts: their hooks run for every line.
    job = copy.deepcopy(p) if deep else copy.copy(p)
    for name, value in line.settings.items():
        setattr(job, name, value)
    for name in ("prompt", "negative_prompt"):
        given, tab = line.settings.get(name), getattr(p, name)
        if given and tab:
            setattr(job, name, f"{given} {tab}" if position == "start" else f"{tab} {given}")
    if line.checkpoint is not None:
        # This job's checkpoint only: never kept as everyone's model afterwards.
        job.override_settings = {**job.override_settings, "sd_model_checkpoint": line.checkpoint}
        job.override_settings_restore_afterwards = True
    return job


def _check_names(line: prompt_lines.PromptLine) -> None:
    """The line's checkpoint and styles must exist (the tab's own are checked with the request)."""
    studio = context.plugins().studio
    if studio is None:
        return
    if line.checkpoint is not None and studio.catalog.find_checkpoint(line.checkpoint) is None:
        names = ", ".join(f.title for f in studio.catalog.checkpoints) or "none"
        raise ValueError(f"line {line.number}, --sd_model: checkpoint not found: {line.checkpoint!r}; "
                         f"available: {names}")
    known = set(studio.styles.names())
    missing = [name for name in line.settings.get("styles", []) if name not in known]
    if missing:
        raise ValueError(f"line {line.number}, --styles: style not found: {', '.join(map(repr, missing))}; "
                         f"available: {', '.join(sorted(known)) or 'none'}")


def _reason(error: Exception) -> str:
    if isinstance(error, ValidationError):
        first = error.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ()))
        return f"--{where}: {first.get('msg')}" if where else str(first.get("msg"))
    return str(error)


def _load_file(path: str | None) -> tuple[Any, Any]:
    """An uploaded prompt list into the textbox (a clear error for a binary or huge file)."""
    if not path:
        return None, gr.skip()
    with Path(path).open("rb") as f:
        data = f.read(prompt_lines.MAX_FILE_BYTES + 1)
    try:
        text = prompt_lines.read_prompt_file(data)
    except ValueError as e:
        raise gr.Error(str(e)) from None
    return None, gr.update(value=text, lines=7)
