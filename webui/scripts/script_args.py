"""Reading a script's positional args as A1111 clients send them, with a sentence when one is wrong.

API clients send what A1111's controls hold: numbers as ints or floats (sometimes as text),
a radio with ``type="index"`` as its index (our UI may send its label instead), a checkbox
group as a list of labels. Each reader returns the clean value or raises ``ValueError`` naming
the control, what it got and what it takes; scripts turn that into a 422.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

DIRECTIONS: tuple[str, ...] = ("left", "right", "up", "down")


def number(value: Any, label: str, minimum: float, maximum: float, *, integer: bool = False) -> float:
    """A finite number within [minimum, maximum] (an int when ``integer``)."""
    try:
        if isinstance(value, bool):
            raise TypeError
        parsed = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{label} must be a number, got {value!r}") from None
    if not math.isfinite(parsed) or not minimum <= parsed <= maximum:
        raise ValueError(f"{label} must be from {minimum:g} to {maximum:g}, got {value!r}")
    if integer:
        if not parsed.is_integer():
            raise ValueError(f"{label} must be a whole number, got {value!r}")
        return int(parsed)
    return parsed


def choice(value: Any, choices: Sequence[str], label: str) -> str:
    """One of ``choices``, given as its index (A1111's ``type="index"``) or its name (any case)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if 0 <= value < len(choices):
            return choices[value]
        raise ValueError(f"{label}: index {value} is out of range; there are {len(choices)} choices "
                         f"(0 = {choices[0]!r} ... {len(choices) - 1} = {choices[-1]!r})")
    if isinstance(value, float) and value.is_integer():
        return choice(int(value), choices, label)
    if isinstance(value, str):
        wanted = " ".join(value.split()).casefold()
        found = next((c for c in choices if c.casefold() == wanted), None)
        if found is not None:
            return found
        if wanted.isdigit():
            return choice(int(wanted), choices, label)
    raise ValueError(f"{label}: {value!r} is not one of {', '.join(repr(c) for c in choices)}")


def directions(value: Any, label: str = "Outpainting direction") -> tuple[str, ...]:
    """A non-empty subset of left/right/up/down (a list, or one name), in that order."""
    given = [value] if isinstance(value, str) else value
    if not isinstance(given, (list, tuple)):
        raise ValueError(f"{label} must be a list of {', '.join(DIRECTIONS)}, got {value!r}")
    chosen = set()
    for item in given:
        name = str(item).strip().casefold()
        if name not in DIRECTIONS:
            raise ValueError(f"{label}: {item!r} is not one of {', '.join(DIRECTIONS)}")
        chosen.add(name)
    if not chosen:
        raise ValueError(f"{label}: choose at least one of {', '.join(DIRECTIONS)}")
    return tuple(d for d in DIRECTIONS if d in chosen)
