"""Prompt matrix: A1111's combinations and their order, its grid shape and labels."""

from __future__ import annotations

import pytest
from PIL import Image

from webui.scripts.prompt_matrix import (
    Label,
    draw_prompt_matrix,
    matrix_labels,
    matrix_prompts,
)


def test_three_parts_give_four_prompts_in_a1111_order():
    assert matrix_prompts("a|b|c") == ["a", "a, b", "a, c", "a, b, c"]


def test_bit_i_of_the_combination_number_picks_part_i():
    prompts = matrix_prompts("base|x|y|z")
    assert len(prompts) == 8
    assert prompts[5] == "base, x, z" and prompts[6] == "base, y, z" and prompts[7] == "base, x, y, z"


def test_parts_at_start_spaces_and_trimming():
    assert matrix_prompts("a cat | in a hat, |on a mat", put_at_start=True) == [
        "a cat", "in a hat, a cat", "on a mat, a cat", "in a hat, on a mat, a cat"]
    assert matrix_prompts("a cat|hat|mat", delimiter="space") == ["a cat", "a cat hat", "a cat mat", "a cat hat mat"]
    assert matrix_prompts("no parts") == ["no parts"]
    with pytest.raises(ValueError, match="joining char"):
        matrix_prompts("a|b", delimiter="tab")


def test_labels_first_half_across_rest_down_active_by_bit():
    columns, rows = matrix_labels("base|b|c|d")
    assert len(columns) == 4 and len(rows) == 2
    assert columns[2] == [Label("b", False), Label("c", True)]
    assert rows[1] == [Label("d", True)]


def _cells(count: int, size=(64, 64)) -> list[Image.Image]:
    return [Image.new("RGB", size, (40 * i, 255 - 40 * i, 90)) for i in range(count)]


def test_grid_is_cells_and_margins_plus_a_label_band_on_top_and_left():
    cells = _cells(4)
    plain = draw_prompt_matrix(cells, "a|b|c", margin=0)
    spaced = draw_prompt_matrix(cells, "a|b|c", margin=6)
    assert spaced.width - plain.width == 6 and spaced.height - plain.height == 6
    left, top = plain.width - 128, plain.height - 128
    assert left == 48 and 10 < top < 64
    # combination k sits at column k % 2, row k // 2: the cells' pixels, untouched
    for k, cell in enumerate(cells):
        x, y = left + (k % 2) * 64, top + (k // 2) * 64
        assert plain.crop((x, y, x + 64, y + 64)).tobytes() == cell.tobytes()


def test_inactive_labels_are_grey_and_active_ones_black():
    grid = draw_prompt_matrix(_cells(2), "a|word", margin=0)
    top = grid.height - 64
    assert grid.width == 128  # no row parts: no left band
    first, second = (grid.crop((x, 0, x + 64, top)).convert("RGB") for x in (0, 64))
    darkest = [band.getchannel(0).getextrema()[0] for band in (first, second)]
    assert darkest[0] >= 100 and darkest[1] < 60  # "word" struck grey over k=0, black over k=1


def test_a_wrong_number_of_images_is_refused():
    with pytest.raises(ValueError, match="needs 4 images"):
        draw_prompt_matrix(_cells(3), "a|b|c")
