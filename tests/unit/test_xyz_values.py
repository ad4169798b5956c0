"""X/Y/Z plot without a model: the value syntax, A1111's axis indices, the labelled grid, the cell order."""

from __future__ import annotations

import pytest
from PIL import Image

from webui.plugins.processing import Processing
from webui.scripts.grid_labels import grid_layout, labelled_grid
from webui.scripts.xyz_axes import IMG2IMG, TXT2IMG, AxisEnv, axes_for, find_axis
from webui.scripts.xyz_plot import PlotError, _varied_seed, cell_order, plan_plot
from webui.scripts.xyz_values import (
    AxisValueError,
    join_values,
    parse_floats,
    parse_ints,
    split_values,
)
from webui.styles import StyleDatabase


@pytest.mark.parametrize(("text", "expected"), [
    ("1, 2, 3", [1, 2, 3]),
    ("1-5", [1, 2, 3, 4, 5]),
    ("1-5 (+2)", [1, 3, 5]),
    ("10-1 (-3)", [10, 7, 4, 1]),
    ("1-5 [3]", [1, 3, 5]),
    ("1-10 [4]", [1, 4, 7, 10]),
    ("5-1", [5, 4, 3, 2, 1]),
    ("-5--3, 7", [-5, -4, -3, 7]),
    ("1-2, 8, 10-12 (+2)", [1, 2, 8, 10, 12]),
])
def test_int_ranges(text: str, expected: list[int]) -> None:
    assert parse_ints(split_values(text)) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("7.5, 3", [7.5, 3.0]),
    ("0.5-1.5 [3]", [0.5, 1.0, 1.5]),
    ("1-3 (+0.5)", [1.0, 1.5, 2.0, 2.5, 3.0]),
    ("0.1-0.3 (+0.1)", [0.1, 0.2, 0.3]),
    ("1-2 (+0.4)", [1.0, 1.4, 1.8]),
    ("2-1 [3]", [2.0, 1.5, 1.0]),
])
def test_float_ranges(text: str, expected: list[float]) -> None:
    assert parse_floats(split_values(text)) == expected


def test_quoted_csv_keeps_commas_and_round_trips() -> None:
    entries = split_values('cat, "a dog, a cat", , "say ""hi"""')
    assert entries == ["cat", "a dog, a cat", 'say "hi"']
    assert split_values(join_values(entries)) == entries


@pytest.mark.parametrize(("text", "floats", "needle"), [
    ("abc", False, "'abc' is not a whole number"),
    ("2.5", False, "'2.5' is not a whole number"),
    ("1-5 (-1)", False, "never goes from 1 to 5"),
    ("1-5 (0)", False, "must not be 0"),
    ("1-5 [0]", False, "at least 1"),
    ("1-100000", False, "more than 1000 values"),
    ("x-2", True, "'x-2' is not a number"),
    ("nan", True, "not a finite number"),
    ("-1e308-1e308 (+1e-300)", True, "too wide a range"),  # was math.floor(inf): OverflowError
    ("-1e308-1e308 [3]", True, "too wide a range"),
    ("0-1 (+1e-320)", True, "more than 1000 values"),
    ("9" * 5000, False, "too large a number"),  # was int()'s own ValueError (4300 digits)
    ("x" * 140_000, False, "at most 65536"),  # was csv.Error (field larger than field limit)
])
def test_bad_values_are_named(text: str, floats: bool, needle: str) -> None:
    with pytest.raises(AxisValueError, match=needle):
        (parse_floats if floats else parse_ints)(split_values(text))


@pytest.mark.parametrize(("tab", "index", "label"), [
    # A1111 v1.10.1 scripts/xyz_grid.py, filtered per tab as it does.
    (TXT2IMG, 0, "Nothing"), (TXT2IMG, 1, "Seed"), (TXT2IMG, 4, "Steps"), (TXT2IMG, 5, "Hires steps"),
    (TXT2IMG, 6, "CFG Scale"), (TXT2IMG, 7, "Prompt S/R"), (TXT2IMG, 9, "Sampler"), (TXT2IMG, 10, "Hires sampler"),
    (TXT2IMG, 11, "Checkpoint name"), (TXT2IMG, 17, "Schedule type"), (TXT2IMG, 23, "Eta"), (TXT2IMG, 24, "Clip skip"),
    (TXT2IMG, 25, "Denoising"), (TXT2IMG, 28, "Hires upscaler"), (TXT2IMG, 29, "VAE"), (TXT2IMG, 30, "Styles"),
    (TXT2IMG, 37, "Refiner checkpoint"), (TXT2IMG, 38, "Refiner switch at"), (TXT2IMG, 41, "Size"),
    (IMG2IMG, 4, "Steps"), (IMG2IMG, 5, "CFG Scale"), (IMG2IMG, 6, "Image CFG Scale"), (IMG2IMG, 9, "Sampler"),
    (IMG2IMG, 10, "Checkpoint name"), (IMG2IMG, 24, "Denoising"), (IMG2IMG, 27, "Cond. Image Mask Weight"),
    (IMG2IMG, 28, "VAE"), (IMG2IMG, 40, "Size"),
])
def test_axis_indices_are_a1111s(tab: str, index: int, label: str) -> None:
    assert axes_for(tab)[index].label == label
    assert find_axis(tab, index).label == label
    assert find_axis(tab, label.upper()).label == label  # names work too


def test_unsupported_axes_keep_their_slot_and_say_why() -> None:
    p = Processing(prompt="a cat", steps=2, width=64, height=64)
    sigma = axes_for(TXT2IMG)[13]
    assert sigma.label == "Sigma Churn" and not sigma.supported
    with pytest.raises(PlotError, match=r"X axis \(Sigma Churn\) is not supported by SD Studio"):
        plan_plot(p, [13, "0.1, 0.2", []], AxisEnv())
    with pytest.raises(PlotError, match="X type: axis type 99 is out of range"):
        plan_plot(p, [99, "1", []], AxisEnv())


def test_plan_checks_every_value_before_anything_runs() -> None:
    p = Processing(prompt="a cat", steps=2, width=64, height=64)
    env = AxisEnv(samplers=lambda: ["Euler", "Euler a"], find_checkpoint=lambda name: None)
    with pytest.raises(PlotError, match=r"Y axis \(Sampler\): unknown sampler 'Nope'"):
        plan_plot(p, [4, "1, 2", [], 9, "Euler, Nope", []], env)
    with pytest.raises(PlotError, match=r"X axis \(Steps\): 'many' is not a whole number"):
        plan_plot(p, [4, "1, many", []], env)
    with pytest.raises(PlotError, match=r"X axis \(Checkpoint name\): checkpoint 'ghost' not found"):
        plan_plot(p, ["Checkpoint name", "ghost", []], env)
    with pytest.raises(PlotError, match=r"X axis \(Steps\): value 0: steps"):  # the request's own rule
        plan_plot(p, [4, "0, 1", []], env)
    with pytest.raises(PlotError, match=r"'dog' \(the first value\) is not in the prompt"):
        plan_plot(p, ["Prompt S/R", "dog, cow", []], env)
    plan = plan_plot(p, ["Sampler", "", ["Euler a", "euler"], "CFG Scale", "3-4 [2]", []], env)
    assert plan.axes[0].values == ["Euler a", "Euler"] and plan.axes[1].values == [3.0, 4.0]
    assert plan.axes[1].legends == ["CFG Scale: 3.0", "CFG Scale: 4.0"]


def test_cell_order_puts_the_checkpoint_axis_outermost() -> None:
    p = Processing(prompt="a cat", steps=2, width=64, height=64)
    env = AxisEnv(find_checkpoint=lambda name: f"{name}.safetensors")
    plan = plan_plot(p, [4, "1, 2", [], "Checkpoint name", "a, b", []], env)
    # Y (checkpoint) outermost: both X cells of checkpoint a, then both of b.
    assert cell_order(plan) == [(0, 0, 0), (1, 0, 0), (0, 1, 0), (1, 1, 0)]
    plan = plan_plot(p, ["Checkpoint name", "a, b", [], 4, "1, 2", []], env)
    assert cell_order(plan) == [(0, 0, 0), (0, 1, 0), (1, 0, 0), (1, 1, 0)]


def test_vary_seeds_counts_along_the_chosen_axes() -> None:
    size = (3, 2)
    assert {_varied_seed(100, (False, False, False), (ix, iy, 0), size) for ix in range(3) for iy in range(2)} == {100}
    assert [_varied_seed(100, (True, False, False), (ix, 1, 0), size) for ix in range(3)] == [100, 101, 102]
    assert [_varied_seed(100, (True, True, False), (ix, iy, 0), size) for iy in range(2) for ix in range(3)] == \
        [100, 101, 102, 103, 104, 105]
    assert _varied_seed(100, (False, True, True), (2, 1, 1), size) == 100 + 1 + 2


def _cells(n: int) -> list[Image.Image]:
    return [Image.new("RGB", (64, 64), (40 * i, 200, 90)) for i in range(n)]


def test_grid_with_labels_is_larger_by_the_label_bands() -> None:
    cols, rows = ["Steps: 1", "Steps: 2"], ["CFG: 3", "CFG: 4"]
    grid = labelled_grid(_cells(4), cols, rows, margin=0)
    layout = grid_layout(4, (64, 64), cols, rows)
    assert layout.left > 0 and layout.top > 0
    assert grid.size == (128 + layout.left, 128 + layout.top)
    # Cells in row-major order where the layout puts them.
    for i in range(4):
        box = layout.cell_box(i % 2, i // 2)
        assert grid.getpixel((box[0] + 32, box[1] + 32)) == (40 * i, 200, 90)
    # Dark label text in the top band over each column, and in the left band beside each row.
    for col in range(2):
        x0, _, x1, _ = layout.cell_box(col, 0)
        band = grid.crop((x0, 0, x1, layout.top)).convert("L")
        assert band.getextrema()[0] < 100
    for row in range(2):
        _, y0, _, y1 = layout.cell_box(0, row)
        band = grid.crop((0, y0, layout.left, y1)).convert("L")
        assert band.getextrema()[0] < 100
    assert grid.crop((0, 0, layout.left, layout.top)).convert("L").getextrema() == (255, 255)  # the corner is blank


def test_margins_and_legend_off() -> None:
    grid = labelled_grid(_cells(4), ["a", "b"], ["c", "d"], margin=10, draw_legend=False)
    assert grid.size == (64 * 2 + 10, 64 * 2 + 10)
    assert grid.getpixel((64 + 5, 10)) == (255, 255, 255)  # the margin between columns
    assert grid.getpixel((10, 10)) == (0, 200, 90)  # no band: the first cell starts at the corner


def test_missing_cells_are_black_and_long_labels_wrap() -> None:
    images = _cells(2) + [None, None]
    long = "Prompt S/R: a very long replacement text that cannot fit"
    grid = labelled_grid(images, [long, "short"], ["", ""], margin=0)
    layout = grid_layout(4, (64, 64), [long, "short"], ["", ""])
    assert layout.left == 0 and layout.top > 40  # several lines
    x0, y0, x1, y1 = layout.cell_box(1, 1)
    assert grid.crop((x0, y0, x1, y1)).getextrema() == ((0, 0), (0, 0), (0, 0))


LIMITS = {"limit_prompt_chars": 20_000, "limit_prompt_depth": 48, "limit_images_per_job": 100,
          "limit_pixels_per_image": 2048 * 2048, "limit_work_per_job": 6000}


@pytest.mark.parametrize(("dropdown", "needle"), [
    (5, "x_values_dropdown must be a list of values, got int"),  # was a TypeError (a 500)
    ("Euler", "x_values_dropdown must be a list of values, got str"),
    ([{"a": 1}], "got an item"),
])
def test_dropdowns_must_be_lists(dropdown, needle) -> None:
    p = Processing(prompt="a cat", steps=2, width=64, height=64)
    with pytest.raises(PlotError, match=needle):
        plan_plot(p, ["Sampler", "", dropdown], AxisEnv(samplers=lambda: ["Euler"]))


def test_cells_get_the_prompt_checks_of_a_request(tmp_path) -> None:
    p = Processing(prompt="a cat", steps=2, width=64, height=64)
    deep = "(" * 60 + "x" + ")" * 60
    with pytest.raises(PlotError, match=r"cell X=.*prompt nests brackets 60 deep; the limit.* is 48"):
        plan_plot(p, ["Prompt S/R", f"cat, {deep}", []], AxisEnv(), LIMITS)
    with pytest.raises(PlotError, match=r"would have 42000 characters; the limit \(limit_prompt_chars\) is 20000"):
        plan_plot(Processing(prompt="a " * 2000, steps=2), ["Prompt S/R", "a, " + "b" * 20, []], AxisEnv(), LIMITS)
    styles = StyleDatabase(tmp_path / "styles.csv")
    styles.save("deep", deep + " {prompt}", "")
    env = AxisEnv(styles=lambda: ["deep"])
    plan_plot(p, ["Styles", "deep", []], env, LIMITS)  # without the styles database: not checked
    with pytest.raises(PlotError, match=r"prompt with styles nests brackets 60 deep"):
        plan_plot(p, ["Styles", "deep", []], env, LIMITS, styles)
    with pytest.raises(PlotError, match="x_values has 70000 characters; an axis takes at most 65536"):
        plan_plot(p, [4, "1" * 70_000, []], AxisEnv())
