"""Images in and out of the API: PNG bytes with infotext, base64, previews, decoding uploads."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

from PIL import Image

from webui import infotext
from webui.request_img2img import encode_png
from webui.result import GeneratedImage, Result


def png_bytes(generated: GeneratedImage, with_infotext: bool = True) -> bytes:
    """The image as PNG: the saved file's bytes when there is one, else encoded with its infotext."""
    if generated.path is not None:
        try:
            return Path(generated.path).read_bytes()
        except OSError:
            pass  # moved or deleted since: encode from memory
    buffer = io.BytesIO()
    infotext.save_with_infotext(generated.load(), buffer, "PNG", generated.infotext if with_infotext else None)
    return buffer.getvalue()


def encode_preview(image: Any) -> str | None:
    return encode_png(image) if isinstance(image, Image.Image) else None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def response_images(result: Result, options: Any, send: bool) -> tuple[list[str], dict[str, Any]]:
    """base64 PNGs (grid first, as A1111, when the return_grid option is on) and the info dict."""
    info = dict(result.info)
    with_text = bool(options.enable_pnginfo)
    shown = list(result.images)
    if result.grid is not None and options.return_grid:
        shown.insert(0, result.grid)
        info["infotexts"] = [result.grid.infotext, *info.get("infotexts", [])]
        info["index_of_first_image"] = 1
    if result.interrupted:
        info["interrupted"] = True
    images = [_b64(png_bytes(g, with_text)) for g in shown] if send else []
    return images, info
