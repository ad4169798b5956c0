"""Settings declared by extensions: they appear in the Settings tab under the extension's section,
persist in config.json, travel through /sdapi/v1/options and are read from a job's snapshot."""

from __future__ import annotations

from typing import Any, Sequence

from webui.plugins import context
from webui.settings import OptionInfo

_KINDS = (bool, int, float, str, list)


def add_option(key: str, default: Any, label: str, section: str | tuple[str, str] | None = None, *,
               choices: Sequence[Any] | None = None, minimum: float | None = None,
               maximum: float | None = None) -> None:
    """Declare option ``key`` (call it from an ``on_ui_settings`` callback or at import).

    ``section`` defaults to the extension's name (A1111's ``(id, name)`` pair: its name). The value's type is the default's; ``choices``
    make it a dropdown (a list default: a multi-select), ``minimum`` / ``maximum`` a slider.
    """
    kind = type(default) if isinstance(default, _KINDS) else str
    if isinstance(default, tuple):
        kind = list
    if isinstance(section, (tuple, list)):
        section = str(section[-1]) if section else None
    name = section or context.loading_extension() or "Extensions"
    info = OptionInfo(default, label, name, kind, tuple(choices) if choices is not None else None, minimum, maximum)
    context.plugins().options.register(key, info)


def get_option(key: str) -> Any:
    """An option's current value."""
    return context.plugins().options.get(key)
