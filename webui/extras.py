"""Extras: enlarge finished images with one or two upscalers, keeping their infotext.

A1111's "Extras" semantics, free of the engine and the UI (the Extras tab and
``/sdapi/v1/extra-single-image`` / ``extra-batch-images`` both call :func:`run`):

- resize mode 0 "Scale by" (``upscaling_resize``) or 1 "Scale to" (``upscaling_resize_w`` × ``_h``):
  scale by the larger of the two ratios, then, with ``upscaling_crop``, cut the centre to exactly
  that size (without it the result keeps the image's aspect ratio and covers the box);
- upscaler 1 "None" leaves the image as it is; upscaler 2, when named and visible, is blended over
  upscaler 1's result with ``Image.blend`` at ``upscaler_2_visibility``;
- the source's infotext (PNG "parameters", or a JPEG/WEBP EXIF comment) stays in the result, and
  A1111's postprocessing keys ("Postprocess upscale by: 2, Postprocess upscaler: Lanczos") go into
  the PNG's "postprocessing" and "extras" text chunks, as A1111 writes them.

Device use: the caller passes the lock that serialises the device (the model manager's lock, which
every generation job holds from start to end), and each image is upscaled while holding it: a
model upscaler never shares the GPU with a running job, and jobs queued meanwhile still run between
two images of a batch. Nothing is called out to (listeners, callbacks) while it is held.
"""

from __future__ import annotations

import contextlib
import html
import io
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ContextManager, Mapping, Protocol, Sequence

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from webui import infotext, outputs
from webui.limits import LimitExceeded

SCALE_BY, SCALE_TO = 0, 1
NO_UPSCALER = "None"
# Text chunks A1111 writes: the postprocessing keys under both names (the API's PNG and the saved file).
POSTPROCESS_CHUNKS = ("postprocessing", "extras")
# The API answers a batch with every result at once (encoded), so a batch's results together may
# hold at most this many times limit_extras_pixels. A module constant, not a setting (yet): the
# Limits section of webui/settings.py is the place for one.
BATCH_PIXELS_FACTOR = 4
FACE_RESTORE_NOTE = ("Face restoration (GFPGAN / CodeFormer) is not available in SD Studio: no face restorer ships "
                     "with it, so those settings were ignored.")


class ExtrasError(ValueError):
    """A bad extras setting; ``field`` names the request field to blame, ``str()`` says "field: why"."""

    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field, self.reason = field, reason


class UpscalerService(Protocol):
    """What Extras needs of ``webui.upscaling.Upscalers``."""

    def names(self) -> list[str]: ...

    def find(self, name: str) -> str | None: ...

    def upscale(self, image: Image.Image, scale: float, name: str) -> Image.Image: ...


@dataclass(frozen=True)
class ExtrasSettings:
    """A1111's extras fields (API names); the face-restorer ones are accepted and ignored."""

    resize_mode: int = SCALE_BY
    upscaling_resize: float = 2.0
    upscaling_resize_w: int = 512
    upscaling_resize_h: int = 512
    upscaling_crop: bool = True
    upscaler_1: str = NO_UPSCALER
    upscaler_2: str = NO_UPSCALER
    upscaler_2_visibility: float = 0.0
    upscale_first: bool = False  # A1111 orders upscaling and face restoration with it; we have no face restorer
    gfpgan_visibility: float = 0.0
    codeformer_visibility: float = 0.0

    @property
    def upscales(self) -> bool:
        return self.upscaler_1 != NO_UPSCALER

    @property
    def blends(self) -> bool:
        return self.upscales and self.upscaler_2 != NO_UPSCALER and self.upscaler_2_visibility > 0

    def notes(self) -> list[str]:
        return [FACE_RESTORE_NOTE] if self.gfpgan_visibility > 0 or self.codeformer_visibility > 0 else []

    def resolved(self, upscalers: UpscalerService) -> "ExtrasSettings":
        """The same settings with canonical upscaler names and checked numbers; ExtrasError if not."""
        if self.resize_mode not in (SCALE_BY, SCALE_TO):
            raise ExtrasError("resize_mode", f"must be 0 (scale by) or 1 (scale to), not {self.resize_mode!r}")
        if self.resize_mode == SCALE_BY and not 0 < self.upscaling_resize < math.inf:
            # No upper bound of its own (A1111 has none either): limit_extras_pixels bounds the result.
            raise ExtrasError("upscaling_resize", f"must be a number above 0, not {self.upscaling_resize}")
        if self.resize_mode == SCALE_TO:
            for name in ("upscaling_resize_w", "upscaling_resize_h"):
                if getattr(self, name) < 1:
                    raise ExtrasError(name, f"must be at least 1, not {getattr(self, name)}")
        if not 0 <= self.upscaler_2_visibility <= 1:
            raise ExtrasError("extras_upscaler_2_visibility", "must be between 0 and 1")
        names = {}
        for key in ("upscaler_1", "upscaler_2"):
            wanted = getattr(self, key)
            found = upscalers.find(wanted) if wanted else NO_UPSCALER
            if found is None:
                raise ExtrasError(key, f"unknown upscaler {wanted!r}; available: {', '.join(upscalers.names())}")
            names[key] = found
        return replace(self, **names)

    def scale_for(self, size: tuple[int, int]) -> float:
        """The factor upscaler(s) enlarge by: A1111's, the larger ratio for "Scale to"."""
        if self.resize_mode == SCALE_TO:
            return max(self.upscaling_resize_w / size[0], self.upscaling_resize_h / size[1])
        return float(self.upscaling_resize)

    def output_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """The size of the result for an input of ``size``."""
        if not self.upscales:
            return size
        if self.resize_mode == SCALE_TO and self.upscaling_crop:
            return self.upscaling_resize_w, self.upscaling_resize_h
        scale = self.scale_for(size)
        return max(1, int(size[0] * scale)), max(1, int(size[1] * scale))


@dataclass(frozen=True)
class ExtrasLimits:
    pixels: int  # of one input, of one result, and of what the upscalers make before a crop
    images: int  # in one batch

    @property
    def batch_pixels(self) -> int:
        """The most pixels a batch's results may hold together when all are kept (the API's answer)."""
        return self.pixels * BATCH_PIXELS_FACTOR

    @classmethod
    def from_options(cls, options: Any) -> "ExtrasLimits":
        return cls(int(options.get("limit_extras_pixels")), int(options.get("limit_extras_images")))


def check(sizes: Sequence[tuple[int, int]], settings: ExtrasSettings, limits: ExtrasLimits, field: str, *,
          total: int | None = None) -> None:
    """LimitExceeded (before any work) for too many images, an input or a result over the pixel cap,
    or (``total`` given) results that together make more than ``total`` pixels.

    ``sizes`` are read from the files' headers (``Image.open`` without ``load()``), so a small file
    that decodes to gigabytes is refused before it is decoded.
    """
    if len(sizes) > limits.images:
        raise LimitExceeded(field, f"{len(sizes)} images; the limit (limit_extras_images) is {limits.images}")
    all_made = 0
    for index, size in enumerate(sizes):
        where = f"{field}[{index}]" if len(sizes) > 1 else field
        if size[0] * size[1] > limits.pixels:
            raise LimitExceeded(where, f"{where}: the image is {size[0]}x{size[1]} = {size[0] * size[1]} pixels; "
                                       f"the limit (limit_extras_pixels) is {limits.pixels}")
        made = settings.output_size(size)
        all_made += made[0] * made[1]
        if settings.upscales and settings.resize_mode == SCALE_TO:  # the upscaled image before the crop
            scale = settings.scale_for(size)
            made = max(made, (int(size[0] * scale), int(size[1] * scale)), key=lambda s: s[0] * s[1])
        if made[0] * made[1] > limits.pixels:
            raise LimitExceeded(where, f"{where}: upscaling {size[0]}x{size[1]} makes {made[0]}x{made[1]} = "
                                       f"{made[0] * made[1]} pixels; the limit (limit_extras_pixels) is {limits.pixels}")
    if total is not None and all_made > total:
        raise LimitExceeded(field, f"{field}: the {len(sizes)} results would make {all_made} pixels together; one "
                                   f"batch may make at most {total} ({BATCH_PIXELS_FACTOR} × limit_extras_pixels): "
                                   "send fewer images at a time")


@dataclass
class Postprocessed:
    """One result: the image, the source's infotext and A1111's postprocessing keys."""

    image: Image.Image
    parameters: str | None  # the source's infotext, kept
    info: dict[str, object] = field(default_factory=dict)  # "Postprocess upscale by": 2, ...
    name: str | None = None  # the input's file name, when it had one

    @property
    def text(self) -> str:
        """The postprocessing line, "Key: value, Key: value" (quoted as infotext quotes)."""
        parts = []
        for key, value in self.info.items():
            shown = _format(value)
            parts.append(key if key == shown else f"{key}: {infotext.quote(shown)}")
        return ", ".join(parts)

    def pnginfo(self) -> PngInfo:
        info = infotext.embed_infotext_png(self.parameters)
        if self.info:
            for chunk in POSTPROCESS_CHUNKS:
                info.add_text(chunk, self.text)
        return info

    def png_bytes(self, with_text: bool = True) -> bytes:
        buffer = io.BytesIO()
        self.image.save(buffer, format="PNG", pnginfo=self.pnginfo() if with_text else None)
        return buffer.getvalue()

    def save(self, folder: Path, with_text: bool = True, keep_name: bool = False) -> Path:
        """Written atomically into ``folder``: ``<number>-extras.png``, or ``<input stem>.png``."""
        data = self.png_bytes(with_text)

        def write(path: Path) -> None:
            with path.open("wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())

        name = Path(self.name).stem if keep_name and self.name and Path(self.name).stem else None
        return outputs.write_atomically(folder, "extras", "png", write, name=name)


def _format(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # "2", as people write it, not "2.0"
    return str(value)


def postprocess(image: Image.Image, settings: ExtrasSettings, upscalers: UpscalerService,
                name: str | None = None) -> Postprocessed:
    """Upscale one image (``settings`` already :meth:`~ExtrasSettings.resolved`); RGB, as A1111's."""
    result = Postprocessed(image=image.convert("RGB"), parameters=infotext.read_image_infotext(image), name=name)
    if not settings.upscales:
        return result
    first = _upscaled(result.image, settings, upscalers, settings.upscaler_1, result.info)
    result.info["Postprocess upscaler"] = settings.upscaler_1
    if settings.blends:
        second = _upscaled(result.image, settings, upscalers, settings.upscaler_2, result.info)
        first = Image.blend(first, second.convert(first.mode), float(settings.upscaler_2_visibility))
        result.info["Postprocess upscaler 2"] = settings.upscaler_2
    result.image = first
    return result


def _upscaled(image: Image.Image, settings: ExtrasSettings, upscalers: UpscalerService, upscaler: str,
              info: dict[str, object]) -> Image.Image:
    # The keys in A1111's order: "upscale by" / "upscale to", then "crop to".
    if settings.resize_mode == SCALE_TO:
        info["Postprocess upscale to"] = f"{settings.upscaling_resize_w}x{settings.upscaling_resize_h}"
    else:
        info["Postprocess upscale by"] = settings.upscaling_resize
    upscaled = upscalers.upscale(image, settings.scale_for(image.size), upscaler).convert("RGB")
    if settings.resize_mode == SCALE_TO and settings.upscaling_crop:
        width, height = settings.upscaling_resize_w, settings.upscaling_resize_h
        canvas = Image.new("RGB", (width, height))
        canvas.paste(upscaled, (width // 2 - upscaled.width // 2, height // 2 - upscaled.height // 2))
        upscaled = canvas
        info["Postprocess crop to"] = f"{width}x{height}"
    return upscaled


@dataclass(frozen=True)
class ExtrasInput:
    image: Image.Image
    name: str | None = None  # the file name it came with (batch), kept for saving


def run(inputs: Sequence[ExtrasInput], settings: ExtrasSettings, upscalers: UpscalerService, *,
        limits: ExtrasLimits, device_lock: ContextManager[Any] | None = None,
        field: str = "image") -> list[Postprocessed]:
    """Check everything first (ExtrasError, LimitExceeded), then upscale each image in turn,
    holding ``device_lock`` for one image at a time."""
    resolved = settings.resolved(upscalers)
    check([item.image.size for item in inputs], resolved, limits, field)
    made = []
    for item in inputs:
        with device_lock if device_lock is not None else contextlib.nullcontext():
            made.append(postprocess(item.image, resolved, upscalers, item.name))
    return made


def html_info(text: str, notes: Sequence[str] = ()) -> str:
    """A1111's html_info: the text as one HTML paragraph (lines kept), then a paragraph per note."""
    paragraphs = ["<p>" + "<br>\n".join(html.escape(line) for line in text.split("\n")) + "</p>"]
    paragraphs += [f'<p class="sd-warnings">{html.escape(note)}</p>' for note in notes]
    return "".join(paragraphs)


def settings_from(values: Mapping[str, Any]) -> ExtrasSettings:
    """ExtrasSettings from A1111's API field names (``extras_upscaler_2_visibility`` and all)."""
    return ExtrasSettings(
        resize_mode=int(values.get("resize_mode", SCALE_BY)),
        upscaling_resize=float(values.get("upscaling_resize", 2.0)),
        upscaling_resize_w=int(values.get("upscaling_resize_w", 512)),
        upscaling_resize_h=int(values.get("upscaling_resize_h", 512)),
        upscaling_crop=bool(values.get("upscaling_crop", True)),
        upscaler_1=str(values.get("upscaler_1") or NO_UPSCALER),
        upscaler_2=str(values.get("upscaler_2") or NO_UPSCALER),
        upscaler_2_visibility=float(values.get("extras_upscaler_2_visibility", 0.0)),
        upscale_first=bool(values.get("upscale_first", False)),
        gfpgan_visibility=float(values.get("gfpgan_visibility", 0.0)),
        codeformer_visibility=float(values.get("codeformer_visibility", 0.0)),
    )
