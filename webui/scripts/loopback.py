"""Loopback's denoising schedule: how strongly each loop repaints the previous loop's image.

As in A1111: the first loop uses the request's denoising strength; by the last loop it has moved
to the final strength, along the chosen curve ("Aggressive" moves early, "Lazy" late, "Linear"
evenly). With one loop the strength never changes.
"""

from __future__ import annotations

import math

CURVES: tuple[str, ...] = ("Aggressive", "Linear", "Lazy")
INTERROGATORS: tuple[str, ...] = ("None", "CLIP", "DeepBooru")
MAX_LOOPS = 32  # A1111's slider maximum; each loop is a whole img2img job


def curve_name(value: object) -> str:
    """The curve's canonical name (case-insensitive); ValueError naming the choices."""
    wanted = str(value).strip().casefold()
    found = next((c for c in CURVES if c.casefold() == wanted), None)
    if found is None:
        raise ValueError(f"denoising curve {value!r} is not one of {', '.join(CURVES)}")
    return found


def progress(loop: int, loops: int, curve: str) -> float:
    """0 at the first loop, 1 at the last, shaped by ``curve``."""
    if loops <= 1:
        return 0.0
    t = min(max(loop / (loops - 1), 0.0), 1.0)
    if curve == "Aggressive":
        return math.sin(t * math.pi / 2)
    if curve == "Lazy":
        return 1 - math.cos(t * math.pi / 2)
    return t


def strength(loop: int, loops: int, initial: float, final: float, curve: str) -> float:
    """The denoising strength of loop ``loop`` (0-based) of ``loops``."""
    return initial + (final - initial) * progress(loop, loops, curve)


def schedule(loops: int, initial: float, final: float, curve: str) -> list[float]:
    """Every loop's strength, first to last."""
    return [strength(i, loops, initial, final, curve) for i in range(loops)]
