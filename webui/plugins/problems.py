"""What went wrong in extensions: import errors, failing ``ui()``, callbacks and hooks.

Every failure is logged with the extension's name and kept here for the Extensions tab (and
``GET /api/v1/extensions``). Hooks that fail in :data:`FAILURES_BEFORE_OFF` jobs in a row are
switched off until the next restart; a job in which they work again resets the count.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from dataclasses import dataclass

log = logging.getLogger("webui.extensions")

FAILURES_BEFORE_OFF = 3
MAX_KEPT = 50  # problems kept per extension (the oldest are dropped)


@dataclass
class Problem:
    extension: str
    where: str  # "import scripts/x.py", "ui() of My script", "process of My script", "on_app_started ..."
    message: str  # "ValueError: ..."
    traceback: str
    when: float
    count: int = 1  # the same failure, repeated

    def line(self) -> str:
        repeated = f" (×{self.count})" if self.count > 1 else ""
        return f"{self.extension}: {self.where}: {self.message}{repeated}"


class Problems:
    """Failures per extension, and the hooks switched off after failing job after job. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, list[Problem]] = {}
        self._streaks: dict[str, int] = {}  # hook key -> jobs in a row it failed in
        self.switched_off: dict[str, str] = {}  # hook key -> why

    def record(self, extension: str | None, where: str, error: BaseException) -> Problem:
        """Log and keep one failure; returns it (``line()`` is the note for a job's info)."""
        name = extension or "(unknown extension)"
        message = f"{type(error).__name__}: {error}".strip().rstrip(":")
        trace = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        log.error("extension %s: %s failed: %s", name, where, message, exc_info=(type(error), error,
                                                                                 error.__traceback__))
        with self._lock:
            kept = self._items.setdefault(name, [])
            for problem in kept:
                if problem.where == where and problem.message == message:
                    problem.count += 1
                    problem.when = time.time()
                    problem.traceback = trace
                    return problem
            problem = Problem(name, where, message, trace, time.time())
            kept.append(problem)
            del kept[:-MAX_KEPT]
            return problem

    def of(self, extension: str) -> list[Problem]:
        with self._lock:
            return list(self._items.get(extension, ()))

    def all(self) -> list[Problem]:
        with self._lock:
            return [p for kept in self._items.values() for p in kept]

    # --- hooks that keep failing -------------------------------------------------------------

    def is_off(self, key: str) -> bool:
        with self._lock:
            return key in self.switched_off

    def job_outcome(self, key: str, failed: bool) -> None:
        """One job's result for hook ``key``: three failing jobs in a row switch it off."""
        with self._lock:
            if not failed:
                self._streaks.pop(key, None)
                return
            streak = self._streaks.get(key, 0) + 1
            self._streaks[key] = streak
            if streak >= FAILURES_BEFORE_OFF and key not in self.switched_off:
                self.switched_off[key] = f"failed in {streak} jobs in a row; off until the next restart"
                log.error("%s switched off: it failed in %d jobs in a row", key, streak)
