"""ControlNet preprocessors ("modules"): the extension's names, run offline, results cached.

``Preprocessors`` is ``studio.preprocessors``: the routes, the units and the UI ask it which modules
exist, which can run here, and for detected maps.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, ContextManager

import numpy as np
from PIL import Image

from webui.control.preprocessors import registry
from webui.control.preprocessors.annotators import (
    ANNOTATORS,
    Annotator,
    AnnotatorError,
    find_file,
)
from webui.control.preprocessors.cache import DEFAULT_SIZE, MapCache, image_digest
from webui.control.preprocessors.weight_free import (
    MASK_VIEWS,
    OPERATIONS,
    inpaint_view,
    rgb,
    scaled_padded,
)

log = logging.getLogger(__name__)

MIN_RESOLUTION, MAX_RESOLUTION = 16, 4096  # the UI slider spans 64-2048; pixel perfect may leave it
LOADED_DETECTORS = 2  # annotator networks kept in RAM (CPU) between calls


class PreprocessorError(ValueError):
    """A module that is unknown, cannot run here, or got bad input: a sentence (a 422 over HTTP)."""


class Preprocessors:
    def __init__(self, annotators_dir: Path, *, device: Any = "cpu",
                 device_lock: Callable[[], ContextManager] | None = None, cache_size: int = DEFAULT_SIZE):
        self.annotators_dir = Path(annotators_dir)
        self.device = device
        # Held only while a detector's network is on a GPU (the model manager's lock, re-entrant).
        self._device_lock = device_lock or contextlib.nullcontext
        self.cache = MapCache(cache_size)
        self._detectors: OrderedDict[tuple, Any] = OrderedDict()
        self._load_lock = threading.Lock()

    # ---- what exists ----
    def modules(self, *, labels: bool = False) -> list[str]:
        """The extension's module names (or UI labels), in its order."""
        return [m.label if labels else m.name for m in registry.sorted_modules()]

    def detail(self, *, labels: bool = False) -> dict[str, dict]:
        """/controlnet/module_list's module_detail, plus "unavailable" for modules that cannot run here."""
        detail = {}
        for m in registry.sorted_modules():
            entry: dict[str, Any] = {"model_free": m.model_free, "sliders": [s.as_json() for s in m.sliders]}
            reason = self.unavailable(m.name)
            if reason:
                entry["unavailable"] = reason
            detail[m.label if labels else m.name] = entry
        return detail

    def find(self, name_or_label: str) -> str | None:
        """The module's name for a name, UI label or old name; None when there is no such module."""
        found = registry.lookup(name_or_label)
        return found.name if found else None

    def label(self, name: str) -> str:
        found = registry.lookup(name)
        return found.label if found else name

    def defaults(self, name: str) -> tuple[int, float, float]:
        """(processor_res, threshold_a, threshold_b) that -1 stands for."""
        found = registry.lookup(name)
        return found.defaults() if found else (512, 0.5, 0.5)

    def needs_mask(self, name: str) -> bool:
        found = registry.lookup(name)
        return bool(found and found.mask)

    def unavailable(self, name: str) -> str | None:
        """None when the module runs here, else the sentence saying why not (and what to do)."""
        module = registry.lookup(name)
        if module is None:
            return f"there is no preprocessor {name!r}: /controlnet/module_list lists them"
        if module.name in OPERATIONS:
            return None
        annotator = ANNOTATORS.get(module.name)
        if annotator is None:
            return (f"the {module.label} preprocessor is not supported in this version of SD Studio "
                    f"(docs/controlnet.md lists the ones that are)")
        missing = [f for f in annotator.files if find_file(self.annotators_dir, f) is None]
        if missing:
            return f"needs {' and '.join(missing)}: put it in {self.annotators_dir}"
        return None

    def control_types(self, model_titles: list[str]) -> dict[str, dict]:
        """/controlnet/control_types: per type, its modules and models and their defaults."""
        titles = list(model_titles)
        if not any(t.lower() == "none" for t in titles):
            titles.insert(0, "None")  # the extension's lists always start with it
        answer = {}
        for tag in registry.control_types():
            choice = registry.choose(tag, titles)
            answer[tag] = {"module_list": choice.modules, "model_list": choice.models,
                           "default_option": choice.default_module, "default_model": choice.default_model}
        return answer

    # ---- running ----
    def resolve(self, name: str, resolution: float, threshold_a: float, threshold_b: float) -> tuple[str, int, float, float]:
        """The module's name and the settings with -1 (or any negative) replaced by its defaults."""
        module = registry.lookup(name)
        if module is None:
            raise PreprocessorError(f"there is no preprocessor {name!r}: /controlnet/module_list lists them")
        res, a, b = module.defaults()
        res = res if resolution is None or resolution < 0 else int(resolution)
        a = a if threshold_a is None or threshold_a < 0 else float(threshold_a)
        b = b if threshold_b is None or threshold_b < 0 else float(threshold_b)
        if not MIN_RESOLUTION <= res <= MAX_RESOLUTION:
            raise PreprocessorError(f"processor_res {res} is out of range: give {MIN_RESOLUTION} to "
                                    f"{MAX_RESOLUTION}, or -1 for the module's default")
        return module.name, res, a, b

    def run(self, name: str, image: Image.Image, resolution: int = -1, threshold_a: float = -1,
            threshold_b: float = -1) -> Image.Image:
        """The detected map (RGB) of ``image``; PreprocessorError when the module cannot run here."""
        name, res, a, b = self.resolve(name, resolution, threshold_a, threshold_b)
        reason = self.unavailable(name)
        if reason:
            raise PreprocessorError(reason)
        key = (name, image_digest(image), res, a, b)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        with_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
        raw = np.asarray(image.convert("RGBA" if with_alpha else "RGB"))
        pixels = rgb(raw)
        if name in MASK_VIEWS:
            result = inpaint_view(raw)
        elif name in OPERATIONS:
            result = OPERATIONS[name](pixels, res, a, b)
        else:
            result = self._run_annotator(name, ANNOTATORS[name], pixels, res, a, b)
        detected = Image.fromarray(rgb(np.ascontiguousarray(result, dtype=np.uint8)), "RGB")
        self.cache.put(key, detected)
        return detected

    def _run_annotator(self, name: str, annotator: Annotator, pixels: np.ndarray, res: int, a: float, b: float) -> np.ndarray:
        import cv2
        import torch

        detector = self._detector(annotator)
        padded, crop = scaled_padded(pixels, res)
        on_gpu = str(self.device) != "cpu"
        with self._device_lock() if on_gpu else contextlib.nullcontext():
            try:
                if on_gpu:
                    detector.to(self.device)
                with torch.inference_mode():
                    result = annotator.call(detector, padded, min(padded.shape[:2]), a, b)
            finally:
                if on_gpu:  # the GPU is the generation's: the network waits in RAM
                    detector.to("cpu")
        result = rgb(np.asarray(result, dtype=np.uint8))
        if result.shape[:2] != padded.shape[:2]:
            result = cv2.resize(result, (padded.shape[1], padded.shape[0]), interpolation=cv2.INTER_LINEAR)
        return crop(result)

    def _detector(self, annotator: Annotator) -> Any:
        key = (annotator.build, annotator.files)
        with self._load_lock:  # one load at a time; nothing else waits on this lock
            if key in self._detectors:
                self._detectors.move_to_end(key)
                return self._detectors[key]
            paths = {f: find_file(self.annotators_dir, f) for f in annotator.files}
            missing = [f for f, p in paths.items() if p is None]
            if missing:
                raise PreprocessorError(f"needs {' and '.join(missing)}: put it in {self.annotators_dir}")
            try:
                detector = annotator.build(paths)  # type: ignore[arg-type]
            except AnnotatorError as e:
                raise PreprocessorError(str(e)) from None
            except Exception as e:  # a file of another network: controlnet-aux fails with KeyError & co
                files = ", ".join(p.name for p in paths.values() if p is not None)
                detail = str(e).strip().splitlines()[0] if str(e).strip() else ""
                raise PreprocessorError(f"{files} could not be loaded ({type(e).__name__}: {detail}): use the "
                                        "files from lllyasviel/Annotators") from None
            self._detectors[key] = detector
            while len(self._detectors) > LOADED_DETECTORS:
                self._detectors.popitem(last=False)
            return detector

    def unload(self) -> None:
        """Drop the loaded annotator networks and the cached maps."""
        with self._load_lock:
            self._detectors.clear()
        self.cache.clear()


__all__ = ["Preprocessors", "PreprocessorError"]
