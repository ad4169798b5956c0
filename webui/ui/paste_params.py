"""The ↙️ button: generation parameters from an infotext into every field of a tab, as A1111's.

The text is the prompt box's when it holds an infotext (pasted from PNG Info, a forum post or
another studio); with an empty prompt box, the tab's last generation info. Fields the text does
not mention keep their values; values the tab cannot take (an unknown sampler) are left out and
listed in the message.
"""

from __future__ import annotations

from typing import Any, Callable

import gradio as gr

from webui import infotext, samplers
from webui.request_img2img import MASK_MODES, MASKED_CONTENT

# Infotext key → (the tab's field name, how to read the value).
_FIELDS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "Prompt": ("prompt", str),
    "Negative prompt": ("negative_prompt", str),
    "Steps": ("steps", int),
    "CFG scale": ("cfg_scale", float),
    "Seed": ("seed", int),
    "Size-1": ("width", int),
    "Size-2": ("height", int),
    "Variation seed": ("subseed", int),
    "Variation seed strength": ("subseed_strength", float),
    "Seed resize from-1": ("seed_resize_from_w", int),
    "Seed resize from-2": ("seed_resize_from_h", int),
    "Denoising strength": ("denoising_strength", float),
    "Mask blur": ("mask_blur", int),
    "Masked area padding": ("padding", int),
}


def _choice(options: tuple[str, ...]) -> Callable[[Any], str]:
    def read(value: Any) -> str:
        if str(value) not in options:
            raise ValueError(f"{value!r} is not one of {', '.join(options)}")
        return str(value)
    return read


_CHOICES: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "Masked content": ("masked_content", _choice(MASKED_CONTENT)),
    "Inpaint area": ("inpaint_area", _choice(("Whole picture", "Only masked"))),
    "Mask mode": ("mask_mode", _choice(MASK_MODES)),
}


def fields_from_infotext(text: str, on_parsed: Callable[[str, dict], Any] | None = None
                         ) -> tuple[dict[str, Any], list[str]]:
    """(field name → value, problems) for the parameters ``text`` holds.

    ``on_parsed(text, params)`` may change the parsed parameters first (extensions'
    ``on_infotext_pasted``)."""
    params = infotext.parse_infotext(text)
    if on_parsed is not None:
        on_parsed(text, params)
    if "Steps" not in params:  # no parameter line (it always starts with Steps): a prompt, not an infotext
        return {}, []
    values: dict[str, Any] = {}
    problems: list[str] = []
    for key, (name, read) in {**_FIELDS, **_CHOICES}.items():
        if key in params:
            try:
                values[name] = read(params[key])
            except (TypeError, ValueError) as e:
                problems.append(f"{key}: {e}")
    sampler = params.get("Sampler")
    if sampler is not None:
        found = samplers.split_combined_name(str(sampler))
        if found is None:
            problems.append(f"Sampler: {sampler!r} is not a sampler here")
        else:
            values["sampler_name"] = found[0].name
            values["scheduler"] = str(params.get("Schedule type") or found[1] or "Automatic")
    return values, problems


def wire_paste(button: gr.Button, prompt: gr.Textbox, info: gr.Textbox, fields: dict[str, Any],
               message: gr.HTML, on_parsed: Callable[[str, dict], Any] | None = None) -> None:
    """Clicking ``button`` fills ``fields`` (name → component) from the prompt box or ``info``."""
    names = list(fields)

    def paste(prompt_text: str, info_text: str) -> tuple:
        text = prompt_text if (prompt_text or "").strip() else info_text
        if not (text or "").strip():
            return (*[gr.skip()] * len(names), "Nothing to read: paste an infotext into the prompt box first.")
        values, problems = fields_from_infotext(text, on_parsed)
        if not values:
            return (*[gr.skip()] * len(names), "No generation parameters found in the text.")
        note = f"Not used: {'; '.join(problems)}" if problems else ""
        return (*[values.get(name, gr.skip()) for name in names], note)

    button.click(paste, inputs=[prompt, info], outputs=[*fields.values(), message], api_visibility="private",
                 queue=False)
