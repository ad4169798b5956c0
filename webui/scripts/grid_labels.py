"""Labelled grids, as A1111's scripts draw them: column labels on top, row labels on the left.

``labelled_grid(images, cols_labels, rows_labels, margin)`` lays the images out row by row
(``len(cols_labels)`` per row) with ``margin`` pixels between cells, and puts each column's
label above it and each row's label left of it, wrapped to fit. Empty labels (or
``draw_legend=False``) leave no band at all, so the grid is then exactly the cells and margins.
X/Y/Z plot, Prompt matrix and Prompts from file share it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from PIL import Image, ImageDraw, ImageFont

BACKGROUND = "white"
TEXT = "black"


@dataclass(frozen=True)
class GridLayout:
    """Where things go: the label bands' sizes, the cells' size and count, the margin."""

    cols: int
    rows: int
    cell: tuple[int, int]
    margin: int
    left: int  # width of the row-label band (0: none)
    top: int  # height of the column-label band (0: none)

    @property
    def size(self) -> tuple[int, int]:
        w, h = self.cell
        return (self.left + self.cols * w + (self.cols - 1) * self.margin,
                self.top + self.rows * h + (self.rows - 1) * self.margin)

    def cell_box(self, col: int, row: int) -> tuple[int, int, int, int]:
        """The pixel box (left, top, right, bottom) of cell (col, row)."""
        w, h = self.cell
        x = self.left + col * (w + self.margin)
        y = self.top + row * (h + self.margin)
        return x, y, x + w, y + h


def font_for(cell: tuple[int, int], size: int | None = None) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's bundled font, sized to the cells as A1111 sizes its legend (about (w + h) / 25)."""
    return ImageFont.load_default(size=size or max(12, (cell[0] + cell[1]) // 25))


def labelled_grid(images: Sequence[Image.Image], cols_labels: Sequence[str], rows_labels: Sequence[str],
                  margin: int = 0, *, draw_legend: bool = True, cols: int | None = None,
                  font_size: int | None = None) -> Image.Image:
    """A grid of ``images`` (row-major) with labelled columns and rows.

    The number of columns is ``cols``, else ``len(cols_labels)``, else as many as fit
    ``len(rows_labels)`` rows. Cells take the first image's size (others are resized). A missing
    image (None) leaves its cell black.
    """
    if not images:
        raise ValueError("a grid needs at least one image")
    first = next((im for im in images if im is not None), None)
    if first is None:
        raise ValueError("a grid needs at least one image")
    cell = first.size
    if cols is None:  # the shape comes from the labels even when they are not drawn
        cols = len(cols_labels) or (math.ceil(len(images) / len(rows_labels)) if rows_labels else None)
    cols_labels = [str(t) for t in cols_labels] if draw_legend else []
    rows_labels = [str(t) for t in rows_labels] if draw_legend else []
    layout = grid_layout(len(images), cell, cols_labels, rows_labels, margin, cols=cols, font_size=font_size)
    grid = Image.new("RGB", layout.size, BACKGROUND)
    for i, image in enumerate(images):
        box = layout.cell_box(i % layout.cols, i // layout.cols)
        if image is None:
            grid.paste((0, 0, 0), box)
            continue
        if image.size != cell:
            image = image.resize(cell, Image.Resampling.LANCZOS)
        grid.paste(image.convert("RGB"), box[:2])
    if layout.top or layout.left:
        _draw_labels(grid, layout, cols_labels, rows_labels, font_for(cell, font_size))
    return grid


def grid_layout(count: int, cell: tuple[int, int], cols_labels: Sequence[str], rows_labels: Sequence[str],
                margin: int = 0, *, cols: int | None = None, font_size: int | None = None) -> GridLayout:
    """The layout ``labelled_grid`` draws (tests and callers read the cells' positions from it)."""
    margin = max(0, int(margin))
    if cols is None:
        cols = len(cols_labels) or (math.ceil(count / len(rows_labels)) if rows_labels else count)
    cols = max(1, min(cols, count))
    rows = math.ceil(count / cols)
    font = font_for(cell, font_size)
    has_cols = any(t.strip() for t in cols_labels)
    has_rows = any(t.strip() for t in rows_labels)
    left = cell[0] * 3 // 4 if has_rows else 0
    top = 0
    if has_cols:
        heights = [_text_height(_wrap(t, font, cell[0]), font) for t in cols_labels]
        top = max(heights) + 2 * _pad(font)
    return GridLayout(cols, rows, cell, margin, left, top)


def _draw_labels(grid: Image.Image, layout: GridLayout, cols_labels: Sequence[str], rows_labels: Sequence[str],
                 font: ImageFont.FreeTypeFont | ImageFont.ImageFont) -> None:
    draw = ImageDraw.Draw(grid)
    w, h = layout.cell
    for col, text in enumerate(cols_labels[:layout.cols]):
        x0 = layout.cell_box(col, 0)[0]
        lines = _wrap(text, font, w)
        draw.multiline_text((x0 + w / 2, layout.top / 2), lines, font=font, fill=TEXT, anchor="mm", align="center")
    for row, text in enumerate(rows_labels[:layout.rows]):
        y0 = layout.cell_box(0, row)[1]
        lines = _wrap(text, font, layout.left - _pad(font))
        draw.multiline_text((layout.left / 2, y0 + h / 2), lines, font=font, fill=TEXT, anchor="mm", align="center")


def _wrap(text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: int) -> str:
    """Break ``text`` at spaces (or anywhere, for a long word) so each line fits ``width`` pixels."""
    lines: list[str] = []
    for paragraph in str(text).split("\n"):
        line = ""
        for word in paragraph.split(" "):
            candidate = f"{line} {word}" if line else word
            if line and font.getlength(candidate) > width:
                lines.append(line)
                candidate = word
            while len(candidate) > 1 and font.getlength(candidate) > width:  # one word wider than a cell
                cut = max(1, next((i for i in range(len(candidate), 0, -1) if font.getlength(candidate[:i]) <= width), 1))
                lines.append(candidate[:cut])
                candidate = candidate[cut:]
            line = candidate
        lines.append(line)
    return "\n".join(lines)


def _text_height(lines: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont) -> int:
    box = ImageDraw.Draw(Image.new("RGB", (1, 1))).multiline_textbbox((0, 0), lines or " ", font=font)
    return int(box[3] - box[1])


def _pad(font: ImageFont.FreeTypeFont | ImageFont.ImageFont) -> int:
    size = getattr(font, "size", 12)
    return max(2, int(size) // 2)
