"""The ControlNet model folders as the extension lists them, and a small RAM cache of loaded models.

Titles are ``stem [8-hex]`` with A1111's old model hash, as sd-webui-controlnet lists them, so
API clients and infotexts written against the extension find the same names here. Loading
(webui.control.load) never touches the hub and never runs code from a pickle.
"""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from webui.models.hashes import legacy_hash

if TYPE_CHECKING:
    from diffusers import ControlNetModel

__all__ = ["ControlNetError", "ControlNetFile", "ControlNets", "legacy_hash", "on_device", "MODEL_SUFFIXES"]


class ControlNetError(ValueError):
    """A ControlNet that cannot be used, as a sentence a user can act on (the API answers 422)."""


MODEL_SUFFIXES = (".safetensors", ".pth", ".pt", ".ckpt", ".bin")
# Annotator weights live under models/ControlNet/annotators: they are not ControlNets.
ANNOTATORS_FOLDER = "annotators"

@dataclass(frozen=True)
class ControlNetFile:
    """One model file; ``family`` ("sd1", "sd2", "sdxl", or None when unknown) is read lazily."""

    path: Path
    name: str  # the stem, as the extension names models
    title: str  # "stem [8-hex]"

    @property
    def family(self) -> str | None:
        from webui.control.load import file_family  # lazy: diffusers is slow to import

        return file_family(self.path)


def _scan(folder: Path, exclude: set[Path]) -> list[Path]:
    if not folder.is_dir():
        return []
    found = []
    for path in folder.rglob("*"):
        if path.suffix.lower() not in MODEL_SUFFIXES or path.name.startswith(".") or not path.is_file():
            continue
        resolved = path.resolve()
        if any(resolved.is_relative_to(x) for x in exclude):
            continue
        found.append(resolved)
    return found


class ControlNets:
    """ControlNet files on disk and the models loaded from them (``studio.controlnets``).

    ``cache_size`` is a number or a callable read at each load (the ``control_net_model_cache_size``
    option); the cache keeps models on the CPU, and ``on_device`` moves one to the GPU while used.
    """

    def __init__(self, folders: Iterable[Path], *, cache_size: int | Callable[[], int] = 2,
                 exclude: Iterable[Path] = ()):
        unique: list[Path] = []
        for folder in folders:
            folder = Path(folder).resolve()
            if folder not in unique:
                unique.append(folder)
        self.folders = unique
        self._exclude = {Path(x).resolve() for x in exclude} | {f / ANNOTATORS_FOLDER for f in unique}
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._files: list[ControlNetFile] = []
        self._cache: OrderedDict[tuple, ControlNetModel] = OrderedDict()
        self.refresh()

    # ------------------------------------------------------------------ listing

    def refresh(self) -> None:
        """Rescan the folders (the extension's order: by file name; the first folder wins a clash)."""
        files: dict[str, ControlNetFile] = {}
        for folder in self.folders:
            for path in sorted(_scan(folder, self._exclude), key=lambda p: p.name):
                if path.stem == "None":  # would clash with the "None" choice
                    continue
                try:
                    title = f"{path.stem} [{legacy_hash(path)}]"
                except OSError:
                    continue  # vanished or unreadable between scan and hash
                files.setdefault(title, ControlNetFile(path=path, name=path.stem, title=title))
        with self._lock:
            self._files = sorted(files.values(), key=lambda f: f.path.name)

    def files(self) -> list[ControlNetFile]:
        with self._lock:
            return list(self._files)

    def titles(self, include_none: bool = True) -> list[str]:
        """Model titles; "None" first for dropdowns. /controlnet/model_list omits it (include_none=False)."""
        names = [f.title for f in self.files()]
        return ["None", *names] if include_none else names

    def find(self, query: str | None) -> ControlNetFile | None:
        """The extension's rule: exact title, then stem (any case), then the shortest stem containing it.

        A title whose hash no longer matches (a file replaced since the infotext was written) falls
        back to its stem.
        """
        if not query or not query.strip() or query.strip().lower() == "none":
            return None
        query = query.strip()
        files = self.files()
        for f in files:
            if f.title == query:
                return f
        for candidate in (query.lower(), query.split(" [", 1)[0].lower()):
            exact = [f for f in files if f.name.lower() == candidate or f.title.lower() == candidate]
            if exact:
                return exact[0]
            partial = sorted((f for f in files if candidate in f.name.lower()), key=lambda f: len(f.name))
            if partial:
                return partial[0]
        return None

    # ------------------------------------------------------------------ loading

    def cache_size(self) -> int:
        size = self._cache_size() if callable(self._cache_size) else self._cache_size
        return max(0, int(size))

    def cached_titles(self) -> list[str]:
        with self._lock:
            return [key[1] for key in self._cache]

    def load(self, file: ControlNetFile, unet_config: Mapping[str, Any], device: torch.device | str,
             dtype: torch.dtype) -> ControlNetModel:
        """The ControlNet of ``file``, checked against the loaded UNet, in RAM (CPU) in its run dtype.

        fp16 is kept only for CUDA (as the UNet); on CPU the model is fp32. Use ``on_device`` while
        running it. Raises ControlNetError for a wrong family, an unsupported kind or a bad file;
        a failed load leaves the cache as it was.
        """
        from webui.control.load import check_compatible, read_controlnet

        dtype = run_dtype(device, dtype)
        stat = _stat(file)
        key = (str(file.path), file.title, stat, dtype)
        with self._lock:
            model = self._cache.get(key)
            if model is not None:
                self._cache.move_to_end(key)
        if model is None:
            self.check(file, unet_config)  # from the shapes: a wrong file is refused before its weights are read
            loaded = read_controlnet(file.path, title=file.title)
            check_compatible(loaded.config, unet_config, file.title)
            model = loaded.build(dtype)
            self._remember(key, model)
        else:
            check_compatible(model.config, unet_config, file.title)
        return model

    def check(self, file: ControlNetFile, unet_config: Mapping[str, Any] | None = None) -> None:
        """Raise the ControlNetError ``load`` would raise for this file's kind or family, from its
        shapes alone (no weights read for safetensors): for validating a request before it queues."""
        from webui.control.load import check_compatible, inspect_file

        config = inspect_file(file.path, file.title)
        if unet_config is not None:
            check_compatible(config, unet_config, file.title)

    def _remember(self, key: tuple, model: ControlNetModel) -> None:
        size = self.cache_size()
        with self._lock:
            self._cache[key] = model
            self._cache.move_to_end(key)
            while len(self._cache) > size:
                self._cache.popitem(last=False)

    def set_cache_size(self, size: int) -> None:
        """Shrink the cache now (the option changed); growing needs nothing."""
        # Option listeners run before the new value is stored: trim to the value given.
        if not callable(self._cache_size):
            self._cache_size = int(size)
        limit = max(0, int(size))
        with self._lock:
            while len(self._cache) > limit:
                self._cache.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()

    @contextlib.contextmanager
    def use(self, file: ControlNetFile, unet_config: Mapping[str, Any], device: torch.device | str,
            dtype: torch.dtype) -> Iterator[ControlNetModel]:
        """``load`` + ``on_device``: the model on ``device`` for the block, back on the CPU after."""
        model = self.load(file, unet_config, device, dtype)
        with on_device(model, device):
            yield model


def _stat(file: ControlNetFile) -> tuple[int, float]:
    try:
        stat = file.path.stat()
    except OSError as e:
        raise ControlNetError(f"{file.title}: the file cannot be read ({e.strerror or e}); refresh the model list") from None
    return stat.st_size, stat.st_mtime


def run_dtype(device: torch.device | str, dtype: torch.dtype) -> torch.dtype:
    """fp16/bf16 only where the UNet runs them (CUDA/MPS); CPU runs fp32."""
    return dtype if torch.device(device).type != "cpu" else torch.float32


_placement_lock = threading.Lock()
_users: dict[int, int] = {}


@contextlib.contextmanager
def on_device(model: torch.nn.Module, device: torch.device | str) -> Iterator[torch.nn.Module]:
    """Move ``model`` to ``device`` for the block and back to the CPU after the last user leaves.

    Counted, so two units of one job sharing a model do not move it away from each other.
    """
    device = torch.device(device)
    with _placement_lock:
        count = _users.get(id(model), 0)
        _users[id(model)] = count + 1
    try:
        if device.type != "cpu":
            model.to(device)
        yield model
    finally:
        with _placement_lock:
            left = _users[id(model)] - 1
            if left:
                _users[id(model)] = left
            else:
                del _users[id(model)]
        if not left and device.type != "cpu":
            model.to("cpu")
