"""SD upscale's tiles: cut an image into overlapping tiles, and blend processed tiles back.

The grid follows A1111's ``split_grid`` maths: along each axis ``ceil((size - overlap) / (tile -
overlap))`` tiles, spread evenly from the first edge to the last, so neighbours overlap by at
least ``overlap`` pixels. The merge is ours: every tile gets a weight that rises linearly across
each side it shares with a neighbour (over the whole shared band), and the weighted tiles are
averaged. Unmodified tiles therefore give back the image exactly, and tiles that disagree fade
into each other over the overlap instead of meeting at a hard line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image


def axis_starts(size: int, tile: int, overlap: int) -> tuple[int, ...]:
    """Where the tiles along one axis begin (A1111's spacing: evenly spread, last flush with the edge)."""
    if tile <= 0 or size <= 0:
        raise ValueError(f"a tile of {tile} px over {size} px makes no sense")
    if size <= tile:
        return (0,)
    if not 0 <= overlap < tile:
        raise ValueError(f"the tile overlap ({overlap}) must be at least 0 and smaller than the tile ({tile})")
    count = math.ceil((size - overlap) / (tile - overlap))
    step = (size - tile) / (count - 1)
    return tuple(sorted({min(int(i * step), size - tile) for i in range(count)}))


@dataclass(frozen=True)
class TileGrid:
    """The tiles of a ``width`` × ``height`` image, row by row: origins ``xs`` × ``ys``."""

    width: int
    height: int
    tile_w: int
    tile_h: int
    xs: tuple[int, ...]
    ys: tuple[int, ...]

    @property
    def count(self) -> int:
        return len(self.xs) * len(self.ys)

    @property
    def shape(self) -> tuple[int, int]:
        """(columns, rows)."""
        return len(self.xs), len(self.ys)

    def boxes(self) -> list[tuple[int, int, int, int]]:
        """Each tile's (left, top, right, bottom), rows top to bottom, each left to right."""
        return [(x, y, x + self.tile_w, y + self.tile_h) for y in self.ys for x in self.xs]


def plan(width: int, height: int, tile_w: int, tile_h: int, overlap: int, cell: int = 8) -> TileGrid:
    """The grid for an image. A tile larger than the image shrinks to it, rounded down to a multiple
    of ``cell`` (the sampler works on 8-pixel cells), so nothing is padded with black."""
    def fit(tile: int, size: int) -> tuple[int, int]:
        if size >= tile:
            return tile, overlap
        fitted = max(cell, size - size % cell) if size >= cell else size
        return fitted, min(overlap, fitted // 2)

    (tile_w, overlap_x), (tile_h, overlap_y) = fit(tile_w, width), fit(tile_h, height)
    return TileGrid(width, height, tile_w, tile_h, axis_starts(width, tile_w, overlap_x),
                    axis_starts(height, tile_h, overlap_y))


def count_tiles(width: int, height: int, tile_w: int, tile_h: int, overlap: int) -> int:
    """How many tiles :func:`plan` makes (checked against the limits before any work)."""
    return plan(width, height, tile_w, tile_h, overlap).count


def split(image: Image.Image, grid: TileGrid) -> list[Image.Image]:
    """The tiles of ``image`` (RGB), in :meth:`TileGrid.boxes` order."""
    if image.size != (grid.width, grid.height):
        raise ValueError(f"the grid is for {grid.width}x{grid.height}, the image is {image.width}x{image.height}")
    rgb = image.convert("RGB")
    return [rgb.crop(box) for box in grid.boxes()]


def _ramp(starts: tuple[int, ...], index: int, tile: int) -> np.ndarray:
    """One axis of a tile's weight: 1 inside, rising across the band shared with each neighbour."""
    weight = np.ones(tile, dtype=np.float64)
    positions = np.arange(tile, dtype=np.float64) + 0.5
    if index > 0:
        shared = starts[index - 1] + tile - starts[index]
        if shared > 0:
            weight = np.minimum(weight, positions / shared)
    if index < len(starts) - 1:
        shared = starts[index] + tile - starts[index + 1]
        if shared > 0:
            weight = np.minimum(weight, (tile - positions) / shared)
    return np.clip(weight, 1e-6, 1.0)


def merge(tiles: list[Image.Image], grid: TileGrid) -> Image.Image:
    """The image the processed ``tiles`` make, overlaps feathered (tiles of another size are resized)."""
    if len(tiles) != grid.count:
        raise ValueError(f"{len(tiles)} tiles given, the grid has {grid.count}")
    total = np.zeros((grid.height, grid.width, 3), dtype=np.float64)
    weights = np.zeros((grid.height, grid.width, 1), dtype=np.float64)
    wy = [_ramp(grid.ys, i, grid.tile_h) for i in range(len(grid.ys))]
    wx = [_ramp(grid.xs, i, grid.tile_w) for i in range(len(grid.xs))]
    for n, (x0, y0, x1, y1) in enumerate(grid.boxes()):
        tile = tiles[n].convert("RGB")
        if tile.size != (grid.tile_w, grid.tile_h):
            tile = tile.resize((grid.tile_w, grid.tile_h), Image.Resampling.LANCZOS)
        weight = np.outer(wy[n // len(grid.xs)], wx[n % len(grid.xs)])[..., None]
        total[y0:y1, x0:x1] += np.asarray(tile, dtype=np.float64) * weight
        weights[y0:y1, x0:x1] += weight
    return Image.fromarray(np.clip(np.rint(total / weights), 0, 255).astype(np.uint8))
