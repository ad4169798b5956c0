"""The ↙️ button, and what Send to and PNG Info share with it: an infotext into a tab's fields.

The text is the prompt box's when it holds an infotext (pasted from PNG Info, a forum post or
another studio); with an empty prompt box, the tab's last generation info. Values the tab cannot
take (an unknown sampler, a checkpoint that is not here) are left out and listed in the message.
The table of what fills what is webui/ui/paste_fields.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import gradio as gr

from webui import infotext
from webui.request import USE_SAME_SCHEDULER
from webui.ui.generation_panel import offered_schedules
from webui.ui.paste_fields import (
    PasteTarget,
    ScriptKey,
    overrides_from_pairs,
    paste_values,
    script_values,
)
from webui.ui.protocol import StudioView

OnParsed = Callable[[str, dict], Any]


def fields_from_infotext(text: str, on_parsed: OnParsed | None = None, target: PasteTarget | None = None,
                         script_fields: Mapping[str, ScriptKey] | None = None) -> tuple[dict[str, Any], list[str]]:
    """(field name → value, problems) for the parameters ``text`` holds.

    ``on_parsed(text, params)`` may change the parsed parameters first (extensions'
    ``on_infotext_pasted``); ``target``: the tab the values are for (see ``paste_values``);
    ``script_fields``: the scripts' fields (see ``script_paste_fields``)."""
    params = infotext.parse_infotext(text)
    if on_parsed is not None:
        on_parsed(text, params)
    if "Steps" not in params:  # no parameter line (it always starts with Steps): a prompt, not an infotext
        return {}, []
    values, problems = paste_values(params, target)
    if script_fields:
        values.update(script_values(params, script_fields, problems))
    return values, problems


def script_paste_fields(studio: StudioView, tab: str) -> dict[str, tuple[Any, ScriptKey]]:
    """The ``infotext_fields`` the scripts of ``tab`` set in ``ui()`` (A1111's ``[(component, key)]``,
    the key an infotext key or a function of the parsed parameters), by a field name of their own."""
    plugins = getattr(studio, "plugins", None)
    script_set = plugins.scripts.get(tab) if plugins is not None else None
    found: dict[str, tuple[Any, ScriptKey]] = {}
    for n, script in enumerate(script_set.scripts if script_set is not None else ()):
        for i, pair in enumerate(getattr(script, "infotext_fields", None) or ()):
            if (isinstance(pair, (tuple, list)) and len(pair) == 2 and isinstance(pair[0], gr.components.Component)
                    and (isinstance(pair[1], str) or callable(pair[1]))):
                found[f"script_{n}_{i}"] = (pair[0], pair[1])
    return found


def studio_target(studio: StudioView, names: list[str], upscaler_choices: Callable[[], list[str]] | None = None
                  ) -> PasteTarget:
    """A tab's ``PasteTarget`` on the studio's live lists and options."""

    def checkpoint(name: str) -> str | None:
        found = studio.catalog.find_checkpoint(name)
        return found.title if found is not None else None

    def vae(name: str) -> str | None:
        found = studio.catalog.find_vae(name)
        return found.name if found is not None else None

    def option(key: str, default: Any) -> Any:  # read at paste time: a changed setting counts at once
        try:
            return studio.options.get(key)
        except (AttributeError, KeyError):
            return default

    return PasteTarget(frozenset(names), checkpoint=checkpoint, vae=vae, option=option,
                       upscalers=upscaler_choices or (lambda: ()), styles=studio.styles.names)


@dataclass
class PasteTab:
    """A tab ↙, Send to and PNG Info fill: its components by field name, and its lookups."""

    fields: dict[str, Any]
    target: PasteTarget | None = None
    on_parsed: OnParsed | None = None
    script_fields: dict[str, ScriptKey] = field(default_factory=dict)  # field name → key, for scripts' fields

    def updates(self, text: str) -> tuple[list[Any], str | None]:
        """One output per field (``gr.skip()`` where the text says nothing), and the message
        (None when the text holds no parameters)."""
        values, problems = fields_from_infotext(text, self.on_parsed, self.target, self.script_fields)
        if not values:
            return [gr.skip()] * len(self.fields), None
        return [_update(name, values) for name in self.fields], (f"Not used: {'; '.join(problems)}" if problems else "")


def _update(name: str, values: dict[str, Any]) -> Any:
    if name not in values:
        return gr.skip()
    value = values[name]
    # A schedule type arrives with its sampler: offer that sampler's list, or Gradio would refuse
    # the value the next time the form is sent.
    if name == "scheduler" and "sampler_name" in values:
        return gr.update(choices=offered_schedules(values["sampler_name"]), value=value)
    if name == "hr_scheduler" and "hr_sampler_name" in values:
        sampler = values["hr_sampler_name"]
        return gr.update(choices=offered_schedules(None if sampler.startswith("Use same") else sampler,
                                                   (USE_SAME_SCHEDULER,)), value=value)
    if name == "override_settings":  # A1111's list: shown only when the paste brought settings
        return gr.update(choices=value, value=value, visible=bool(value))
    return value


def wire_paste(button: gr.Button, prompt: gr.Textbox, info: gr.Textbox, tab: PasteTab, message: gr.HTML) -> None:
    """Clicking ``button`` fills the tab's fields from the prompt box or ``info``."""

    def paste(prompt_text: str, info_text: str) -> tuple:
        text = prompt_text if (prompt_text or "").strip() else info_text
        if not (text or "").strip():
            return (*[gr.skip()] * len(tab.fields), "Nothing to read: paste an infotext into the prompt box first.")
        updates, note = tab.updates(text)
        return (*updates, "No generation parameters found in the text." if note is None else note)

    button.click(paste, inputs=[prompt, info], outputs=[*tab.fields.values(), message], api_visibility="private",
                 queue=False)


class OverrideError(ValueError):
    """A pasted setting that no longer applies (its checkpoint or VAE is gone)."""


def build_override_settings(tab: str) -> gr.Dropdown:
    """A1111's "Override settings": the settings the last paste brought, applied to this tab's
    jobs only; hidden until a paste fills it, and each entry can be removed."""
    return gr.Dropdown([], value=[], multiselect=True, label="Override settings", visible=False,
                       elem_id=f"{tab}_override_settings")


def request_overrides(studio: StudioView, own: dict[str, Any], pairs: list[str] | None) -> dict[str, Any]:
    """GenerationRequest keyword arguments: the top bar's per-user pick (``own``, from
    ``own_checkpoint``) with the pasted settings over it. Raises ``OverrideError``."""
    try:
        pasted = overrides_from_pairs(pairs, studio_target(studio, []))
    except ValueError as e:
        raise OverrideError(str(e)) from None
    merged = {**own.get("override_settings", {}), **pasted}
    return {"override_settings": merged} if merged else {}
