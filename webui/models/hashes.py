"""Lazy SHA-256 of model files, cached by (path, size, mtime) in the data dir.

Listing a folder never hashes: titles show the short hash once it is known. A background thread
hashes what was asked for, so a folder of hundreds of checkpoints lists instantly.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import threading
from pathlib import Path

log = logging.getLogger(__name__)

_CHUNK = 1 << 20


def sha256_of_file(path: Path, start: int = 0) -> str:
    """SHA-256 of the file's bytes from ``start`` on (kohya's LoRA hash skips the header)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        f.seek(start)
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


_legacy_lock = threading.Lock()
_legacy_hashes: dict[tuple[str, int, float], str] = {}


def legacy_hash(path: Path) -> str:
    """A1111's old model hash: SHA-256 of the 64 KiB at offset 1 MiB, first 8 hex digits (what
    sd-webui-controlnet lists models by and ``sd_merge_models`` records; remembered per file).

    It reads 64 KiB, so listing needs no background hashing; a file under 1 MiB hashes the
    empty string, as in A1111.
    """
    path = Path(path)
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime)
    with _legacy_lock:
        known = _legacy_hashes.get(key)
    if known:
        return known
    with path.open("rb") as f:
        f.seek(0x100000)
        value = hashlib.sha256(f.read(0x10000)).hexdigest()[:8]
    with _legacy_lock:
        _legacy_hashes[key] = value
    return value


class HashCache:
    """Thread-safe cache of file hashes, persisted as JSON; stale entries are recomputed."""

    def __init__(self, cache_file: Path):
        self._file = Path(cache_file)
        self._lock = threading.Lock()
        self._entries: dict[str, dict] = self._read()
        self._pending: queue.Queue[Path] = queue.Queue()
        self._worker: threading.Thread | None = None

    def _read(self) -> dict[str, dict]:
        try:
            data = json.loads(self._file.read_text(encoding="utf-8"))
            return dict(data.get("sha256", {}))
        except (OSError, ValueError, AttributeError):
            return {}

    def _save(self) -> None:
        self._file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._file.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps({"sha256": self._entries}, indent=1), encoding="utf-8")
        os.replace(tmp, self._file)

    @staticmethod
    def _stamp(path: Path) -> tuple[int, float]:
        stat = path.stat()
        return stat.st_size, stat.st_mtime

    def cached(self, path: Path) -> str | None:
        """The hash if known and still valid for the file as it is now; never computes."""
        path = Path(path).resolve()
        with self._lock:
            entry = self._entries.get(str(path))
        if entry is None:
            return None
        try:
            size, mtime = self._stamp(path)
        except OSError:
            return None
        return entry["sha256"] if (entry.get("size"), entry.get("mtime")) == (size, mtime) else None

    def sha256(self, path: Path) -> str:
        """The hash, computing and caching it if needed (blocking)."""
        path = Path(path).resolve()
        if known := self.cached(path):
            return known
        size, mtime = self._stamp(path)
        value = sha256_of_file(path)
        with self._lock:
            self._entries[str(path)] = {"size": size, "mtime": mtime, "sha256": value}
            self._save()
        return value

    def schedule(self, paths: list[Path]) -> None:
        """Hash these in the background (one thread, lowest urgency)."""
        for path in paths:
            if self.cached(path) is None:
                self._pending.put(Path(path))
        with self._lock:
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._drain, name="model-hasher", daemon=True)
                self._worker.start()

    def _drain(self) -> None:
        while True:
            try:
                path = self._pending.get(timeout=1)
            except queue.Empty:
                return
            try:
                self.sha256(path)
            except OSError as e:
                log.warning("could not hash %s: %s", path, e)
