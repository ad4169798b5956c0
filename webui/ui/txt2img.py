"""txt2img tab: A1111's layout; builds a GenerationRequest, submits it, shows progress and results.

No generation here: Generate submits to ``studio.queue`` and follows the job (webui/ui/job_view.py).
The panels come from webui/ui/generation_panel.py (shared with the img2img tab), the Hires. fix
and Refiner accordions from webui/ui/hires_ui.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import gradio as gr
from pydantic import ValidationError

from webui.auth.users import User
from webui.request import USE_SAME_CHECKPOINT, GenerationRequest
from webui.styles import StyleError
from webui.ui import job_view
from webui.ui.generation_panel import (
    GenerationTab,
    build_prompt_row,
    build_results,
    build_sampling,
    request_fields,
    wire_panel,
)
from webui.ui.hires_ui import (
    HiresControls,
    RefinerControls,
    build_hires,
    build_refiner,
    wire_hires,
)
from webui.ui.paste_params import (
    OverrideError,
    build_override_settings,
    request_overrides,
)
from webui.ui.protocol import StudioView
from webui.ui.scripts_ui import ScriptArgsError, build_scripts, with_script_params
from webui.ui.send_to import send_buttons
from webui.ui.served_files import ServedFiles
from webui.ui.session import page_user

TAB = "txt2img"

# Hover titles of the tool buttons (Gradio buttons have no title parameter), by element id: an
# exact id, or ``<tab>_<key>`` in a generation tab (the longest key that fits wins).
TOOL_TITLES = {
    "clear_prompt": "Clear the prompt and the negative prompt",
    "extra_networks": "Show/hide extra networks",
    "style_apply": "Apply the selected styles to the prompts",
    "style_create": "Save the current prompts as a style",
    "styles_refresh": "Reload styles.csv",
    "style_save": "Save the style under this name",
    "refresh": "Reload the list",
    "random_seed": "Random seed (-1: a new one each time)",
    "reuse_seed": "Reuse the seed of the selected image (the first one when none is selected)",
    "random_subseed": "Random variation seed (-1: a new one each time)",
    "reuse_subseed": "Reuse the variation seed of the selected image",
    "res_switch_btn": "Swap width and height",
    "open_folder": "Show the latest images of the output folder",
    "save": "Download the selected image (every shown image when none is selected)",
    "save_zip": "Download every shown image as one zip file",
    "refresh_sd_model_checkpoint": "Reload the list of checkpoints",
    "model_notice_dismiss": "Dismiss this notice",
    "reload_ui": "Reload the page",
}

# Ctrl+Enter in a prompt box clicks that tab's Generate, as in A1111; tool buttons get their
# titles, now and whenever Gradio renders more of the page (runs once when the page loads).
HOTKEYS_JS = """
() => {
  const titles = __TITLES__;
  const keys = Object.keys(titles).sort((a, b) => b.length - a.length);
  const label = () => {
    for (const button of document.querySelectorAll('button[id]')) {
      if (button.title) continue;
      const tab = button.id.split('_')[0];
      const inTab = document.getElementById(tab + '_generate') !== null;
      const key = keys.find((k) => button.id === k || (inTab && button.id.endsWith('_' + k)));
      if (key) button.title = titles[key];
    }
  };
  let pending = false;
  new MutationObserver(() => {
    if (pending) return;
    pending = true;
    setTimeout(() => { pending = false; label(); }, 150);
  }).observe(document.body, {childList: true, subtree: true});
  label();
  document.addEventListener('keydown', (e) => {
    if (!((e.ctrlKey || e.metaKey) && e.key === 'Enter')) return;
    const box = e.target.closest('[id$="_neg_prompt"], [id$="_prompt"]');
    if (!box) return;
    const tab = box.id.replace(/_neg_prompt$|_prompt$/, '');
    const button = document.querySelector(`#${tab}_generate`);
    if (button && button.offsetParent !== null) { e.preventDefault(); button.click(); }
  });
}
""".replace("__TITLES__", json.dumps(TOOL_TITLES))


def own_checkpoint(studio: StudioView, user: User, chosen: str | None) -> dict:
    """A user's pick in the checkpoint bar becomes their jobs' override (admins switch for everyone)."""
    selected = studio.manager.selected
    if user.is_admin or not chosen or (selected is not None and chosen == selected.file.title):
        return {}
    return {"override_settings": {"sd_model_checkpoint": chosen}}


@dataclass
class Txt2ImgTab(GenerationTab):
    """The fields only txt2img has that ↙ / Send to / PNG Info fill (hires fix, refiner, overrides)."""

    extra_fields: dict[str, Any] = field(default_factory=dict)


def build_txt2img_tab(studio: StudioView, demo: gr.Blocks, served: ServedFiles,
                      checkpoint: gr.Dropdown) -> Txt2ImgTab:
    row = build_prompt_row(studio, demo, TAB)
    accordions: dict[str, HiresControls | RefinerControls] = {}

    def hires_and_refiner() -> None:
        accordions["hires"] = build_hires(studio, TAB)
        accordions["refiner"] = build_refiner(studio, TAB)

    with gr.Row(equal_height=False):
        with gr.Column(scale=1, elem_id=f"{TAB}_settings"):
            sampling = build_sampling(studio, TAB, after_steps=hires_and_refiner)
            override = build_override_settings(TAB)
            scripts = build_scripts(studio, TAB)
        with gr.Column(scale=1, elem_id=f"{TAB}_results"):
            results = build_results(TAB)
            send = send_buttons(TAB)
    hires, refiner = accordions["hires"], accordions["refiner"]
    assert isinstance(hires, HiresControls) and isinstance(refiner, RefinerControls)

    # Parameter names follow GenerationRequest, so API clients can pass them by keyword.
    def run(prompt: str, negative_prompt: str, styles: list[str] | None, sampler_name: str, scheduler: str,
            steps: float, width: float, height: float, cfg_scale: float, seed: float | None, subseed: float | None,
            subseed_strength: float, seed_resize_from_w: float, seed_resize_from_h: float, n_iter: float,
            batch_size: float, enable_hr: bool = False, hr_scale: float = 2.0, hr_resize_x: float = 0,
            hr_resize_y: float = 0, hr_upscaler: str = "Latent", hr_second_pass_steps: float = 0,
            denoising_strength: float = 0.7, hr_checkpoint_name: str | None = None, hr_sampler_name: str | None = None,
            hr_scheduler: str | None = None, hr_prompt: str | None = None, hr_negative_prompt: str | None = None,
            use_refiner: bool = False, refiner_checkpoint: str | None = None, refiner_switch_at: float = 0.8,
            checkpoint: str | None = None, override_settings: list[str] | None = None, script_values: Sequence[Any] = (),
            request: gr.Request | None = None) -> Iterator[tuple]:
        user = page_user(studio, request)
        hires = dict(enable_hr=True, hr_scale=hr_scale, hr_resize_x=hr_resize_x or 0, hr_resize_y=hr_resize_y or 0,
                     hr_upscaler=hr_upscaler, hr_second_pass_steps=hr_second_pass_steps or 0,
                     denoising_strength=denoising_strength, hr_checkpoint_name=hr_checkpoint_name or USE_SAME_CHECKPOINT,
                     hr_sampler_name=hr_sampler_name, hr_scheduler=hr_scheduler, hr_prompt=hr_prompt or "",
                     hr_negative_prompt=hr_negative_prompt or "") if enable_hr else {}
        try:
            studio.styles.check(styles or [])  # a style deleted from styles.csv since it was picked
            req = GenerationRequest(
                **request_fields(studio, prompt, negative_prompt, styles, sampler_name, scheduler, steps, cfg_scale,
                                 seed, subseed, subseed_strength, seed_resize_from_w, seed_resize_from_h, n_iter,
                                 batch_size),
                width=width, height=height,
                refiner_checkpoint=refiner_checkpoint if use_refiner else None,
                refiner_switch_at=refiner_switch_at if use_refiner else 0.8,
                **hires, **request_overrides(studio, own_checkpoint(studio, user, checkpoint), override_settings),
                **scripts.request_fields(script_values),
            )
            scripts.check(req)
        except ValidationError as e:
            message = job_view.validation_message(e)
            job_view.log.error("txt2img request refused: %s", message)
            yield job_view.outputs(info=gr.skip(), log_html=job_view.error_html(message))
            return
        except StyleError as e:
            job_view.log.error("txt2img styles: %s", e)
            yield job_view.outputs(info=gr.skip(), log_html=job_view.error_html(f"Styles: {e}"))
            return
        except OverrideError as e:  # a pasted checkpoint or VAE deleted since
            yield job_view.outputs(info=gr.skip(), log_html=job_view.error_html(str(e)))
            return
        except ScriptArgsError as e:  # a script named that is not there (a stale page): as a validation error
            job_view.log.error("txt2img scripts: %s", e)
            yield job_view.outputs(info=gr.skip(), log_html=job_view.error_html(f"Scripts: {e}"))
            return
        yield from job_view.submit_and_follow(studio, served, user.name, req, "txt2img")

    inputs = [row.prompt, row.negative, row.styles, *sampling.inputs, *hires.inputs, *refiner.inputs, checkpoint, override,
              *scripts.inputs]
    wire_panel(studio, demo, row, sampling, results, with_script_params(run, scripts), inputs, api_name="txt2img",
               served=served)
    wire_hires(studio, demo, hires, refiner, sampling.width, sampling.height)
    h, r = hires, refiner
    extra = {"enable_hr": h.enable, "hr_scale": h.scale, "hr_resize_x": h.resize_x, "hr_resize_y": h.resize_y,
             "hr_upscaler": h.upscaler, "hr_second_pass_steps": h.steps, "denoising_strength": h.denoising,
             "hr_checkpoint_name": h.checkpoint, "hr_sampler_name": h.sampler, "hr_scheduler": h.scheduler,
             "hr_prompt": h.prompt, "hr_negative_prompt": h.negative, "use_refiner": r.enable,
             "refiner_checkpoint": r.checkpoint, "refiner_switch_at": r.switch_at, "override_settings": override}
    return Txt2ImgTab(row, results, send, sampling, extra)

