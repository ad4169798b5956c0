"""X/Y/Z plot axes: A1111 v1.10.1's list, in its order, and how each one changes ``p``.

The API names an axis by its index in the tab's list (A1111 drops the txt2img-only entries from
img2img's list and the img2img-only ones from txt2img's) or by its label. Axes SD Studio cannot
run (sigma tweaks, face restore, token merging...) keep their slot so the indices stay A1111's,
and are refused with a sentence. Ours come after A1111's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from itertools import permutations
from typing import Any, Callable, Sequence

from webui.scripts.xyz_values import (
    AxisValueError,
    parse_floats,
    parse_ints,
    split_values,
)

TXT2IMG, IMG2IMG = "txt2img", "img2img"


@dataclass
class AxisEnv:
    """What axes look up: the studio's lists (callables, read when needed)."""

    samplers: Callable[[], list[str]] = lambda: []
    schedulers: Callable[[], list[str]] = lambda: []
    checkpoints: Callable[[], list[str]] = lambda: []  # titles
    find_checkpoint: Callable[[str], str | None] = lambda name: None  # → title
    vaes: Callable[[], list[str]] = lambda: []
    find_vae: Callable[[str], str | None] = lambda name: None
    styles: Callable[[], list[str]] = lambda: []
    upscalers: Callable[[], list[str]] = lambda: []

    @classmethod
    def from_studio(cls, studio: Any) -> AxisEnv:
        from webui import samplers, upscalers

        catalog = studio.catalog

        def find_checkpoint(name: str) -> str | None:
            found = catalog.find_checkpoint(name)
            return found.title if found is not None else None

        def find_vae(name: str) -> str | None:
            if name.strip().lower() in ("automatic", "auto"):
                return "Automatic"
            if name.strip().lower() == "none":
                return "None"
            found = catalog.find_vae(name)
            return found.name if found is not None else None

        def upscaler_names() -> list[str]:
            names = list(upscalers.HIRES_UPSCALERS)
            extra = getattr(studio, "upscalers", None)
            for name in getattr(extra, "names", lambda: [])() if extra is not None else []:
                if name not in names:
                    names.append(name)
            return names

        return cls(
            samplers=lambda: [s["name"] for s in samplers.api_sampler_list()],
            schedulers=lambda: [s["label"] for s in samplers.api_scheduler_list()],
            checkpoints=lambda: sorted((f.title for f in catalog.checkpoints), key=str.casefold),
            find_checkpoint=find_checkpoint,
            vaes=lambda: ["Automatic", "None", *(f.name for f in catalog.vaes)],
            find_vae=find_vae,
            styles=lambda: list(studio.styles.names()),
            upscalers=upscaler_names,
        )


Apply = Callable[[Any, Any, Sequence[Any]], None]  # (p, value, all values of the axis)


@dataclass(frozen=True)
class Axis:
    """One entry of the axis list."""

    label: str
    kind: str  # "int", "float", "str", "permutations"
    apply: Apply | None  # None: SD Studio cannot do this one
    tab: str | None = None  # only in this tab's list (None: both)
    cost: float = 0.0  # higher: changed less often (the outer loop): model loads
    choices: Callable[[AxisEnv], list[str]] | None = None  # a dropdown axis
    confirm: Callable[[AxisEnv, Any, list[Any]], None] | None = None  # (env, p, values): raise ValueError
    label_style: str = "label"  # legend text: "label" (Label: v), "value", "join", "basename", "nothing"
    why_not: str = field(default="", compare=False)

    @property
    def supported(self) -> bool:
        return self.apply is not None

    def parse(self, text: str | None, dropdown: Sequence[str] | None, csv_mode: bool) -> list[Any]:
        """The values this axis runs, from its text box or (for a dropdown axis) its selection."""
        if self.label == "Nothing":
            return [0]
        if self.choices is not None and not csv_mode and dropdown:
            entries = [str(v) for v in dropdown]
        else:
            entries = split_values(text)
        if not entries:
            raise AxisValueError("no values given")
        if self.kind == "int":
            return parse_ints(entries)
        if self.kind == "float":
            return parse_floats(entries)
        if self.kind == "permutations":
            if len(entries) > 6:
                raise AxisValueError(f"{len(entries)} tokens make {len(entries)}! orders; at most 6 tokens")
            return [list(order) for order in permutations(entries)]
        return entries

    def legend(self, value: Any) -> str:
        if self.label_style == "nothing":
            return ""
        if isinstance(value, float):
            value = round(value, 8)
        if self.label_style == "join":
            return ", ".join(value)
        if self.label_style == "basename":
            return os.path.basename(str(value))
        if self.label_style == "value":
            return str(value)
        return f"{self.label}: {value}"


# --- how values change p ---------------------------------------------------------------------

def _field(name: str) -> Apply:
    def apply(p: Any, value: Any, values: Sequence[Any]) -> None:
        setattr(p, name, value)
    return apply


def _prompt_sr(p: Any, value: str, values: Sequence[str]) -> None:
    p.prompt = p.prompt.replace(values[0], value)
    p.negative_prompt = p.negative_prompt.replace(values[0], value)


def _confirm_sr(env: AxisEnv, p: Any, values: list[str]) -> None:
    if values[0] not in p.prompt and values[0] not in p.negative_prompt:
        raise AxisValueError(f"{values[0]!r} (the first value) is not in the prompt or the negative prompt")


def _prompt_order(p: Any, value: Sequence[str], values: Sequence[Any]) -> None:
    """Put the tokens into the prompt in this order, in the places the tokens had (A1111's)."""
    found = sorted((p.prompt.find(token), token) for token in value)
    rest, parts = p.prompt, []
    for _, token in found:
        at = rest.find(token)
        if at < 0:
            continue
        parts.append(rest[:at])
        rest = rest[at + len(token):]
    p.prompt = "".join(part + token for part, token in zip(parts, value)) + rest


def _confirm_order(env: AxisEnv, p: Any, values: list[Any]) -> None:
    missing = [token for token in values[0] if token not in p.prompt]
    if missing:
        raise AxisValueError(f"{missing[0]!r} is not in the prompt")


def _checkpoint(p: Any, value: str, values: Sequence[str]) -> None:
    p.override_settings["sd_model_checkpoint"] = value


def _confirm_checkpoints(env: AxisEnv, p: Any, values: list[str], *, none_allowed: bool = False) -> None:
    for i, value in enumerate(values):
        if none_allowed and value in _NO_REFINER:
            continue
        title = env.find_checkpoint(value)
        if title is None:
            raise AxisValueError(f"checkpoint {value!r} not found")
        values[i] = title  # run by its full title (name [hash])


_NO_REFINER = ("", "None", "none")


def _refiner(p: Any, value: str, values: Sequence[str]) -> None:
    p.refiner_checkpoint = None if value in _NO_REFINER else value


def _confirm_refiners(env: AxisEnv, p: Any, values: list[str]) -> None:
    _confirm_checkpoints(env, p, values, none_allowed=True)


def _vae(p: Any, value: str, values: Sequence[str]) -> None:
    p.override_settings["sd_vae"] = value


def _confirm_vaes(env: AxisEnv, p: Any, values: list[str]) -> None:
    for i, value in enumerate(values):
        found = env.find_vae(value)
        if found is None:
            raise AxisValueError(f"VAE {value!r} not found")
        values[i] = found


def _clip_skip(p: Any, value: int, values: Sequence[int]) -> None:
    p.clip_skip = value
    p.override_settings["CLIP_stop_at_last_layers"] = value


def _styles(p: Any, value: str, values: Sequence[str]) -> None:
    p.styles = [*p.styles, *(s.strip() for s in value.split(",") if s.strip())]


def _confirm_styles(env: AxisEnv, p: Any, values: list[str]) -> None:
    known = set(env.styles())
    for value in values:
        for name in (s.strip() for s in value.split(",") if s.strip()):
            if name not in known:
                raise AxisValueError(f"style {name!r} not found")


def _confirm_choice(kind: str, names: Callable[[AxisEnv], list[str]]) -> Callable[[AxisEnv, Any, list[str]], None]:
    def confirm(env: AxisEnv, p: Any, values: list[str]) -> None:
        known = {n.casefold(): n for n in names(env)}
        for i, value in enumerate(values):
            if value.casefold() not in known:
                raise AxisValueError(f"unknown {kind} {value!r}")
            values[i] = known[value.casefold()]
    return confirm


def _size(p: Any, value: str, values: Sequence[str]) -> None:
    p.width, p.height = _parse_size(value)


def _parse_size(value: str) -> tuple[int, int]:
    width, sep, height = value.lower().partition("x")
    try:
        if not sep:
            raise ValueError
        return int(width.strip()), int(height.strip())
    except ValueError:
        raise AxisValueError(f"{value!r} is not a size like 512x768") from None


def _confirm_sizes(env: AxisEnv, p: Any, values: list[str]) -> None:
    for value in values:
        _parse_size(value)


def _nothing(p: Any, value: Any, values: Sequence[Any]) -> None:
    pass


def _confirm_cpu_rng(env: AxisEnv, p: Any, values: list[str]) -> None:
    for value in values:
        if value.strip().upper() != "CPU":
            raise AxisValueError(f"RNG source {value!r}: SD Studio always draws noise on the CPU (only 'CPU' is possible)")


def _no(label: str, kind: str, why: str, tab: str | None = None) -> Axis:
    return Axis(label, kind, None, tab=tab, why_not=why)


_SAMPLERS = lambda env: env.samplers()  # noqa: E731
_SIGMA = "SD Studio's samplers have no per-job sigma tweaks"

AXES: tuple[Axis, ...] = (
    Axis("Nothing", "str", _nothing, label_style="nothing"),
    Axis("Seed", "int", _field("seed")),
    Axis("Var. seed", "int", _field("subseed")),
    Axis("Var. strength", "float", _field("subseed_strength")),
    Axis("Steps", "int", _field("steps")),
    Axis("Hires steps", "int", _field("hr_second_pass_steps"), tab=TXT2IMG),
    Axis("CFG Scale", "float", _field("cfg_scale")),
    _no("Image CFG Scale", "float", "instruct-pix2pix models are not supported", tab=IMG2IMG),
    Axis("Prompt S/R", "str", _prompt_sr, confirm=_confirm_sr, label_style="value"),
    Axis("Prompt order", "permutations", _prompt_order, confirm=_confirm_order, label_style="join"),
    Axis("Sampler", "str", _field("sampler_name"), tab=TXT2IMG, choices=_SAMPLERS,
         confirm=_confirm_choice("sampler", _SAMPLERS), label_style="value"),
    Axis("Hires sampler", "str", _field("hr_sampler_name"), tab=TXT2IMG, choices=_SAMPLERS,
         confirm=_confirm_choice("sampler", _SAMPLERS)),
    Axis("Sampler", "str", _field("sampler_name"), tab=IMG2IMG, choices=_SAMPLERS,
         confirm=_confirm_choice("sampler", _SAMPLERS), label_style="value"),
    Axis("Checkpoint name", "str", _checkpoint, cost=1.0, choices=lambda env: env.checkpoints(),
         confirm=_confirm_checkpoints, label_style="basename"),
    _no("Negative Guidance minimum sigma", "float", _SIGMA),
    _no("Sigma Churn", "float", _SIGMA),
    _no("Sigma min", "float", _SIGMA),
    _no("Sigma max", "float", _SIGMA),
    _no("Sigma noise", "float", _SIGMA),
    Axis("Schedule type", "str", _field("scheduler"), choices=lambda env: env.schedulers(),
         confirm=_confirm_choice("schedule type", lambda env: env.schedulers())),
    _no("Schedule min sigma", "float", _SIGMA),
    _no("Schedule max sigma", "float", _SIGMA),
    _no("Schedule rho", "float", _SIGMA),
    _no("Beta schedule alpha", "float", "the Beta schedule's alpha and beta are fixed (0.6, 0.6)"),
    _no("Beta schedule beta", "float", "the Beta schedule's alpha and beta are fixed (0.6, 0.6)"),
    Axis("Eta", "float", _field("eta")),
    Axis("Clip skip", "int", _clip_skip),
    Axis("Denoising", "float", _field("denoising_strength")),
    Axis("Initial noise multiplier", "float", _field("initial_noise_multiplier")),
    _no("Extra noise", "float", "img2img extra noise is not supported"),
    Axis("Hires upscaler", "str", _field("hr_upscaler"), tab=TXT2IMG, choices=lambda env: env.upscalers(),
         confirm=_confirm_choice("upscaler", lambda env: env.upscalers())),
    _no("Cond. Image Mask Weight", "float", "conditioning mask weight is not supported", tab=IMG2IMG),
    Axis("VAE", "str", _vae, cost=0.7, choices=lambda env: env.vaes(), confirm=_confirm_vaes),
    Axis("Styles", "str", _styles, choices=lambda env: env.styles(), confirm=_confirm_styles),
    _no("UniPC Order", "int", "UniPC's order is fixed"),
    _no("Face restore", "str", "face restoration is not supported"),
    _no("Token merging ratio", "float", "token merging is not supported"),
    _no("Token merging ratio high-res", "float", "token merging is not supported"),
    _no("Always discard next-to-last sigma", "str", _SIGMA),
    _no("SGM noise multiplier", "str", "the SGM noise multiplier is not supported"),
    Axis("Refiner checkpoint", "str", _refiner, cost=1.0, choices=lambda env: ["None", *env.checkpoints()],
         confirm=_confirm_refiners, label_style="basename"),
    Axis("Refiner switch at", "float", _field("refiner_switch_at")),
    Axis("RNG source", "str", _nothing, choices=lambda env: ["CPU"], confirm=_confirm_cpu_rng),
    _no("FP8 mode", "str", "FP8 weight storage is not supported"),
    Axis("Size", "str", _size, confirm=_confirm_sizes),
    # SD Studio's own, after A1111's so its indices stay valid.
    Axis("Width", "int", _field("width")),
    Axis("Height", "int", _field("height")),
    Axis("Hires upscale by", "float", _field("hr_scale"), tab=TXT2IMG),
)


# Axes extensions add (A1111's ``xyz_grid.axis_options.extend``: ControlNet's), after all of the above.
EXTRA_AXES: list[Axis] = []


def add_axes(axes: Sequence[Axis]) -> None:
    """Add an extension's axes at the end of the list; an axis with the same label and tab is replaced
    (an extension loaded again after a restart)."""
    for axis in axes:
        EXTRA_AXES[:] = [a for a in EXTRA_AXES if (a.label, a.tab) != (axis.label, axis.tab)]
        EXTRA_AXES.append(axis)


def axes_for(tab: str) -> list[Axis]:
    """The tab's list, as A1111 filters it: the index of an axis in here is its API index."""
    return [a for a in (*AXES, *EXTRA_AXES) if a.tab is None or a.tab == tab]


def find_axis(tab: str, key: Any) -> Axis:
    """An axis by index (A1111's) or label (case-insensitive); AxisValueError when there is none."""
    options = axes_for(tab)
    if isinstance(key, bool):
        raise AxisValueError(f"axis type {key!r} is neither an index nor a name")
    if isinstance(key, (int, float)) and float(key).is_integer() or (isinstance(key, str) and key.strip().isdigit()):
        index = int(float(key))
        if not 0 <= index < len(options):
            raise AxisValueError(f"axis type {index} is out of range: {tab} has axis types 0-{len(options) - 1}")
        return options[index]
    if isinstance(key, str):
        wanted = key.strip().casefold()
        for axis in options:
            if axis.label.casefold() == wanted:
                return axis
        raise AxisValueError(f"unknown axis type {key!r} for {tab}")
    if key is None:
        return options[0]
    raise AxisValueError(f"axis type {key!r} is neither an index nor a name")
