"""The one folder the browser UI may read images from: copies of the images it shows.

Gradio serves only the folders it was given at start, and that set never grows: output folders
can be changed by a setting, so instead of allowing them, each image shown is hard-linked (or
copied) here, under its own name in a folder nobody can guess (so a download keeps the file's
name). Copies older than a day are pruned.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import threading
import time
from pathlib import Path

from PIL import Image

KEEP_SECONDS = 24 * 3600
_PRUNE_EVERY = 200  # files served between prunes


class ServedFiles:
    def __init__(self, folder: Path | None = None):
        self.folder = Path(folder or tempfile.mkdtemp(prefix="sd-studio-ui-"))
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._served = 0

    def serve(self, path: Path) -> str:
        """A path Gradio may send to the browser, holding the same bytes as ``path``."""
        target = self.reserve(Path(path).name)
        try:
            os.link(path, target)  # same file system: no copy, and the PNG stays byte-identical
        except OSError:
            shutil.copyfile(path, target)
        return str(target)

    def serve_image(self, image: Image.Image, name: str = "image.png") -> str:
        """An image that has no file (saving off), written here as a PNG (without infotext)."""
        target = self.reserve(name)
        image.save(target, format="PNG")
        return str(target)

    def reserve(self, name: str) -> Path:
        """A new, unguessable path here for a file to be made and served (a zip of results, say)."""
        with self._lock:
            self._served += 1
            prune = self._served % _PRUNE_EVERY == 0
        if prune:
            self.prune()
        folder = self.folder / secrets.token_hex(8)
        folder.mkdir()
        return folder / Path(name).name

    def holds(self, path: str | Path) -> bool:
        """Whether ``path`` is a file served from here (what a page may ask to download again)."""
        try:
            resolved = Path(path).resolve()
        except (OSError, ValueError):
            return False
        return resolved.parent.parent == self.folder.resolve() and resolved.is_file()

    def prune(self, older_than: float = KEEP_SECONDS) -> None:
        cutoff = time.time() - older_than
        for entry in self.folder.iterdir():
            try:
                if entry.stat().st_mtime < cutoff:
                    if entry.is_dir():
                        shutil.rmtree(entry, ignore_errors=True)
                    else:
                        entry.unlink()
            except OSError:
                pass
