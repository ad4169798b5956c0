"""Prompt matrix (A1111's script, same title and args): every combination of a prompt's
``|``-separated parts, one image each, and a grid labelled with the parts.

API args (positional, as A1111 v1.10.1): put_at_start, different_seeds, prompt_type
("positive" | "negative"), variations_delimiter ("comma" | "space"), margin_size.
"""

from __future__ import annotations

import copy
from typing import Any

import gradio as gr

from webui.limits import LimitExceeded, check
from webui.plugins.api import Processed, Processing, Script, process_images
from webui.plugins.jobs import job_part
from webui.result import GeneratedImage
from webui.scripts import prompt_matrix as matrix
from webui.scripts import script_limits
from webui.scripts.processed_list import combine
from webui.scripts.script_results import Saving, fix_seed

PROMPT_TYPES = ("positive", "negative")
MAX_MARGIN = 500


class PromptMatrix(Script):
    def title(self) -> str:
        return "Prompt matrix"

    def ui(self, is_img2img: bool) -> list[Any]:
        with gr.Row():
            with gr.Column():
                put_at_start = gr.Checkbox(False, label="Put variable parts at start of prompt",
                                           elem_id=self.elem_id("put_at_start"))
                different_seeds = gr.Checkbox(False, label="Use different seed for each picture",
                                              elem_id=self.elem_id("different_seeds"))
            with gr.Column():
                prompt_type = gr.Radio(list(PROMPT_TYPES), value="positive", label="Select prompt",
                                       elem_id=self.elem_id("prompt_type"))
                delimiter = gr.Radio(list(matrix.DELIMITERS), value="comma", label="Select joining char",
                                     elem_id=self.elem_id("variations_delimiter"))
            with gr.Column():
                margin = gr.Slider(0, MAX_MARGIN, value=0, step=2, label="Grid margins (px)",
                                   elem_id=self.elem_id("margin_size"))
        return [put_at_start, different_seeds, prompt_type, delimiter, margin]

    def check_args(self, p: Processing, put_at_start: Any = False, different_seeds: Any = False,
                   prompt_type: Any = "positive", delimiter: Any = "comma", margin: Any = 0) -> None:
        """Refuse bad args before the job is queued (ScriptSet.check turns ValueError into a 422)."""
        _settings(prompt_type, delimiter, margin)
        text = p.prompt if prompt_type == "positive" else p.negative_prompt
        _check_work(matrix.combination_count(text), p)

    def run(self, p: Processing, put_at_start: Any = False, different_seeds: Any = False,
            prompt_type: Any = "positive", delimiter: Any = "comma", margin: Any = 0) -> Processed:
        prompt_type, delimiter, margin = _settings(prompt_type, delimiter, margin)
        positive = prompt_type == "positive"
        text = p.prompt if positive else p.negative_prompt
        prompts = matrix.matrix_prompts(text, bool(put_at_start), delimiter)
        fix_seed(p)
        seed = p.seed
        runs: list[Processed] = []
        for i, prompt in enumerate(prompts):
            # One process_images per combination: our engine samples different prompts in
            # separate groups anyway, so this makes exactly A1111's images (one per prompt).
            cell = copy.deepcopy(p)  # shares the job's always-on scripts: their hooks run per cell
            if positive:
                cell.prompt = prompt
            else:
                cell.negative_prompt = prompt
            cell.seed = (seed + (i if different_seeds else 0)) % 2**32
            cell.batch_size = cell.n_iter = 1
            cell.do_not_save_grid = True
            with job_part(i, len(prompts)):  # progress: this cell's share of the whole matrix
                done = process_images(cell)
            runs.append(done)
            if done.interrupted:
                break
        processed = combine(p, runs)
        if len(processed.images) == len(prompts):
            processed.grid = _grid(p, processed, text, margin)
        return processed


def _settings(prompt_type: Any, delimiter: Any, margin: Any) -> tuple[str, str, int]:
    if prompt_type not in PROMPT_TYPES:
        raise ValueError(f"prompt type must be one of {', '.join(PROMPT_TYPES)}, got {prompt_type!r}")
    if delimiter not in matrix.DELIMITERS:
        raise ValueError(f"joining char must be one of {', '.join(matrix.DELIMITERS)}, got {delimiter!r}")
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not 0 <= margin <= MAX_MARGIN:
        raise ValueError(f"grid margins must be a number of pixels from 0 to {MAX_MARGIN}, got {margin!r}")
    return prompt_type, delimiter, int(margin)


def _check_work(count: int, p: Processing) -> None:
    """The matrix's images count against the job's work limits, as if asked for as a batch."""
    limits = script_limits.current()
    if limits is None:
        return
    if count > limits.images_per_job:
        raise ValueError(f"the prompt has {count} combinations; the limit (limit_images_per_job) is "
                         f"{limits.images_per_job} images: use fewer '|' parts")
    whole = p.to_request().model_copy(update={"batch_size": 1, "n_iter": count})
    try:
        check(whole, limits)
    except LimitExceeded as e:
        raise ValueError(f"{count} combinations: {e}") from None


def _grid(p: Processing, processed: Processed, prompt: str, margin: int) -> GeneratedImage:
    """The labelled grid, saved to the tab's grid folder when grids are saved."""
    image = matrix.draw_prompt_matrix(processed.images, prompt, margin)
    infotext = processed.infotexts[0] if processed.infotexts else ""
    grid = GeneratedImage(image, processed.seed, processed.subseed, infotext)
    saving = Saving.of(p)
    saving.save(p, grid, grid=True, prefix="prompt_matrix-")
    processed.warnings += saving.warnings
    return grid
