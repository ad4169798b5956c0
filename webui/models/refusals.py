"""Files we refused to load (hostile pickles, truncated or garbage files), and why.

Listings mark such files (an icon and the reason) instead of offering them as ordinary choices,
and start-up skips them. A verdict belongs to the file as it is: one that changed on disk (size
or modification time) is tried again. Verdicts persist in ``<data dir>/refused.json``.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

log = logging.getLogger(__name__)


class RefusedFiles:
    """Thread-safe registry path → reason, valid while the file keeps its size and mtime."""

    def __init__(self, store: Path | None = None):
        self._store = Path(store) if store is not None else None
        self._lock = threading.Lock()
        self._entries: dict[str, dict] = self._read()

    def _read(self) -> dict[str, dict]:
        if self._store is None:
            return {}
        try:
            data = json.loads(self._store.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return {str(k): v for k, v in data.items() if isinstance(v, dict) and isinstance(v.get("reason"), str)}

    def _save(self) -> None:
        if self._store is None:
            return
        with self._lock:
            text = json.dumps(self._entries, indent=1)
        try:
            tmp = self._store.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, self._store)
        except OSError as e:  # a read-only data dir: remember for this session only
            log.warning("could not save %s: %s", self._store, e)

    @staticmethod
    def _stamp(path: Path) -> tuple[int, int] | None:
        try:
            stat = Path(path).stat()
        except OSError:
            return None
        return stat.st_size, stat.st_mtime_ns

    def refuse(self, path: Path, reason: str) -> None:
        """Remember that ``path`` was refused for ``reason`` (one line, shown to people)."""
        stamp = self._stamp(path)
        if stamp is None:
            return
        key = str(Path(path).resolve())
        with self._lock:
            self._entries[key] = {"reason": reason.splitlines()[0][:300], "size": stamp[0], "mtime_ns": stamp[1]}
        self._save()

    def reason(self, path: Path) -> str | None:
        """Why ``path`` was refused, or None (never refused, or changed since)."""
        key = str(Path(path).resolve())
        with self._lock:
            entry = self._entries.get(key)
        if entry is None:
            return None
        if self._stamp(path) != (entry.get("size"), entry.get("mtime_ns")):
            return None
        return entry["reason"]

    def forget(self, path: Path) -> None:
        with self._lock:
            removed = self._entries.pop(str(Path(path).resolve()), None)
        if removed is not None:
            self._save()
