"""A1111's Prompt matrix: ``base|part1|part2|...`` → every combination of the parts, and its grid.

Combination ``k`` (0 … 2^n − 1) holds part ``i`` when bit ``i`` of ``k`` is set, so for ``a|b|c``
the prompts are ``a``, ``a, b``, ``a, c``, ``a, b, c`` (A1111's order). The grid has
2^(n // 2) rows; the first ceil(n / 2) parts label the columns and the rest the rows, each
label listing its parts, the absent ones grey and struck through (A1111's ``draw_prompt_matrix``).
The geometry is the shared labelled grid's (webui/scripts/grid_labels.py); the labels with
their active / inactive lines are drawn here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from PIL import Image, ImageDraw, ImageFont

from webui.scripts.grid_labels import BACKGROUND, GridLayout, font_for

ACTIVE = (0, 0, 0)
INACTIVE = (153, 153, 153)  # A1111's grid_text_inactive_color default (#999999)
DELIMITERS = {"comma": ", ", "space": " "}


@dataclass(frozen=True)
class Label:
    """One line of a column or row label: a part's text, and whether the cell's prompt has it."""

    text: str
    active: bool


def split_parts(prompt: str) -> list[str]:
    """The base prompt and the variable parts (surrounding spaces and commas of the parts dropped)."""
    base, *parts = prompt.split("|")
    return [base.strip(), *(part.strip().strip(",").strip() for part in parts)]


def combination_count(prompt: str) -> int:
    return 2 ** (len(prompt.split("|")) - 1)


def matrix_prompts(prompt: str, put_at_start: bool = False, delimiter: str = "comma") -> list[str]:
    """Every combination's prompt, in A1111's order (see the module's docstring).

    ``put_at_start``: the chosen parts come before the base (A1111's "Put variable parts at start").
    ``delimiter``: "comma" joins with ", ", "space" with " ".
    """
    if delimiter not in DELIMITERS:
        raise ValueError(f"joining char must be one of {', '.join(DELIMITERS)}, got {delimiter!r}")
    base, *parts = split_parts(prompt)
    joiner = DELIMITERS[delimiter]
    prompts = []
    for k in range(2 ** len(parts)):
        chosen = [part for i, part in enumerate(parts) if k & (1 << i)]
        pieces = [*chosen, base] if put_at_start else [base, *chosen]
        prompts.append(joiner.join(piece for piece in pieces if piece))
    return prompts


def matrix_labels(prompt: str) -> tuple[list[list[Label]], list[list[Label]]]:
    """(column labels, row labels): one list of lines per column / row."""
    parts = split_parts(prompt)[1:]
    boundary = math.ceil(len(parts) / 2)
    across, down = parts[:boundary], parts[boundary:]

    def labels(chosen: Sequence[str]) -> list[list[Label]]:
        return [[Label(text, bool(k & (1 << i))) for i, text in enumerate(chosen)] for k in range(2 ** len(chosen))]

    return labels(across), labels(down)


def draw_prompt_matrix(images: Sequence[Image.Image], prompt: str, margin: int = 0,
                       font_size: int | None = None) -> Image.Image:
    """The labelled grid of a matrix's images (in :func:`matrix_prompts` order)."""
    columns, rows = matrix_labels(prompt)
    if len(images) != len(columns) * len(rows):
        raise ValueError(f"a matrix of {len(columns)}x{len(rows)} needs {len(columns) * len(rows)} images, "
                         f"got {len(images)}")
    cell = images[0].size
    font = font_for(cell, font_size)
    layout = matrix_layout(cell, columns, rows, margin, font)
    grid = Image.new("RGB", layout.size, BACKGROUND)
    for i, image in enumerate(images):
        if image.size != cell:
            image = image.resize(cell, Image.Resampling.LANCZOS)
        grid.paste(image.convert("RGB"), layout.cell_box(i % layout.cols, i // layout.cols)[:2])
    draw = ImageDraw.Draw(grid)
    w, h = cell
    for col, lines in enumerate(columns):
        x = layout.cell_box(col, 0)[0] + w / 2
        _draw_lines(draw, x, layout.top / 2, _wrapped(lines, font, w), font)
    for row, lines in enumerate(rows):
        y = layout.cell_box(0, row)[1] + h / 2
        _draw_lines(draw, layout.left / 2, y, _wrapped(lines, font, layout.left), font)
    return grid


def matrix_layout(cell: tuple[int, int], columns: list[list[Label]], rows: list[list[Label]], margin: int,
                  font: ImageFont.FreeTypeFont | ImageFont.ImageFont) -> GridLayout:
    """Where the cells and label bands go: a band appears only when some label has text."""
    w, _ = cell
    spacing = _spacing(font)
    left = w * 3 // 4 if any(label.text for lines in rows for label in lines) else 0
    heights = [_block_height(_wrapped(lines, font, w), font) for lines in columns]
    top = max(heights) + 2 * spacing if any(label.text for lines in columns for label in lines) else 0
    return GridLayout(len(columns), len(rows), cell, max(0, int(margin)), left, top)


def _spacing(font: ImageFont.FreeTypeFont | ImageFont.ImageFont) -> int:
    return max(2, int(getattr(font, "size", 12)) // 2)


def _line_height(font: ImageFont.FreeTypeFont | ImageFont.ImageFont) -> int:
    box = font.getbbox("Ag")
    return int(box[3] - box[1])


def _block_height(lines: list[Label], font: ImageFont.FreeTypeFont | ImageFont.ImageFont) -> int:
    return len(lines) * _line_height(font) + max(0, len(lines) - 1) * _spacing(font) // 2


def _wrapped(lines: list[Label], font: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: int) -> list[Label]:
    """Each label line broken at spaces to fit ``width`` (a too-long word stays whole and overflows)."""
    out: list[Label] = []
    for label in lines:
        current = ""
        for word in label.text.split(" "):
            candidate = f"{current} {word}" if current else word
            if current and font.getlength(candidate) > width:
                out.append(Label(current, label.active))
                candidate = word
            current = candidate
        out.append(Label(current, label.active))
    return out


def _draw_lines(draw: ImageDraw.ImageDraw, cx: float, cy: float, lines: list[Label],
                font: ImageFont.FreeTypeFont | ImageFont.ImageFont) -> None:
    """Lines centred on (cx, cy); an inactive line grey with a line through it."""
    height = _line_height(font)
    step = height + _spacing(font) // 2
    y = cy - _block_height(lines, font) / 2
    for label in lines:
        colour = ACTIVE if label.active else INACTIVE
        draw.text((cx, y + height / 2), label.text, font=font, fill=colour, anchor="mm")
        if not label.active and label.text:
            half = font.getlength(label.text) / 2
            draw.line((cx - half, y + height / 2, cx + half, y + height / 2), fill=INACTIVE,
                      width=max(1, height // 6))
        y += step
