"""Embedding, LoRA and hypernetwork files on disk, listed as A1111 lists them.

Listing reads directory entries only (one ``os.scandir`` per folder, no stat of each file, no
hashing, no reading), so folders with thousands of files list instantly. A file is known by
its stem, which is what prompts use (``<lora:stem:1>``, an embedding's stem as a word); A1111
uses the stem for files in sub-folders too. When two files share a stem (``x.pt`` and
``x.safetensors``) the first in sorted path order keeps the stem and the others are listed under
their file name relative to their folder (``x.safetensors``), never silently hidden.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from webui.flags import relative_to_roots
from webui.models.hashes import HashCache
from webui.models.refusals import RefusedFiles

KINDS: tuple[str, ...] = ("embedding", "lora", "hypernetwork")
NETWORK_SUFFIXES: frozenset[str] = frozenset({".safetensors", ".pt", ".ckpt", ".bin"})
# A1111 looks for "<stem>.<ext>" then "<stem>.preview.<ext>" for each of these extensions.
PREVIEW_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".webp")


@dataclass(frozen=True)
class NetworkFile:
    """One network file: ``kind`` is "embedding", "lora" or "hypernetwork"."""

    kind: str
    name: str  # the file stem, as written in prompts
    path: Path
    preview: Path | None = None


def default_folders(data_dir: Path) -> dict[str, list[Path]]:
    """A1111's default folders under the data dir (embeddings/ is A1111's own default)."""
    data_dir = Path(data_dir)
    models = data_dir / "models"
    return {
        "embedding": [models / "embeddings", data_dir / "embeddings"],
        "lora": [models / "Lora", models / "LyCORIS"],
        "hypernetwork": [models / "hypernetworks"],
    }


def _scan_folder(kind: str, folder: Path) -> list[NetworkFile]:
    found: list[NetworkFile] = []
    stack = [folder]
    while stack:
        current = stack.pop()
        try:
            entries = list(os.scandir(current))
        except OSError:
            continue
        names = {e.name for e in entries}
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                # DirEntry caches the type from readdir on Linux: no extra syscall per file.
                if entry.is_dir():
                    stack.append(Path(entry.path))
                    continue
            except OSError:
                continue
            stem, suffix = os.path.splitext(entry.name)
            if suffix.lower() not in NETWORK_SUFFIXES or not stem:
                continue
            found.append(NetworkFile(kind=kind, name=stem, path=Path(entry.path), preview=_preview(current, stem, names)))
    return found


def _preview(folder: Path, stem: str, names: set[str]) -> Path | None:
    for pattern in ("{}{}", "{}.preview{}"):
        for ext in PREVIEW_SUFFIXES:
            candidate = pattern.format(stem, ext)
            if candidate in names:
                return folder / candidate
    return None


class NetworkCatalog:
    """The network folders of each kind; ``refresh()`` rescans, ``list``/``find`` read the last scan."""

    def __init__(self, folders: Mapping[str, Sequence[Path]], hashes: HashCache, refused: RefusedFiles | None = None):
        unknown = set(folders) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown network kinds: {sorted(unknown)}")
        self.folders: dict[str, list[Path]] = {kind: [Path(p) for p in folders.get(kind, ())] for kind in KINDS}
        self.hashes = hashes
        self.refused = refused if refused is not None else RefusedFiles()
        self._files: dict[str, list[NetworkFile]] = {kind: [] for kind in KINDS}
        self._by_name: dict[str, dict[str, NetworkFile]] = {kind: {} for kind in KINDS}
        self.refresh()

    def refresh(self, kind: str | None = None) -> None:
        for k in (KINDS if kind is None else (self._check(kind),)):
            files: list[NetworkFile] = []
            seen_folders: set[str] = set()
            for folder in self.folders[k]:
                key = os.path.normcase(os.path.abspath(folder))
                if key in seen_folders:
                    continue
                seen_folders.add(key)
                files.extend(sorted(_scan_folder(k, folder), key=lambda f: str(f.path).lower()))
            by_name: dict[str, NetworkFile] = {}
            for f in files:
                if f.name in by_name:
                    # Same stem as an earlier file: listed too, under its file name (relative to its
                    # folder), so prompts can tell them apart.
                    f = NetworkFile(kind=f.kind, name=relative_to_roots(f.path, self.folders[k]), path=f.path,
                                    preview=f.preview)
                by_name.setdefault(f.name, f)
            self._by_name[k] = by_name
            self._files[k] = sorted(by_name.values(), key=lambda f: (f.name.lower(), f.name))

    def list(self, kind: str) -> list[NetworkFile]:
        return list(self._files[self._check(kind)])

    def find(self, kind: str, name: str) -> NetworkFile | None:
        """The file named ``name`` (its stem); exact match first, then case-insensitive."""
        by_name = self._by_name[self._check(kind)]
        found = by_name.get(name)
        if found is not None:
            return found
        lowered = name.lower()
        for candidate in self._files[kind]:
            if candidate.name.lower() == lowered:
                return candidate
        return None

    def names(self, kind: str) -> set[str]:
        return set(self._by_name[self._check(kind)])

    @staticmethod
    def _check(kind: str) -> str:
        if kind not in KINDS:
            raise ValueError(f"unknown network kind {kind!r} (expected one of {', '.join(KINDS)})")
        return kind
