"""A small LRU of detected maps, keyed by module, image content, resolution and thresholds.

The UI's preview and the job that follows it run the same preprocessor on the same image: the
second call is a lookup. Entries are PIL images, handed out as copies so no caller can change one.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Hashable

from PIL import Image

DEFAULT_SIZE = 16  # maps; at 512×512 RGB that is ~12 MB


def image_digest(image: Image.Image) -> str:
    """A content hash of the pixels, mode and size (two equal images share their maps)."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{image.mode}:{image.width}x{image.height}".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


class MapCache:
    def __init__(self, size: int = DEFAULT_SIZE):
        self.size = max(0, int(size))
        self._entries: OrderedDict[Hashable, Image.Image] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key: Hashable) -> Image.Image | None:
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return found.copy()

    def put(self, key: Hashable, image: Image.Image) -> None:
        if self.size == 0:
            return
        with self._lock:
            self._entries[key] = image.copy()
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def resize(self, size: int) -> None:
        with self._lock:
            self.size = max(0, int(size))
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
