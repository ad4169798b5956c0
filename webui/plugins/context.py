"""Where module-level extension code finds the running studio's plugin system.

A1111 extensions call module functions (``script_callbacks.on_app_started(fn)``,
``processing.process_images(p)``) with no handle on anything: these functions look up the
loaded :class:`webui.plugins.loader.Plugins` here, the extension being imported (to name it
in errors), and the job running on this thread (so ``process_images`` inside a job runs
inline instead of queuing behind itself).
"""

from __future__ import annotations

import contextlib
import contextvars
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:
    from webui.plugins.callbacks import CallbackRegistry
    from webui.plugins.loader import Plugins

_plugins: Plugins | None = None
_loading: contextvars.ContextVar[tuple[str, Path] | None] = contextvars.ContextVar("loading_extension", default=None)
_job: contextvars.ContextVar[Any] = contextvars.ContextVar("plugin_job", default=None)


class NotRunning(RuntimeError):
    """An extension API was used before the studio loaded its extensions."""


def activate(plugins: Plugins) -> None:
    global _plugins
    _plugins = plugins


def plugins() -> Plugins:
    if _plugins is None:
        raise NotRunning("the extension system is not running: this works only inside SD Studio's server")
    return _plugins


def current_studio() -> Any:
    """The running studio, or None (outside SD Studio's server: a unit test, a docs build)."""
    return _plugins.studio if _plugins is not None else None


def current_options() -> Any:
    """The running studio's live options, or None."""
    return _plugins.options if _plugins is not None else None


def active_registry() -> CallbackRegistry:
    return plugins().callbacks


def loading_extension() -> str | None:
    """The name of the extension whose scripts are being imported (None outside an import)."""
    found = _loading.get()
    return found[0] if found else None


def loading_path() -> Path | None:
    """Its folder (A1111's ``scripts.basedir()``)."""
    found = _loading.get()
    return found[1] if found else None


@contextlib.contextmanager
def loading(extension: str, path: Path) -> Iterator[None]:
    token = _loading.set((extension, path))
    try:
        yield
    finally:
        _loading.reset(token)


def current_job() -> Any:
    """The ScriptedJob running on this thread (webui/plugins/jobs.py), or None."""
    return _job.get()


@contextlib.contextmanager
def running(job: Any) -> Iterator[None]:
    token = _job.set(job)
    try:
        yield
    finally:
        _job.reset(token)
