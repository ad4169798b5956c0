"""Restarting the server in place ("Apply and restart UI"), so extensions are imported afresh.

``python -m webui`` registers how to stop its uvicorn server (:func:`install`). A restart request
asks that server to stop; uvicorn then shuts down as on Ctrl+C: the lifespan stops the job queue
(the running job is interrupted and left "running" in SQLite, so it runs again after the
restart) and ``__main__`` re-executes the process with the same arguments (:func:`exec_again`).
Python modules cannot be unloaded reliably, hence a new process rather than a re-import.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import Callable, NoReturn

log = logging.getLogger(__name__)

# The stop is delayed a little so the reply that asked for it (an HTTP response, a Gradio event's
# result on its event stream) leaves before the server closes its connections.
STOP_DELAY_S = 0.5

_lock = threading.Lock()
_stopper: Callable[[], None] | None = None
_requested = threading.Event()


def install(stop: Callable[[], None]) -> None:
    """Register how to stop the running server (called once by ``python -m webui``)."""
    global _stopper
    with _lock:
        _stopper = stop
        _requested.clear()


def available() -> bool:
    """Whether this process can restart itself (False under tests' in-process apps, for instance)."""
    with _lock:
        return _stopper is not None


def request_restart() -> bool:
    """Ask the server to stop and start again; False when this process cannot restart itself."""
    with _lock:
        stop = _stopper
        if stop is None:
            return False
        first = not _requested.is_set()
        _requested.set()
    if first:
        log.warning("restart requested: stopping the job queue and the server, then starting again")
        timer = threading.Timer(STOP_DELAY_S, stop)
        timer.daemon = True
        timer.start()
    return True


def requested() -> bool:
    return _requested.is_set()


def exec_again(argv: list[str]) -> NoReturn:
    """Replace this process with a fresh ``python -m webui`` with the same arguments (same pid)."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    # Our descriptors (SQLite, logs, the closed listening socket) are non-inheritable (PEP 446).
    os.execv(sys.executable, [sys.executable, "-m", "webui", *argv])
