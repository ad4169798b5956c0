"""Load the enabled extensions: import their scripts, collect Script classes and callbacks.

Each ``scripts/*.py`` is imported as its own module (``sd_extensions.<extension>.<file>``) with
the extension's folder on ``sys.path`` and webui/compat (A1111's ``modules`` package) too. An
import that fails is recorded against its extension and the others load as usual. A Script
class is instantiated once per tab; txt2img and img2img each get a :class:`ScriptSet`.
"""

from __future__ import annotations

import importlib.util
import inspect
import logging
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from webui.plugins import context
from webui.plugins.callbacks import CallbackRegistry
from webui.plugins.extensions import Extension
from webui.plugins.problems import Problems
from webui.plugins.script import Script
from webui.plugins.script_set import ScriptSet

log = logging.getLogger(__name__)

COMPAT_DIR = Path(__file__).resolve().parents[1] / "compat"
MODULE_PREFIX = "sd_extensions"


@dataclass
class LoadedScript:
    extension: Extension
    file: Path
    cls: type[Script]


@dataclass
class Plugins:
    """The extensions of this run: what loaded, their scripts per tab, callbacks and problems."""

    extensions: list[Extension]
    problems: Problems = field(default_factory=Problems)
    callbacks: CallbackRegistry = field(init=False)
    script_classes: list[LoadedScript] = field(default_factory=list)
    scripts: dict[str, ScriptSet] = field(default_factory=dict)
    load_seconds: dict[str, float] = field(default_factory=dict)
    # Set by the studio: how process_images outside a job queues one (request, owner) -> Result.
    submit_and_wait: Callable[..., Any] | None = None
    options: Any = None  # webui.settings.Options, for add_option
    cmd: Any = None  # the CommandLine (A1111's shared.cmd_opts)
    studio: Any = None  # the Studio (for the compatibility layer's shared.state and model)

    def __post_init__(self) -> None:
        self.callbacks = CallbackRegistry(self.problems)

    @property
    def enabled(self) -> list[Extension]:
        return [e for e in self.extensions if e.enabled]

    def extension(self, name: str) -> Extension | None:
        return next((e for e in self.extensions if e.name == name), None)

    def assets(self, kind: str) -> list[tuple[Extension, Path]]:
        """("javascript" | "stylesheet" | "localization") files of the enabled extensions, in load order."""
        found = []
        for ext in self.enabled:
            if kind == "javascript":
                found += [(ext, f) for f in ext.javascript_files()]
            elif kind == "stylesheet" and (css := ext.stylesheet()) is not None:
                found.append((ext, css))
            elif kind == "localization":
                found += [(ext, f) for f in ext.localization_files()]
        return found

    def shutdown(self) -> None:
        self.callbacks.call("script_unloaded")


def load_plugins(extensions: list[Extension], *, options: Any = None, cmd: Any = None) -> Plugins:
    """Import every enabled extension's scripts and build the tabs' script sets."""
    plugins = Plugins(list(extensions), options=options, cmd=cmd)
    context.activate(plugins)
    if str(COMPAT_DIR) not in sys.path:
        # First: `import launch` must find A1111's launch shim, not our launch.py at the repo root.
        sys.path.insert(0, str(COMPAT_DIR))
    for ext in plugins.enabled:
        started = time.perf_counter()
        for file in ext.script_files():
            plugins.script_classes += _import_scripts(ext, file, plugins.problems)
        plugins.load_seconds[ext.name] = time.perf_counter() - started
    for is_img2img in (False, True):
        instances = []
        for loaded in plugins.script_classes:
            try:
                script = loaded.cls()
            except Exception as e:
                plugins.problems.record(loaded.extension.name, f"creating {loaded.cls.__name__}", e)
                continue
            script.filename, script.extension = str(loaded.file), loaded.extension.name
            instances.append(script)
        plugins.scripts["img2img" if is_img2img else "txt2img"] = ScriptSet(instances, is_img2img, plugins.problems)
    plugins.callbacks.call("ui_settings")  # settings exist before any job or page reads them
    return plugins


def _import_scripts(ext: Extension, file: Path, problems: Problems) -> list[LoadedScript]:
    name = f"{MODULE_PREFIX}.{_identifier(ext.name)}.{_identifier(file.stem)}"
    root = str(ext.path)
    if root not in sys.path:
        sys.path.insert(0, root)  # A1111: an extension imports its own packages from its folder
    try:
        spec = importlib.util.spec_from_file_location(name, file)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot import {file.name}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses and pickling look modules up by name
        with context.loading(ext.name, ext.path):
            spec.loader.exec_module(module)
    except BaseException as e:  # SyntaxError, SystemExit, a missing package: this extension only
        if isinstance(e, KeyboardInterrupt):
            raise
        sys.modules.pop(name, None)
        problems.record(ext.name, f"import scripts/{file.name}", e)
        return []
    return [LoadedScript(ext, file, cls) for _, cls in inspect.getmembers(module, inspect.isclass)
            if issubclass(cls, Script) and cls is not Script and cls.__module__ == name]


def _identifier(text: str) -> str:
    cleaned = re.sub(r"\W", "_", text)
    return cleaned if cleaned and not cleaned[0].isdigit() else f"_{cleaned}"
