"""A1111's ``modules`` package, as far as extensions use it: a thin skin over webui/plugins.

``from modules import scripts, script_callbacks, shared, processing, images`` gives A1111's names
for SD Studio's own objects. Everything else (``sd_hijack``, ``sd_samplers_kdiffusion``, the LDM
model's internals) is not here, and says so in one sentence instead of a bare ImportError or
AttributeError, so an extension's author knows where to look (docs/extensions.md).
"""

from __future__ import annotations

import dis
import importlib
import importlib.abc
import sys
from types import ModuleType
from typing import Any

SHIPPED = ("images", "processing", "script_callbacks", "scripts", "shared")

# Well-known A1111 modules that cannot exist here, and why (added to the message).
_WHY = {
    "sd_hijack": "it patches the LDM model's layers, and SD Studio runs diffusers models",
    "sd_samplers_kdiffusion": "samplers are diffusers schedulers driven by SD Studio's own loop",
    "sd_samplers_cfg_denoiser": "use script_callbacks.on_cfg_denoiser / on_cfg_denoised / on_cfg_after_cfg",
    "sd_samplers_common": "samplers are diffusers schedulers driven by SD Studio's own loop",
    "sd_models": "the active model is shared.sd_model (SD Studio's model, not an LDM one)",
    "devices": "the torch device is shared.device",
    "paths": "shared.models_path, shared.data_path and shared.script_path are",
    "ui_components": "build controls with Gradio directly",
}


def not_provided(what: str, why: str = "") -> str:
    """The sentence every missing A1111 name gets (``what``: e.g. ``modules.shared.sd_hijack``)."""
    reason = f"; {why}" if why else ""
    return (f"{what} is not provided by SD Studio's A1111 compatibility layer{reason} "
            "(see docs/extensions.md)")


def _in_from_import(frame: Any) -> bool:
    """Whether ``frame`` is running ``from x import name`` (CPython's IMPORT_FROM would replace an
    AttributeError's message with its own "cannot import name")."""
    try:
        return dis.opname[frame.f_code.co_code[frame.f_lasti]] == "IMPORT_FROM"
    except (AttributeError, IndexError, TypeError):
        return False


def missing(what: str, why: str = "") -> Exception:
    """What a compat module's ``__getattr__`` raises for a name it lacks: an AttributeError (so
    ``hasattr`` / ``getattr(x, n, default)`` work), an ImportError inside ``from x import name``."""
    message = not_provided(what, why)
    return ImportError(message) if _in_from_import(sys._getframe(2)) else AttributeError(message)


class NotProvidedError(ModuleNotFoundError):
    """An A1111 module SD Studio does not ship (still an ImportError / ModuleNotFoundError)."""


def _missing_module(fullname: str) -> NotProvidedError:
    short = fullname.split(".")[1] if "." in fullname else fullname
    # name=None: importlib's `from modules import x` swallows a ModuleNotFoundError named
    # "modules.x" and replaces our sentence with "cannot import name"; ours must reach the author.
    return NotProvidedError(not_provided(fullname, _WHY.get(short, "")), name=None)


def __getattr__(name: str) -> ModuleType:
    # `from modules import x` asks the package for x, then imports modules.x (where _MissingFinder
    # answers for the ones we lack); `modules.x` after `import modules` loads ours as well.
    if name.startswith("__"):
        raise AttributeError(name)
    if name in SHIPPED:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(not_provided(f"{__name__}.{name}", _WHY.get(name, "")))


class _MissingFinder(importlib.abc.MetaPathFinder):
    """Last on sys.meta_path: ``import modules.sd_hijack`` gets our sentence, not "No module named"."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
        if fullname.startswith(f"{__name__}.") and fullname.split(".")[1] not in SHIPPED:
            raise _missing_module(fullname)
        return None


if not any(type(f).__name__ == "_MissingFinder" for f in sys.meta_path):
    sys.meta_path.append(_MissingFinder())
