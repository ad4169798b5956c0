"""Running an image model tile by tile, blending the overlaps so no seam shows.

Each tile is upscaled on its own (memory stays bounded by the tile size); in the result, a
tile's weight ramps linearly from ~0 to 1 across the overlap on every side that touches another
tile, and the weighted tiles are averaged. Where two tiles disagree (their borders saw less
context than the full image would give) the change is spread over the overlap instead of
jumping at one line.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

Model = Callable[[torch.Tensor], torch.Tensor]


def starts(length: int, tile: int, overlap: int) -> list[int]:
    """Tile origins along one axis: evenly spread, each pair overlapping by at least ``overlap``."""
    if length <= tile:
        return [0]
    count = math.ceil((length - overlap) / (tile - overlap))
    last = length - tile
    return sorted({round(i * last / (count - 1)) for i in range(count)})


def run_tiled(model: Model, image: torch.Tensor, scale: int, tile: int, overlap: int) -> torch.Tensor:
    """``model(image)`` for a (1, C, H, W) tensor, computed in ``tile``-sized pieces (0: in one go)."""
    height, width = image.shape[-2:]
    if tile <= 0 or (height <= tile and width <= tile):
        return model(image)
    overlap = max(0, min(overlap, tile // 2))
    ys, xs = starts(height, tile, overlap), starts(width, tile, overlap)
    out: torch.Tensor | None = None
    weights = torch.zeros((1, 1, height * scale, width * scale), dtype=torch.float32, device=image.device)
    for y in ys:
        for x in xs:
            piece = model(image[..., y:y + tile, x:x + tile]).float()
            if out is None:
                out = torch.zeros((1, piece.shape[1], height * scale, width * scale), device=image.device)
            h, w = piece.shape[-2:]
            ramp = _ramp(h, w, overlap * scale, top=y > 0, bottom=y + tile < height, left=x > 0,
                         right=x + tile < width, device=image.device)
            oy, ox = y * scale, x * scale
            out[..., oy:oy + h, ox:ox + w] += piece * ramp
            weights[..., oy:oy + h, ox:ox + w] += ramp
    assert out is not None
    return (out / weights).to(image.dtype)


def _ramp(h: int, w: int, width: int, *, top: bool, bottom: bool, left: bool, right: bool,
          device: torch.device) -> torch.Tensor:
    """A (1, 1, h, w) weight: 1 inside, rising from ~0 over ``width`` pixels on the flagged sides."""
    def axis(n: int, start: bool, end: bool) -> torch.Tensor:
        values = torch.ones(n, device=device)
        if width > 0:
            rise = (torch.arange(min(width, n), device=device) + 0.5) / width
            if start:
                values[:rise.numel()] = torch.minimum(values[:rise.numel()], rise)
            if end:
                values[n - rise.numel():] = torch.minimum(values[n - rise.numel():], rise.flip(0))
        return values

    return (axis(h, top, bottom)[:, None] * axis(w, left, right)[None, :])[None, None]
