"""Saving images: atomic writes, collision-free names, A1111 infotext inside, grids.

A file appears under its final name complete or not at all: it is written to a temporary name
in the same folder, flushed, then hard-linked to the next free ``<number>-<seed>.png`` (a link
fails if the name exists, so two writers never overwrite each other).
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
import tempfile
import threading
from pathlib import Path
from typing import Callable

from PIL import Image
from PIL.PngImagePlugin import PngInfo

_lock = threading.Lock()
PARTIAL_PREFIX = ".partial-"  # files being written; never a *.png until complete


def dated_folder(base: Path, per_day: bool = True) -> Path:
    return Path(base) / dt.date.today().isoformat() if per_day else Path(base)


def _next_number(folder: Path, prefix: str = "") -> int:
    """One more than the highest ``<prefix><number>-`` in the folder (A1111's sequence number)."""
    numbered = re.compile(re.escape(prefix) + r"(\d+)-")
    highest = -1
    for entry in os.scandir(folder):
        if m := numbered.match(entry.name):
            highest = max(highest, int(m.group(1)))
    return highest + 1


def _png_bytes_to(path: Path, image: Image.Image, infotext: str | None, extra_text: dict[str, str] | None = None) -> None:
    info = PngInfo()
    if infotext:
        info.add_text("parameters", infotext)
    for key, value in (extra_text or {}).items():
        info.add_text(key, value)
    with path.open("wb") as f:
        image.save(f, format="PNG", pnginfo=info)
        f.flush()
        os.fsync(f.fileno())


def save_png(image: Image.Image, folder: Path, stem_suffix: str, infotext: str | None, prefix: str = "",
             extra_text: dict[str, str] | None = None, name: str | None = None) -> Path:
    """Write ``image`` as ``<prefix><number:05>-<stem_suffix>.png`` in ``folder``; returns the path.

    ``extra_text``: more PNG text chunks (the job queue tags its images to find them after a crash).
    ``name``: save as ``<name>.png`` instead (img2img batch keeps the input's name), ``<name>-<n>.png``
    when that exists.
    """
    return write_atomically(folder, stem_suffix, "png", lambda path: _png_bytes_to(path, image, infotext, extra_text),
                            prefix=prefix, name=name)


def write_atomically(folder: Path, stem_suffix: str, extension: str, write: Callable[[Path], None], *,
                     prefix: str = "", name: str | None = None) -> Path:
    """``write(temporary path)`` (which must flush and fsync), then link it under the first free
    ``<prefix><number:05>-<stem_suffix>.<extension>`` (or ``<name>[-n].<extension>``)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=PARTIAL_PREFIX, suffix=".tmp", dir=folder)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        with _lock:
            number = _next_number(folder, prefix) if name is None else 0
            while True:
                if name is not None:
                    final = folder / (f"{name}.{extension}" if number == 0 else f"{name}-{number}.{extension}")
                else:
                    final = folder / f"{prefix}{number:05d}-{stem_suffix}.{extension}"
                try:
                    os.link(tmp, final)
                    return final
                except FileExistsError:
                    number += 1
    finally:
        tmp.unlink(missing_ok=True)


def find_tagged(folder: str | Path, key: str, match: Callable[[str], bool]) -> tuple[Path, dict] | None:
    """The PNG in ``folder`` whose text chunk ``key`` matches, with its text chunks (headers only)."""
    try:
        entries = sorted(Path(folder).glob("*.png"))
    except OSError:
        return None
    for path in entries:
        try:
            with Image.open(path) as png:
                value = png.info.get(key)  # text chunks come before the image data
                if isinstance(value, str) and match(value):
                    return path, {k: v for k, v in png.info.items() if isinstance(v, str)}
        except (OSError, SyntaxError, ValueError):
            continue
    return None


def remove_partial_files(folder: Path) -> int:
    """Delete what a crash left half-written under ``folder``; returns how many."""
    removed = 0
    for path in Path(folder).rglob(f"{PARTIAL_PREFIX}*"):
        try:
            path.unlink()
            removed += 1
        except OSError:
            pass
    return removed


def grid_rows(count: int) -> int:
    """A1111's default grid shape: about square, never more rows than images."""
    return max(1, min(count, round(math.sqrt(count))))


def make_grid(images: list[Image.Image], rows: int | None = None) -> Image.Image:
    rows = rows or grid_rows(len(images))
    cols = math.ceil(len(images) / rows)
    w, h = images[0].size
    grid = Image.new("RGB", (cols * w, rows * h), "black")
    for i, image in enumerate(images):
        if image.size != (w, h):  # e.g. the first-pass image of a batch interrupted during hires fix
            image = image.resize((w, h), Image.Resampling.LANCZOS)
        grid.paste(image, ((i % cols) * w, (i // cols) * h))
    return grid
