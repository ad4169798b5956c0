"""Parsed infotext → the values of a tab's fields: the table behind ↙, Send to and PNG Info.

Field names follow GenerationRequest (``hr_scale``, ``refiner_switch_at``...) plus the tabs' own
switches (``use_refiner``) and ``override_settings``: A1111's "Override settings" list of
``"Clip skip: 2"`` / ``"Model hash: 31e35c80fc"`` / ``"VAE: name"`` pairs, the settings a job
takes from the text. The checkpoint is among them only when ``disable_weights_auto_swap`` is
off; it then applies to that tab's jobs only (a per-request override, as A1111's), never a
switch of the shared model.

Given a ``PasteTarget`` (the tab's fields and the studio's lists), keys the text lacks fill the
fields A1111's infotext leaves out when they are off (no hires keys: hires off; no variation
seed: strength 0; img2img's mask defaults), so a pasted image's text reproduces it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Collection, Mapping

from webui import samplers, upscalers
from webui.request import USE_SAME_CHECKPOINT, USE_SAME_SAMPLER, USE_SAME_SCHEDULER
from webui.request_img2img import MASK_MODES, MASKED_CONTENT

Reader = Callable[[Any], Any]


def _choice(options: Collection[str]) -> Reader:
    def read(value: Any) -> str:
        if str(value) not in options:
            raise ValueError(f"{value!r} is not one of {', '.join(options)}")
        return str(value)
    return read


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if str(value) in ("True", "False"):
        return str(value) == "True"
    raise ValueError(f"{value!r} is not True or False")


# Infotext key → (field name, how to read the value). Values the reader refuses become problems.
FIELDS: dict[str, tuple[str, Reader]] = {
    "Prompt": ("prompt", str),
    "Negative prompt": ("negative_prompt", str),
    "Steps": ("steps", int),
    "CFG scale": ("cfg_scale", float),
    "Seed": ("seed", int),
    "Size-1": ("width", int),
    "Size-2": ("height", int),
    "Batch size": ("batch_size", int),
    "Variation seed": ("subseed", int),
    "Variation seed strength": ("subseed_strength", float),
    "Seed resize from-1": ("seed_resize_from_w", int),
    "Seed resize from-2": ("seed_resize_from_h", int),
    "Denoising strength": ("denoising_strength", float),
    "Mask blur": ("mask_blur", int),
    "Masked area padding": ("padding", int),
    "Masked content": ("masked_content", _choice(MASKED_CONTENT)),
    "Inpaint area": ("inpaint_area", _choice(("Whole picture", "Only masked"))),
    "Mask mode": ("mask_mode", _choice(MASK_MODES)),
    "Hires upscale": ("hr_scale", float),
    "Hires resize-1": ("hr_resize_x", int),
    "Hires resize-2": ("hr_resize_y", int),
    "Hires steps": ("hr_second_pass_steps", int),
    "Hires prompt": ("hr_prompt", str),
    "Hires negative prompt": ("hr_negative_prompt", str),
    "Refiner switch at": ("refiner_switch_at", float),
}

# What a missing key means, for the fields a tab has (A1111's writer leaves these out when off).
ABSENT: dict[str, Any] = {
    "subseed_strength": 0.0, "seed_resize_from_w": 0, "seed_resize_from_h": 0, "hr_second_pass_steps": 0,
    "mask_mode": MASK_MODES[0], "masked_content": "original", "inpaint_area": "Whole picture", "padding": 32,
}

# Keys only a hires image's text has (A1111 turns hires fix on when pasting one of them).
HIRES_KEYS = ("Hires upscale", "Hires upscaler", "Hires resize")


@dataclass(frozen=True)
class PasteTarget:
    """What a paste into one tab may fill and look up.

    ``fields``: the tab's field names (only these are filled; missing keys get ``ABSENT``);
    ``checkpoint``/``vae``: a name, title or hash → the title to use, or None when not there;
    ``option(key, default)``: a live option (``disable_weights_auto_swap``, ``CLIP_stop_at_last_layers``).
    """

    fields: frozenset[str]
    checkpoint: Callable[[str], str | None] = lambda name: None
    vae: Callable[[str], str | None] = lambda name: None
    option: Callable[[str, Any], Any] = lambda key, default: default
    upscalers: Callable[[], Collection[str]] = lambda: upscalers.HIRES_UPSCALERS
    styles: Callable[[], Collection[str]] = lambda: ()


def paste_values(params: Mapping[str, Any], target: PasteTarget | None = None) -> tuple[dict[str, Any], list[str]]:
    """(field name → value, problems) for parsed ``params``; ``target`` None: every field the text
    names, nothing looked up and no defaults."""
    values: dict[str, Any] = {}
    problems: list[str] = []
    for key, (name, read) in FIELDS.items():
        if key in params:
            try:
                values[name] = read(params[key])
            except (TypeError, ValueError, OverflowError) as e:
                problems.append(f"{key}: {e}")
    _sampler(params, values, problems, hires=False)
    hires = any(key in params for key in HIRES_KEYS)
    if hires:
        _sampler(params, values, problems, hires=True)
    else:  # the parser's defaults ("Hires prompt": "", ...) say nothing about a text without hires fix
        values = {k: v for k, v in values.items() if not k.startswith("hr_")}
    if target is None:
        return values, problems

    values["enable_hr"] = hires
    if hires:
        _named(params, values, problems, "Hires upscaler", "hr_upscaler",
               lambda name: upscalers.find_upscaler(name) or (name if name in target.upscalers() else None))
        _named(params, values, problems, "Hires checkpoint", "hr_checkpoint_name",
               lambda name: USE_SAME_CHECKPOINT if name == USE_SAME_CHECKPOINT else target.checkpoint(name))
    values["use_refiner"] = "Refiner" in params
    _named(params, values, problems, "Refiner", "refiner_checkpoint", target.checkpoint)
    styles = params.get("Styles array")
    if isinstance(styles, list):
        known = set(target.styles())
        values["styles"] = [s for s in styles if s in known]
    for name, value in ABSENT.items():
        values.setdefault(name, value)
    values["override_settings"] = override_pairs(params, target, problems)
    return {k: v for k, v in values.items() if k in target.fields}, problems


def _sampler(params: Mapping[str, Any], values: dict[str, Any], problems: list[str], hires: bool) -> None:
    """Sampler and schedule type (a name such as "DPM++ 2M Karras" brings its schedule). The hires
    pair without its keys means "Use same ..." (A1111 writes them only when they differ)."""
    sampler_key, schedule_key = ("Hires sampler", "Hires schedule type") if hires else ("Sampler", "Schedule type")
    sampler_field, schedule_field = ("hr_sampler_name", "hr_scheduler") if hires else ("sampler_name", "scheduler")
    same = (USE_SAME_SCHEDULER,) if hires else ()
    name = params.get(sampler_key)
    if name is None or name == USE_SAME_SAMPLER:
        if hires:
            values[sampler_field] = USE_SAME_SAMPLER
            values[schedule_field] = str(params.get(schedule_key) or USE_SAME_SCHEDULER)
        return
    found = samplers.split_combined_name(str(name))
    if found is None:
        problems.append(f"{sampler_key}: {name!r} is not a sampler here")
        return
    values[sampler_field] = found[0].name
    schedule = str(params.get(schedule_key) or found[1] or (same[0] if hires else "Automatic"))
    if schedule in (*same, *samplers.schedules_for(found[0].name)) or samplers.is_automatic(schedule):
        values[schedule_field] = schedule
    else:
        problems.append(f"{schedule_key}: {found[0].name} cannot run {schedule!r}")


def _named(params: Mapping[str, Any], values: dict[str, Any], problems: list[str], key: str, name: str,
           find: Callable[[str], str | None]) -> None:
    if key not in params:
        return
    written = str(params[key])
    found = find(written)
    if found is None:
        problems.append(f"{key}: {written!r} is not here")
    else:
        values[name] = found


def override_pairs(params: Mapping[str, Any], target: PasteTarget, problems: list[str]) -> list[str]:
    """A1111's "Override settings" entries for ``params``: Clip skip when it differs from the
    setting, the VAE when it is here, the checkpoint (by Model hash, else Model) when allowed."""
    pairs = []
    option = target.option
    clip_skip = params.get("Clip skip")
    if isinstance(clip_skip, int) and 1 <= clip_skip <= 12 and clip_skip != option("CLIP_stop_at_last_layers", 1):
        pairs.append(f"Clip skip: {clip_skip}")
    vae = params.get("VAE")
    if isinstance(vae, str) and vae:
        found = target.vae(vae)
        if found is None:
            problems.append(f"VAE: {vae!r} is not here")
        elif found != option("sd_vae", "Automatic"):
            pairs.append(f"VAE: {found}")
    if not option("disable_weights_auto_swap", True):
        for key in ("Model hash", "Model"):
            written = params.get(key)
            if isinstance(written, str) and written and target.checkpoint(written) is not None:
                pairs.append(f"{key}: {written}")
                break
        else:
            if "Model hash" in params or "Model" in params:
                problems.append(f"Model: {params.get('Model') or params.get('Model hash')!r} is not here")
    return pairs


def overrides_from_pairs(pairs: Collection[str] | None, target: PasteTarget) -> dict[str, Any]:
    """The ``override_settings`` of a request from the tab's "Override settings" entries.

    Raises ValueError naming a checkpoint or VAE that is gone since the paste."""
    found: dict[str, Any] = {}
    for pair in pairs or ():
        key, _, value = str(pair).partition(":")
        key, value = key.strip(), value.strip()
        if key == "Clip skip" and value.isdigit():
            found["CLIP_stop_at_last_layers"] = int(value)
        elif key in ("Model hash", "Model"):
            title = target.checkpoint(value)
            if title is None:
                raise ValueError(f"Override settings: checkpoint {value!r} is not here any more")
            found["sd_model_checkpoint"] = title
        elif key == "VAE":
            name = target.vae(value)
            if name is None:
                raise ValueError(f"Override settings: VAE {value!r} is not here any more")
            found["sd_vae"] = name
    return found


# An extension's field (A1111's ``Script.infotext_fields``): an infotext key, or a function of the
# parsed parameters returning the value (None: leave the field as it is).
ScriptKey = str | Callable[[Mapping[str, Any]], Any]


def script_values(params: Mapping[str, Any], keys: Mapping[str, ScriptKey], problems: list[str]) -> dict[str, Any]:
    """(field name → value) for extensions' fields: the key's value in the text, or what its function
    returns. A function that raises leaves its field alone and is listed in ``problems``."""
    found: dict[str, Any] = {}
    for name, key in keys.items():
        try:
            value = key(params) if callable(key) else params.get(key)
        except Exception as e:  # an extension's reader: the rest of the paste still applies
            problems.append(f"{key if isinstance(key, str) else name}: {e}")
            continue
        if value is not None:
            found[name] = value
    return found
