"""A1111's "Prompts from file or textbox" line syntax: one job per line.

A line that starts with ``--`` is a list of options, as on a command line (shell quoting)::

    --prompt "a red car" --negative_prompt blurry --steps 12 --cfg_scale 6.5 --seed 5

``--prompt`` and ``--negative_prompt`` take every word up to the next ``--option``; every other
option takes exactly one value. Any other non-empty line is a prompt as it is. Unlike A1111
(which falls back to using a broken line as its prompt), a line that does not parse is an error
naming its number and the option, raised before any image is made.

Refused on purpose: ``--outpath_samples`` / ``--outpath_grids`` (a LAN user must not choose
where files are written). ``--sd_model`` is this line's checkpoint for this job only.
"""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass, field
from typing import Any, Callable

from webui import samplers

# A prompt file read from an upload: bigger than this is not a prompt list.
MAX_FILE_BYTES = 512 * 1024
MAX_LINES = 5000


class PromptLineError(ValueError):
    """A line that cannot run; ``line`` is its 1-based number in the text, ``key`` the option at fault."""

    def __init__(self, line: int, key: str | None, message: str):
        where = f"line {line}" + (f", --{key}" if key else "")
        super().__init__(f"{where}: {message}")
        self.line = line
        self.key = key


@dataclass(frozen=True)
class PromptLine:
    """One job: ``settings`` are ``p`` attributes (A1111's names) the line sets.

    ``checkpoint``: the line's ``--sd_model`` (a per-job checkpoint override), or None.
    ``ignored``: options accepted for compatibility that change nothing here.
    """

    number: int
    settings: dict[str, Any] = field(default_factory=dict)
    checkpoint: str | None = None
    ignored: tuple[str, ...] = ()

    @property
    def image_count(self) -> int | None:
        """batch size × batch count when the line sets both (else the job's values apply)."""
        if "batch_size" in self.settings and "n_iter" in self.settings:
            return int(self.settings["batch_size"]) * int(self.settings["n_iter"])
        return None


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"expects a whole number, got {text!r}") from None


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"expects a number, got {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"expects a finite number, got {text!r}")
    return value


def _bool(text: str) -> bool:
    lowered = text.lower()
    if lowered not in ("true", "false"):
        raise ValueError(f"expects true or false, got {text!r}")
    return lowered == "true"


def _sampler(text: str) -> str:
    found = samplers.split_combined_name(text)
    if found is None:
        raise ValueError(f"unknown sampler {text!r}; samplers: {', '.join(s.name for s in samplers.SAMPLERS)}")
    return text


def _sampler_index(text: str) -> str:
    index = _int(text)
    if not 0 <= index < len(samplers.SAMPLERS):
        raise ValueError(f"sampler index {index} out of range 0-{len(samplers.SAMPLERS) - 1}")
    return samplers.SAMPLERS[index].name


def _styles(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def _text(text: str) -> str:
    return text


# Option → (p attribute or None, value parser). A1111 v1.10.1's keys, all of them.
_KEYS: dict[str, tuple[str | None, Callable[[str], Any]]] = {
    "prompt": ("prompt", _text),
    "negative_prompt": ("negative_prompt", _text),
    "prompt_for_display": (None, _text),  # A1111's gallery caption: nothing to show it here
    "styles": ("styles", _styles),
    "seed": ("seed", _int),
    "subseed": ("subseed", _int),
    "subseed_strength": ("subseed_strength", _float),
    "seed_resize_from_h": ("seed_resize_from_h", _int),
    "seed_resize_from_w": ("seed_resize_from_w", _int),
    "sampler_index": ("sampler_name", _sampler_index),
    "sampler_name": ("sampler_name", _sampler),
    "batch_size": ("batch_size", _int),
    "n_iter": ("n_iter", _int),
    "steps": ("steps", _int),
    "cfg_scale": ("cfg_scale", _float),
    "width": ("width", _int),
    "height": ("height", _int),
    "restore_faces": (None, _bool),  # no face restoration here: accepted, noted, ignored
    "tiling": ("tiling", _bool),
    "do_not_save_samples": ("do_not_save_samples", _bool),
    "do_not_save_grid": ("do_not_save_grid", _bool),
    "sd_model": (None, _text),
}
# Options that take the rest of the words up to the next option.
_WORDY = ("prompt", "negative_prompt")
REFUSED = {
    "outpath_samples": "refused: images go to this tab's output folder (a request may not choose where files are "
                       "written)",
    "outpath_grids": "refused: grids go to this tab's grid folder (a request may not choose where files are written)",
}
KNOWN_KEYS = tuple(sorted(_KEYS))


def read_prompt_file(data: bytes) -> str:
    """An uploaded prompt list as text: UTF-8 (a BOM is dropped), at most ``MAX_FILE_BYTES``."""
    if len(data) > MAX_FILE_BYTES:
        raise ValueError(f"the prompt file is {len(data)} bytes; at most {MAX_FILE_BYTES} bytes (a text file with "
                         "one prompt per line)")
    if b"\x00" in data:
        raise ValueError("the prompt file is not text (it contains NUL bytes): upload a UTF-8 text file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError(f"the prompt file is not UTF-8 text (byte {e.start} cannot be decoded)") from None
    return "\n".join(line.strip() for line in text.splitlines())


def parse_lines(text: str) -> list[PromptLine]:
    """Every non-empty line of ``text`` as a job, in order. Raises :class:`PromptLineError`."""
    jobs = []
    lines = text.splitlines()
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line:
            continue
        if len(jobs) >= MAX_LINES:
            raise PromptLineError(number, None, f"at most {MAX_LINES} lines (jobs) in one list")
        jobs.append(parse_line(line, number))
    return jobs


def parse_line(line: str, number: int = 1) -> PromptLine:
    """One line: options when it starts with ``--``, otherwise a plain prompt."""
    line = line.strip()
    if not line.startswith("--"):
        return PromptLine(number, {"prompt": line})
    try:
        words = shlex.split(line)
    except ValueError as e:  # an unclosed quote
        raise PromptLineError(number, None, f"cannot split into options ({e})") from None
    settings: dict[str, Any] = {}
    checkpoint = None
    ignored: list[str] = []
    pos = 0
    while pos < len(words):
        word = words[pos]
        if not word.startswith("--") or len(word) == 2:
            raise PromptLineError(number, None, f"expected an option such as --prompt, got {word!r}")
        key = word[2:]
        if key in REFUSED:
            raise PromptLineError(number, key, REFUSED[key])
        if key not in _KEYS:
            raise PromptLineError(number, key, f"unknown option; options: {', '.join('--' + k for k in KNOWN_KEYS)}")
        values = []
        pos += 1
        while pos < len(words) and not words[pos].startswith("--"):
            values.append(words[pos])
            pos += 1
            if key not in _WORDY:
                break
        if not values:
            raise PromptLineError(number, key, "needs a value")
        if key not in _WORDY and pos < len(words) and not words[pos].startswith("--"):
            raise PromptLineError(number, key, f"takes one value, but {words[pos]!r} follows {values[0]!r} "
                                               "(quote a value that has spaces)")
        target, parse = _KEYS[key]
        try:
            value = parse(" ".join(values))
        except ValueError as e:
            raise PromptLineError(number, key, str(e)) from None
        if key == "sd_model":
            checkpoint = value
        elif target is None:
            ignored.append(key)
        else:
            settings[target] = value
    return PromptLine(number, settings, checkpoint, tuple(ignored))
