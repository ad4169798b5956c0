"""A1111's ``modules.images``: ``save_image``, ``image_grid``, ``read_info_from_image``, ``resize_image``.

``save_image`` writes through SD Studio's outputs (atomic, collision-free names, the infotext in
the file) and only inside the allowed output folders: a path outside the data dir and the
folders the admin allowed raises a ValueError naming it, and nothing is written.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from PIL import Image

from modules import missing
from webui import infotext as _infotext
from webui import outputs
from webui.engine.init_image import resize as _resize
from webui.flags import CommandLine, Paths
from webui.plugins import context
from webui.plugins.callbacks import ImageSaveParams

__all__ = ["image_grid", "read_info_from_image", "resize_image", "save_image"]

_FORMATS = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "webp": "WEBP"}
# PIL keys that are not generation info (A1111 leaves them out of the items too).
_NOT_INFO = {"parameters", "exif", "dpi", "jfif", "jfif_version", "jfif_unit", "jfif_density", "icc_profile",
             "transparency", "gamma", "chromaticity", "srgb", "loop", "duration", "background", "progression",
             "progressive"}


def _folder(path: str | os.PathLike | None, grid: bool, p: Any) -> Path:
    """The folder to save into, checked against the allowed output roots (ValueError outside them)."""
    plugins = context.plugins()
    paths = plugins.studio.paths if plugins.studio is not None else Paths.from_cmd(plugins.cmd or CommandLine())
    options = plugins.options
    if not path:  # a job's p has no outpath: the tab's folder from the settings
        tab = "img2img" if p is not None and getattr(p, "is_img2img", False) else "txt2img"
        path = options.get("outdir_samples") or options.get(f"outdir_{tab}_{'grids' if grid else 'samples'}")
    return paths.outputs(str(path))


def _plain_name(what: str, text: str | None) -> None:
    if text and ("/" in text or "\\" in text or text in (".", "..") or "\0" in text):
        raise ValueError(f"save_image: {what} {text!r} must be a plain file name, not a path")


def _exif_available() -> bool:
    return importlib.util.find_spec("piexif") is not None


def _write_other(image: Image.Image, folder: Path, stem: str, prefix: str, fmt: str, ext: str, info: str | None,
                 forced: str | None) -> Path:
    """JPEG / WEBP, written atomically as save_png writes PNGs."""
    def write(path: Path) -> None:
        with path.open("wb") as f:
            if _exif_available():
                _infotext.save_with_infotext(image, f, fmt, info)
            else:  # no piexif: the picture without its infotext
                (image.convert("RGB") if fmt == "JPEG" else image).save(f, format=fmt)
            f.flush()
            os.fsync(f.fileno())

    return outputs.write_atomically(folder, stem, ext, write, prefix=prefix, name=forced)


def save_image(image: Image.Image, path: str | None, basename: str, seed: int | None = None,
               prompt: str | None = None, extension: str = "png", info: str | None = None,
               short_filename: bool = False, no_prompt: bool = False, grid: bool = False,
               pnginfo_section_name: str = "parameters", p: Any = None, existing_info: dict | None = None,
               forced_filename: str | None = None, suffix: str = "", save_to_dirs: bool | None = None
               ) -> tuple[str, str | None]:
    """Save ``image`` as A1111 does; returns (the file's path, None: no .txt beside it).

    Named ``[basename-]<number>-<seed><suffix>.<ext>`` (``forced_filename``: that name). The
    infotext ``info`` goes into the PNG's ``pnginfo_section_name`` chunk, or the EXIF UserComment
    of a JPEG / WEBP. ``before_image_saved`` / ``image_saved`` callbacks are called.
    """
    ext = extension.lower().lstrip(".")
    fmt = _FORMATS.get(ext)
    if fmt is None:
        raise ValueError(f"save_image: extension {extension!r} is not supported; use one of {sorted(_FORMATS)}")
    for what, text in (("basename", basename), ("forced_filename", forced_filename), ("suffix", suffix)):
        _plain_name(what, text)
    options = context.plugins().options
    folder = _folder(path, grid, p)
    if save_to_dirs is None:
        save_to_dirs = options.get("grid_save_to_dirs" if grid else "save_to_dirs")
    folder = outputs.dated_folder(folder, bool(save_to_dirs))

    callbacks = context.plugins().callbacks
    pnginfo = {**{k: str(v) for k, v in (existing_info or {}).items()}, pnginfo_section_name: info}
    params = ImageSaveParams(image, p, str(folder), pnginfo)
    callbacks.call("before_image_saved", params)
    image, info = params.image, params.pnginfo.get(pnginfo_section_name, info)

    stem = f"{'' if short_filename or seed is None else seed}{suffix}".strip("-") or "image"
    prefix = f"{basename}-" if basename else ""
    if fmt == "PNG":
        extra = {k: str(v) for k, v in params.pnginfo.items() if k != pnginfo_section_name and v is not None}
        if pnginfo_section_name != "parameters" and info:
            extra[pnginfo_section_name] = str(info)
        parameters = str(info) if info and pnginfo_section_name == "parameters" else None
        saved = outputs.save_png(image, folder, stem, parameters, prefix=prefix, extra_text=extra,
                                 name=forced_filename)
    else:
        saved = _write_other(image, folder, stem, prefix, fmt, ext, str(info) if info else None, forced_filename)

    callbacks.call("image_saved", ImageSaveParams(image, p, str(saved), params.pnginfo))
    return str(saved), None


def image_grid(imgs: list[Image.Image], batch_size: int = 1, rows: int | None = None) -> Image.Image:
    """A grid of ``imgs``: ``rows`` rows, else the ``n_rows`` setting (-1: about square; 0: batch_size)."""
    if rows is None:
        n_rows = context.plugins().options.get("n_rows")
        rows = n_rows if n_rows > 0 else batch_size if n_rows == 0 else None
    return outputs.make_grid(list(imgs), min(rows, len(imgs)) if rows else None)


def read_info_from_image(image: Image.Image) -> tuple[str | None, dict[str, Any]]:
    """(the infotext, the image's other info entries)."""
    items = {k: v for k, v in (image.info or {}).items() if k not in _NOT_INFO}
    return _infotext.read_image_infotext(image), items


def resize_image(resize_mode: int, im: Image.Image, width: int, height: int,
                 upscaler_name: str | None = None) -> Image.Image:
    """A1111's resize modes 0 (stretch), 1 (crop), 2 (fill); upscalers are not used: LANCZOS."""
    return _resize(im, width, height, 0 if resize_mode == 3 else resize_mode)


def __getattr__(name: str) -> Any:
    raise missing(f"modules.images.{name}")
