"""Finding upscaler model files in A1111's folders (names are file stems, as A1111 lists them)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# A1111's upscaler folders under the models dir; ESRGAN's may be moved with --esrgan-models-path.
UPSCALER_FOLDERS: tuple[str, ...] = ("ESRGAN", "RealESRGAN", "SwinIR", "DAT", "ScuNET", "HAT")
MODEL_SUFFIXES: frozenset[str] = frozenset({".pth", ".pt", ".safetensors", ".ckpt", ".bin"})
_MAX_DEPTH = 4  # subfolders are scanned, but a symlink loop or a huge tree is not walked for ever


@dataclass(frozen=True)
class UpscalerFile:
    name: str  # the file stem, as A1111 shows it
    path: Path
    folder: str  # which A1111 folder: "ESRGAN", "RealESRGAN", ...


def scan(folders: dict[str, Path]) -> list[UpscalerFile]:
    """Every model file in ``folders`` (kind → folder), sorted by name; the first of a name wins."""
    found: dict[str, UpscalerFile] = {}
    for kind, folder in folders.items():
        for path in _files(folder):
            key = path.stem.casefold()
            if key not in found:
                found[key] = UpscalerFile(path.stem, path, kind)
    return sorted(found.values(), key=lambda f: f.name.casefold())


def _files(folder: Path, depth: int = 0) -> list[Path]:
    try:
        entries = sorted(folder.iterdir())
    except OSError:  # a folder that is not there yet, or unreadable: nothing in it
        return []
    files = []
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            if depth < _MAX_DEPTH:
                files += _files(entry, depth + 1)
        elif entry.suffix.lower() in MODEL_SUFFIXES and entry.is_file():
            files.append(entry)
    return files
