"""The one-way flow, checked on the source: front ends never import the engine, nor it them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

WEBUI = Path(__file__).resolve().parents[2] / "webui"


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def offenders(package: str, forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    bad = {}
    for path in sorted((WEBUI / package).rglob("*.py")):
        hits = sorted(m for m in imported_modules(path) if m.startswith(forbidden))
        if hits:
            bad[str(path.relative_to(WEBUI))] = hits
    return bad


@pytest.mark.parametrize("package", ["api", "ui"])
def test_front_ends_never_import_the_engine(package):
    assert offenders(package, ("webui.engine",)) == {}


def test_the_engine_knows_no_ui_http_or_plugins():
    assert offenders("engine", ("gradio", "fastapi", "starlette", "webui.ui", "webui.api", "webui.plugins",
                                "webui.app", "webui.server")) == {}


@pytest.mark.parametrize("package", ["engine", "api", "ui", "prompts", "networks", "plugins", "compat", "control",
                                     "scripts", "upscaling"])
def test_no_module_is_a_monolith(package):
    sizes = {str(p.relative_to(WEBUI)): len(p.read_text(encoding="utf-8").splitlines())
             for p in (WEBUI / package).rglob("*.py")}
    assert {name: lines for name, lines in sizes.items() if lines > 450} == {}


# The front ends of ControlNet and of the built-in scripts' logic: only these may speak HTTP or Gradio.
_CONTROL_FRONT_ENDS = {"control/api.py", "control/detect_api.py", "control/ui.py"}


def test_controlnet_and_script_logic_stay_engine_side():
    forbidden = ("gradio", "fastapi", "starlette", "webui.ui", "webui.api", "webui.app", "webui.server")
    control = {name: hits for name, hits in offenders("control", forbidden).items() if name not in _CONTROL_FRONT_ENDS}
    assert control == {}
    # ControlNet's loop and models are used by a built-in extension, never the other way round.
    assert offenders("control", ("webui.extensions_builtin",)) == {}
    assert offenders("scripts", ("gradio", "fastapi", "starlette", "webui.ui", "webui.api")) == {}
