"""What PNG Info shows of an image: its infotext and its other metadata, as A1111 reads them.

A1111 (``modules/images.py`` ``read_info_from_image``): the PNG ``parameters`` text, replaced by
the EXIF UserComment when there is one (JPEG/WEBP, also kept as the item "exif comment"), or a
GIF's comment; the other items are the file's remaining text chunks, less PIL's format keys.
We add the readable EXIF tags (camera, software, date...) as items, capped in number and length:
a file's metadata is untrusted text.
"""

from __future__ import annotations

from typing import Any

from PIL import ExifTags, Image

from webui import infotext

__all__ = ["read_metadata"]

# PIL's format details and binary blobs: not metadata a user wrote (A1111 hides these too).
_HIDDEN = {
    "parameters", "exif", "jfif", "jfif_version", "jfif_unit", "jfif_density", "dpi", "loop", "background",
    "timestamp", "duration", "progressive", "progression", "icc_profile", "chromaticity", "photoshop",
    "transparency", "gamma", "srgb", "aspect", "xmp", "comment",
}
# EXIF tags that are pointers, the infotext itself, or opaque maker data.
_SKIPPED_TAGS = {0x8769, 0x8825, 0xA005, 0x9286, 0x927C, 0x014A}
_MAX_ITEMS = 64
_MAX_CHARS = 4096


def _plain(value: Any) -> str | int | float | None:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, float, str)):
        return value[:_MAX_CHARS] if isinstance(value, str) else value
    if isinstance(value, bytes):
        text = value.decode("utf-8", errors="replace").strip("\x00 ")
        return text[:_MAX_CHARS] if text.isprintable() and text else None
    try:  # IFDRational and other number-like EXIF values
        return float(value)
    except (TypeError, ValueError):
        text = str(value)
        return text[:_MAX_CHARS] if text else None


def _exif_items(image: Image.Image) -> dict[str, Any]:
    found: dict[str, Any] = {}
    try:
        exif = image.getexif()
        tags = dict(exif)
        tags.update(exif.get_ifd(0x8769))  # the Exif sub-IFD: dates, exposure, UserComment
    except Exception:  # malformed EXIF: PIL raises assorted errors; the rest still shows
        return found
    for tag, value in tags.items():
        if tag in _SKIPPED_TAGS or not isinstance(tag, int):
            continue
        shown = _plain(value)
        if shown is not None and shown != "":
            found[ExifTags.TAGS.get(tag, f"EXIF {tag:#06x}")] = shown
    return found


def read_metadata(image: Image.Image) -> tuple[str, dict[str, Any]]:
    """(infotext or "", other metadata by name) of a loaded image."""
    text = infotext.read_image_infotext(image) or ""
    info = dict(image.info or {})
    items: dict[str, Any] = {}
    comment = info.get("comment")  # GIF (and some JPEG) comments: A1111 reads a GIF's as the infotext
    if not text and isinstance(comment, (str, bytes)):
        text = comment.decode("utf-8", errors="ignore") if isinstance(comment, bytes) else comment
    exif = info.get("exif")
    if isinstance(exif, (bytes, bytearray)) and exif and text and text != info.get("parameters"):
        items["exif comment"] = text
    for key, value in info.items():
        if key in _HIDDEN or isinstance(value, (bytes, bytearray)):  # PIL's own keys are lower case
            continue
        shown = _plain(value)
        if shown is not None:
            items[str(key)[:200]] = shown
    if isinstance(exif, (bytes, bytearray)) and exif:
        for key, value in _exif_items(image).items():
            items.setdefault(key, value)
    return text, dict(list(items.items())[:_MAX_ITEMS])
