"""The one folder the browser UI may read images from: copies of the images it shows.

Gradio serves only the folders it was given at start, and that set never grows: output folders
can be changed by a setting, so instead of allowing them, each image shown is hard-linked (or
copied) here, under a name nobody can guess. Copies older than a day are pruned.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import threading
import time
from pathlib import Path

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
        target = self.folder / f"{secrets.token_hex(8)}-{Path(path).name}"
        try:
            os.link(path, target)  # same file system: no copy, and the PNG stays byte-identical
        except OSError:
            shutil.copyfile(path, target)
        with self._lock:
            self._served += 1
            prune = self._served % _PRUNE_EVERY == 0
        if prune:
            self.prune()
        return str(target)

    def prune(self, older_than: float = KEEP_SECONDS) -> None:
        cutoff = time.time() - older_than
        for entry in self.folder.iterdir():
            try:
                if entry.stat().st_mtime < cutoff:
                    entry.unlink()
            except OSError:
                pass
