"""A1111's ``modules.scripts``: the Script base class and where a script's extension lives."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from modules import missing
from webui.plugins import context
from webui.plugins.script import (
    AlwaysVisible,
    PostprocessBatchListArgs,
    PostprocessImageArgs,
    Script,
)

__all__ = ["AlwaysVisible", "PostprocessBatchListArgs", "PostprocessImageArgs", "Script", "basedir"]

_REPO_ROOT = Path(__file__).resolve().parents[3]  # A1111: the webui folder, for scripts outside extensions
_HERE = str(Path(__file__).resolve().parent)


def extension_root(file: str | Path) -> Path | None:
    """The extension folder holding ``file``: a loaded extension's, else the parent of its ``scripts/``."""
    path = Path(file).resolve()
    try:
        for ext in context.plugins().extensions:
            root = Path(ext.path).resolve()
            if root in path.parents:
                return root
    except context.NotRunning:
        pass
    return next((parent.parent for parent in path.parents if parent.name == "scripts"), None)


def caller_extension_root(depth: int = 1) -> Path | None:
    """The extension root of the first calling frame outside this package."""
    frame = sys._getframe(depth)
    while frame is not None:
        file = frame.f_code.co_filename
        if not file.startswith(_HERE) and not file.startswith("<"):
            return extension_root(file)
        frame = frame.f_back
    return None


def basedir() -> str:
    """The folder of the extension whose script calls this (A1111's ``scripts.basedir()``).

    While an extension is imported that is its folder; later (in ``ui()`` or a hook) it is found
    from the calling file: the parent of its ``scripts/`` folder.
    """
    loading = context.loading_path()
    if loading is not None:
        return str(loading)
    root = caller_extension_root()
    return str(root if root is not None else _REPO_ROOT)


def __getattr__(name: str) -> Any:
    # A1111's ScriptRunner per tab is our ScriptSet: `.scripts`, `.alwayson`, `.selectable` (partial).
    if name in ("scripts_txt2img", "scripts_img2img"):
        return context.plugins().scripts[name.removeprefix("scripts_")]
    raise missing(f"modules.scripts.{name}")
