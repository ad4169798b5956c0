"""The upscaler service: names, listing, and upscaling an image with any of them.

One instance per studio (``studio.upscalers``), shared by hires fix, Extras and scripts. Loaded
models live in a tiny cache; loading and running happen outside the cache's lock, so one slow
load never blocks a listing, and two jobs may run the same model at once.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image
from spandrel import ImageModelDescriptor, ModelTiling

from webui.upscaling import catalog, tiles
from webui.upscaling.loader import UpscalerError, load_model

log = logging.getLogger(__name__)

# A1111's model-free upscalers, first in its list in this order.
BUILTIN_UPSCALERS: tuple[str, ...] = ("None", "Lanczos", "Nearest")
_RESAMPLE = {"Lanczos": Image.Resampling.LANCZOS, "Nearest": Image.Resampling.NEAREST}
_MAX_PASSES = 3  # A1111 runs a model at most three times to reach a larger scale
DEFAULT_TILE, DEFAULT_OVERLAP = 192, 8  # A1111's ESRGAN_tile / ESRGAN_tile_overlap
DEFAULT_PASS_LIMIT = 6144 * 6144  # limit_extras_pixels's default, when no options are given

__all__ = ["BUILTIN_UPSCALERS", "UpscalerError", "UpscalerItem", "Upscalers"]


@dataclass(frozen=True)
class UpscalerItem:
    """One row of GET /sdapi/v1/upscalers."""
    name: str
    model_name: str | None
    model_path: str | None
    model_url: str | None
    scale: float | None
    folder: str | None = None  # "ESRGAN", "RealESRGAN", ... (None for the model-free ones)


class Upscalers:
    """Every upscaler A1111 would list (no latent modes: those are hires fix's, see webui.upscalers)."""

    def __init__(self, folders: dict[str, Path] | None = None, *, device: torch.device | str | None = None,
                 dtype: torch.dtype = torch.float32, options: Any = None, cache_size: int = 2):
        self.folders = dict(folders or {})
        self.device = torch.device(device or "cpu")
        self.dtype = dtype if self.device.type == "cuda" else torch.float32  # fp16 only on CUDA
        self.options = options  # live Options: tile settings when the caller passes none
        self.cache_size = max(1, cache_size)
        self._lock = threading.Lock()
        self._files: list[catalog.UpscalerFile] = []
        self._scales: dict[Path, float] = {}  # learnt when a model loads (a file's scale needs its tensors)
        self._models: OrderedDict[tuple[Path, float], ImageModelDescriptor] = OrderedDict()
        self.refresh()

    @classmethod
    def for_models_dir(cls, models_dir: Path, esrgan_dir: Path | None = None, **kwargs: Any) -> "Upscalers":
        """A1111's folders under ``models_dir`` (ESRGAN possibly elsewhere: --esrgan-models-path)."""
        folders = {name: models_dir / name for name in catalog.UPSCALER_FOLDERS}
        if esrgan_dir is not None:
            folders["ESRGAN"] = esrgan_dir
        return cls(folders, **kwargs)

    # -- listing ---------------------------------------------------------------------------

    def refresh(self) -> None:
        files = catalog.scan(self.folders)
        keep = set()
        for f in files:
            try:
                keep.add((f.path, f.path.stat().st_mtime))
            except OSError:  # removed since the scan
                pass
        with self._lock:
            self._files = files
            for key in [k for k in self._models if k not in keep]:
                del self._models[key]  # a file replaced or removed: its model goes too

    def names(self) -> list[str]:
        with self._lock:
            return [*BUILTIN_UPSCALERS, *(f.name for f in self._files)]

    def files(self) -> list[catalog.UpscalerFile]:
        with self._lock:
            return list(self._files)

    def items(self) -> list[UpscalerItem]:
        builtin = [UpscalerItem(name, None, None, None, 4) for name in BUILTIN_UPSCALERS]
        with self._lock:
            files, scales = list(self._files), dict(self._scales)
        # model_name: the kind of upscaler (its folder), as A1111 gives its upscaler family's name there
        return builtin + [UpscalerItem(f.name, f.folder, str(f.path), None, scales.get(f.path, 4), f.folder)
                          for f in files]

    def find(self, name: str) -> str | None:
        wanted = " ".join(str(name or "").split()).casefold()
        return next((known for known in self.names() if known.casefold() == wanted), None)

    def _file(self, name: str) -> catalog.UpscalerFile:
        canonical = self.find(name)
        with self._lock:
            found = next((f for f in self._files if f.name == canonical), None)
        if found is None:
            raise UpscalerError(f"unknown upscaler {name!r}; available: {', '.join(self.names())}")
        return found

    # -- upscaling -------------------------------------------------------------------------

    def upscale(self, image: Image.Image, scale: float, name: str, *, tile: int | None = None,
                overlap: int | None = None, interrupted: Callable[[], bool] | None = None) -> Image.Image:
        """``image`` enlarged ``scale`` times to (int(w*scale), int(h*scale)); "None" returns it as is."""
        if self.find(name) == "None":
            return image
        size = (max(1, int(image.width * scale)), max(1, int(image.height * scale)))
        return self.upscale_to(image, size, name, tile=tile, overlap=overlap, interrupted=interrupted)

    def upscale_to(self, image: Image.Image, size: tuple[int, int], name: str, *, tile: int | None = None,
                   overlap: int | None = None, interrupted: Callable[[], bool] | None = None) -> Image.Image:
        """``image`` made exactly ``size``: the model (repeated up to 3 times), then Lanczos to fit.

        "None" resizes with Lanczos only (A1111's hires fix does the same). Sizes on the way: the
        first pass makes ``image`` × the model's factor ``s`` (the original is shrunk only when that
        would exceed 4 × limit_extras_pixels); a later pass that would overshoot runs on the image
        shrunk to ceil(size / s), so no image after the first pass is more than ``s - 1`` pixels
        wider or taller than ``size``.
        """
        canonical = self.find(name)
        width, height = int(size[0]), int(size[1])
        if width < 1 or height < 1:
            raise UpscalerError(f"cannot upscale to {width}×{height}")
        if canonical is None:
            raise UpscalerError(f"unknown upscaler {name!r}; available: {', '.join(self.names())}")
        if canonical in _RESAMPLE:
            return image.resize((width, height), resample=_RESAMPLE[canonical])
        if canonical != "None":
            model = self._model(self._file(canonical))
            tile, overlap = self._tiling(tile, overlap)
            factor = max(1, int(model.scale))
            for done in range(_MAX_PASSES):
                if image.width >= width and image.height >= height:
                    break
                if interrupted is not None and interrupted():
                    break
                overshoots = image.width * factor > width or image.height * factor > height
                too_big = image.width * image.height * factor * factor > self._pass_budget()
                if overshoots and (done or too_big):
                    # This pass would overshoot (A1111: 4× at 4.05 makes 16× first). Land it at the target
                    # instead: its input shrunk to ceil(target / factor), so the pass ends at most
                    # factor - 1 pixels past the target. The first pass sees the original unless its
                    # result would not fit the memory budget (a huge image enlarged a little): shrinking
                    # the original throws detail away, so only then.
                    image = image.resize((-(-width // factor), -(-height // factor)), resample=Image.Resampling.LANCZOS)
                image = self._run(model, image, tile, overlap)
        if image.size != (width, height):
            image = image.resize((width, height), resample=Image.Resampling.LANCZOS)
        return image

    def _pass_budget(self) -> int:
        """The most pixels one model pass may make: 4 × limit_extras_pixels (the largest result a
        request may ask for), so the memory a pass takes is bounded by the limits, not by the input."""
        limit = self.options.get("limit_extras_pixels") if self.options is not None else None
        return 4 * int(limit or DEFAULT_PASS_LIMIT)

    def model_scale(self, name: str) -> int:
        """The model's own factor (loads it); 1 for the model-free upscalers."""
        canonical = self.find(name)
        if canonical in BUILTIN_UPSCALERS:
            return 1
        return int(self._model(self._file(name)).scale)

    def _tiling(self, tile: int | None, overlap: int | None) -> tuple[int, int]:
        get = (lambda k, d: self.options.get(k)) if self.options is not None else (lambda k, d: d)
        tile = int(get("ESRGAN_tile", DEFAULT_TILE) if tile is None else tile)
        overlap = int(get("ESRGAN_tile_overlap", DEFAULT_OVERLAP) if overlap is None else overlap)
        return max(0, tile), max(0, overlap)

    def _model(self, file: catalog.UpscalerFile) -> ImageModelDescriptor:
        try:
            key = (file.path, file.path.stat().st_mtime)
        except OSError:
            raise UpscalerError(f"{file.path.name}: the file is gone; refresh the upscaler list") from None
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
        model = load_model(file.path, self.device, self.dtype)  # outside the lock: loads can be slow
        log.info("upscaler %s loaded: %s ×%d", file.name, model.architecture.name, model.scale)
        with self._lock:
            self._models[key] = model
            self._scales[file.path] = model.scale
            while len(self._models) > self.cache_size:
                self._models.popitem(last=False)
        return model

    def _run(self, model: ImageModelDescriptor, image: Image.Image, tile: int, overlap: int) -> Image.Image:
        """One pass of the model over the whole image (alpha, if any, resized alongside)."""
        alpha = image.getchannel("A") if image.mode in ("RGBA", "LA") else None
        mode = "L" if model.input_channels == 1 else "RGB"
        pixels = np.asarray(image.convert(mode), dtype=np.float32) / 255.0
        tensor = torch.from_numpy(pixels.reshape(*pixels.shape[:2], -1)).permute(2, 0, 1)[None]
        tensor = tensor.to(self.device, dtype=model.dtype)
        if model.tiling == ModelTiling.INTERNAL:
            tile = 0
        with torch.inference_mode():
            out = tiles.run_tiled(model, tensor, model.scale, tile, overlap)
        array = (out[0].float().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255.0).round().astype(np.uint8)
        result = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array[..., :3])
        if result.mode != "RGB":
            result = result.convert("RGB")
        if alpha is not None:
            result.putalpha(alpha.resize(result.size, resample=Image.Resampling.LANCZOS))
        return result
