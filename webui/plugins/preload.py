"""Run extensions' ``preload(parser)`` so their command-line flags exist before the real parse.

Each preload.py is imported on its own (a unique module name, not left in sys.modules) and may
fail in any way: the error comes back as one line per extension, never as an exception, so one
broken extension cannot stop the server from starting.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import re
from typing import Any

from webui.plugins.extensions import Extension

log = logging.getLogger(__name__)


class _TolerantParser:
    """The real parser, except that re-adding a flag we (or another extension) already have is skipped.

    A1111 extensions that ship as built-ins here (Lora, ControlNet) declare flags we already take,
    e.g. ``--lora-dir``; argparse would refuse the duplicate and the rest of that preload.
    """

    def __init__(self, target: Any, owner: str) -> None:
        self._target, self._owner = target, owner

    def add_argument(self, *names: str, **kwargs: Any) -> Any:
        taken = getattr(self._target, "_option_string_actions", {})
        if names and all(n.startswith("-") for n in names) and any(n in taken for n in names):
            log.info("extension %s: %s is already defined; its definition is skipped", self._owner, "/".join(names))
            return taken[next(n for n in names if n in taken)]
        return self._target.add_argument(*names, **kwargs)

    def add_argument_group(self, *args: Any, **kwargs: Any) -> _TolerantParser:
        return _TolerantParser(self._target.add_argument_group(*args, **kwargs), self._owner)

    def add_mutually_exclusive_group(self, *args: Any, **kwargs: Any) -> _TolerantParser:
        return _TolerantParser(self._target.add_mutually_exclusive_group(*args, **kwargs), self._owner)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)


def _one_line(error: BaseException) -> str:
    message = " ".join(str(error).split())
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def run_preloads(extensions: list[Extension], parser: argparse.ArgumentParser) -> dict[str, str]:
    """Call ``preload(parser)`` of every enabled extension that has a preload.py; {name: error}."""
    errors: dict[str, str] = {}
    for ext in extensions:
        path = ext.preload_file() if ext.enabled else None
        if path is None:
            continue
        module_name = "sd_ext_preload_" + re.sub(r"\W", "_", ext.name)
        try:
            spec = importlib.util.spec_from_file_location(module_name, path)
            if spec is None or spec.loader is None:
                raise ImportError(f"cannot import {path}")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            preload = getattr(module, "preload", None)
            if callable(preload):
                preload(_TolerantParser(parser, ext.name))
        except (Exception, SystemExit) as e:  # noqa: BLE001 -- SystemExit: argparse errors, sys.exit() in a preload
            errors[ext.name] = _one_line(e)
            log.warning("preload.py of extension %s failed: %s", ext.name, errors[ext.name])
    return errors
