"""SD upscale's tile maths, Loopback's strength curve and the outpainting scripts' sides, without a model."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from webui.scripts import loopback, tiles
from webui.scripts.outpaint_sides import sides
from webui.scripts.script_args import choice, directions


def noise(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


@pytest.mark.parametrize(("size", "tile", "overlap"), [
    ((128, 128), (64, 64), 16), ((200, 130), (64, 48), 8), ((96, 64), (64, 64), 0), ((130, 70), (64, 64), 63),
])
def test_tiles_cover_the_image_and_overlap_by_at_least_the_overlap(size, tile, overlap):
    grid = tiles.plan(*size, *tile, overlap)
    covered = np.zeros(size[::-1], dtype=int)
    for x0, y0, x1, y1 in grid.boxes():
        assert (x1 - x0, y1 - y0) == tile and x1 <= size[0] and y1 <= size[1]
        covered[y0:y1, x0:x1] += 1
    assert covered.min() >= 1
    for starts, length in ((grid.xs, tile[0]), (grid.ys, tile[1])):
        assert starts[0] == 0
        assert all(a + length - b >= overlap for a, b in zip(starts, starts[1:]))


def test_a1111_counts_tiles_the_same_way():
    # 2x of a 512 image in 512 tiles with 64 overlap: A1111 cuts 3x3 (ceil((1024-64)/448) = 3).
    assert tiles.plan(1024, 1024, 512, 512, 64).shape == (3, 3)
    assert tiles.plan(1024, 768, 512, 512, 64).shape == (3, 2)
    assert tiles.count_tiles(512, 512, 512, 512, 64) == 1


def test_merging_unmodified_tiles_gives_the_image_back():
    image = noise(150, 110)
    grid = tiles.plan(150, 110, 64, 48, 16)
    merged = np.asarray(tiles.merge(tiles.split(image, grid), grid)).astype(int)
    assert np.abs(merged - np.asarray(image).astype(int)).max() <= 1


def test_the_seam_between_different_tiles_is_feathered():
    grid = tiles.plan(128, 64, 64, 64, 32)  # xs 0, 32, 64
    colours = [Image.new("RGB", (64, 64), (v, v, v)) for v in (0, 120, 240)]
    row = np.asarray(tiles.merge(colours, grid))[32, :, 0].astype(int)
    assert row[0] == 0 and row[-1] == 240
    steps = np.diff(row)
    assert steps.min() >= 0  # rises monotonically: no hard edge going the wrong way
    assert steps.max() <= 12  # spread over the shared bands, not one jump of 120


def test_a_tile_larger_than_the_image_shrinks_to_it():
    grid = tiles.plan(100, 300, 512, 128, 64)
    assert (grid.tile_w, grid.tile_h) == (96, 128) and grid.xs == (0, 4)
    merged = tiles.merge(tiles.split(noise(100, 300), grid), grid)
    assert merged.size == (100, 300)


def test_an_overlap_as_large_as_the_tile_is_refused():
    with pytest.raises(ValueError, match="overlap"):
        tiles.plan(256, 256, 64, 64, 64)


def test_loopback_strength_goes_from_the_request_to_the_final_along_the_curve():
    linear = loopback.schedule(5, 0.8, 0.4, "Linear")
    assert linear[0] == pytest.approx(0.8) and linear[-1] == pytest.approx(0.4)
    assert np.allclose(np.diff(linear), -0.1)
    aggressive = loopback.schedule(5, 0.8, 0.4, "Aggressive")
    lazy = loopback.schedule(5, 0.8, 0.4, "Lazy")
    assert aggressive[-1] == pytest.approx(0.4) and lazy[-1] == pytest.approx(0.4)
    assert aggressive[1] < linear[1] < lazy[1]  # aggressive moves early, lazy late
    assert loopback.schedule(1, 0.6, 0.1, "Lazy") == [0.6]
    with pytest.raises(ValueError, match="Aggressive"):
        loopback.curve_name("steep")


def test_outpaint_sides_round_the_canvas_to_64_as_a1111():
    assert sides(64, 64, 32, ["left"]) == sides(64, 64, 32, ("left",))
    s = sides(64, 64, 32, ["left"])
    assert (s.left, s.right, s.up, s.down) == (64, 0, 0, 0)
    s = sides(100, 64, 128, ["left", "right", "down"])
    assert s.size(100, 64) == (384, 192)  # ceil(356 / 64) * 64 wide, ceil(192 / 64) * 64 high
    assert s.left + s.right == 284 and s.left == 142 and (s.up, s.down) == (0, 128)


def test_script_args_take_an_index_or_a_name_and_say_what_is_wrong():
    names = ["None", "Lanczos", "Nearest"]
    assert choice(1, names, "Upscaler") == "Lanczos" and choice("nearest", names, "Upscaler") == "Nearest"
    with pytest.raises(ValueError, match="out of range"):
        choice(7, names, "Upscaler")
    with pytest.raises(ValueError, match="'Bicubic' is not one of"):
        choice("Bicubic", names, "Upscaler")
    assert directions(["down", "left"]) == ("left", "down")
    with pytest.raises(ValueError, match="at least one"):
        directions([])
    with pytest.raises(ValueError, match="'north'"):
        directions(["north"])
