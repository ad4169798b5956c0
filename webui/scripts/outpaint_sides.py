"""A1111's outpainting scripts' geometry: "pixels to expand" in some directions → pixels per side.

Both scripts (Outpainting mk2, Poor man's outpainting) grow the canvas so its new width and
height are multiples of 64, then share each axis's growth between the chosen sides in
proportion to what was asked (left gets its share rounded down, right the rest; likewise up and
down). A 64×64 image grown by 32 to the left thus becomes 128 wide, 64 of them new.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

ROUND_TO = 64


@dataclass(frozen=True)
class Sides:
    left: int
    right: int
    up: int
    down: int

    def size(self, width: int, height: int) -> tuple[int, int]:
        """The grown canvas for a ``width`` × ``height`` image."""
        return width + self.left + self.right, height + self.up + self.down


def _share(size: int, first: int, second: int) -> tuple[int, int]:
    if not first and not second:
        return 0, 0
    growth = math.ceil((size + first + second) / ROUND_TO) * ROUND_TO - size
    a = first * growth // (first + second) if first else 0
    return a, (growth - a) if second else 0


def sides(width: int, height: int, pixels: int, directions: Iterable[str]) -> Sides:
    """Pixels added on each side of a ``width`` × ``height`` image (A1111's rounding)."""
    chosen = set(directions)
    ask = {d: pixels if d in chosen else 0 for d in ("left", "right", "up", "down")}
    left, right = _share(width, ask["left"], ask["right"])
    up, down = _share(height, ask["up"], ask["down"])
    return Sides(left, right, up, down)
