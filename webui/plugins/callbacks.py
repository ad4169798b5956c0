"""Callbacks extensions register (A1111's ``script_callbacks``), and the objects passed to them.

Register while your ``scripts/*.py`` is imported::

    from webui.plugins import callbacks
    callbacks.on_app_started(lambda demo, app: app.add_api_route("/my-ext/hello", hello))

Every callback is called in the order registered (extensions in load order). One that raises is
logged with its extension's name and shown in the Extensions tab; the others still run.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from PIL import Image

from webui.plugins import context
from webui.plugins.problems import Problems

# kind -> what the callback receives (the reference in docs/extensions.md is built from this table).
KINDS: dict[str, str] = {
    "app_started": "fn(demo: gr.Blocks | None, app: FastAPI): the server is built; add routes to app",
    "ui_tabs": "fn() -> [(blocks, title, elem_id)]: extra top-level tabs, built inside gr.Blocks()",
    "ui_settings": "fn(): add settings with shared.opts.add_option(key, OptionInfo(...)) / webui.plugins.options",
    "before_image_saved": "fn(params: ImageSaveParams): an image is about to be saved; params.image may be replaced",
    "image_saved": "fn(params: ImageSaveParams): an image was saved to params.filename",
    "model_loaded": "fn(model): a checkpoint became the active model (the model manager's ActiveModel)",
    "infotext_pasted": "fn(infotext: str, params: dict): ↙ parsed an infotext; params may be changed",
    "script_unloaded": "fn(): the server is stopping or restarting",
    "cfg_denoiser": "fn(params: CFGDenoiserParams): before each UNet call; x / text_cond / text_uncond may be replaced",
    "cfg_denoised": "fn(params: CFGDenoisedParams): the UNet's rows before guidance; x may be replaced",
    "cfg_after_cfg": "fn(params: AfterCFGCallbackParams): the guided prediction (x0); x may be replaced",
}


@dataclass
class ImageSaveParams:
    """An image being saved (``before_image_saved``) or saved (``image_saved``)."""

    image: Image.Image
    p: Any  # the Processing of the job, or None for an image saved outside a job
    filename: str  # the path (before saving: the folder; after: the file)
    pnginfo: dict[str, str] = field(default_factory=dict)  # text chunks; "parameters" is the infotext


@dataclass
class CFGDenoiserParams:
    """Before a UNet call. ``x`` is the batch of latents (unconditional rows first when CFG is on)."""

    x: torch.Tensor
    image_cond: torch.Tensor | None
    sigma: torch.Tensor  # the timestep of this call (diffusers' scale, not k-diffusion's sigma)
    sampling_step: int
    total_sampling_steps: int
    text_cond: torch.Tensor  # the conditional rows' embeddings
    text_uncond: torch.Tensor | None  # the unconditional rows' embeddings (None without CFG)
    denoiser: Any = None


@dataclass
class CFGDenoisedParams:
    """The UNet's output, every row, before classifier-free guidance combines them."""

    x: torch.Tensor
    sampling_step: int
    total_sampling_steps: int
    inner_model: Any = None


@dataclass
class AfterCFGCallbackParams:
    """The guided prediction of the clean latents (x0) at this step."""

    x: torch.Tensor
    sampling_step: int
    total_sampling_steps: int


@dataclass
class _Entry:
    kind: str
    fn: Callable[..., Any]
    extension: str | None


class CallbackRegistry:
    """The callbacks of the loaded extensions. Calls are made without holding any lock."""

    def __init__(self, problems: Problems) -> None:
        self.problems = problems
        self._lock = threading.Lock()
        self._entries: list[_Entry] = []

    def add(self, kind: str, fn: Callable[..., Any], extension: str | None = None) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown callback kind {kind!r}; known: {', '.join(KINDS)}")
        if not callable(fn):
            raise TypeError(f"on_{kind} needs a function, got {type(fn).__name__}")
        with self._lock:
            self._entries.append(_Entry(kind, fn, extension or context.loading_extension()))

    def has(self, kind: str) -> bool:
        with self._lock:
            return any(e.kind == kind for e in self._entries)

    def entries(self, kind: str) -> list[_Entry]:
        with self._lock:
            return [e for e in self._entries if e.kind == kind]

    def remove(self, match: Callable[[_Entry], bool]) -> int:
        """Drop the callbacks ``match`` picks (A1111's ``remove_*`` helpers); returns how many."""
        with self._lock:
            kept = [e for e in self._entries if not match(e)]
            removed, self._entries = len(self._entries) - len(kept), kept
        return removed

    def call(self, kind: str, *args: Any) -> list[tuple[str | None, Any]]:
        """Call every ``kind`` callback; returns (extension, result) of those that did not raise."""
        results = []
        for entry in self.entries(kind):
            try:
                results.append((entry.extension, entry.fn(*args)))
            except Exception as e:  # isolation: one extension's failure is its own
                self.problems.record(entry.extension, f"on_{kind} ({_name(entry.fn)})", e)
        return results


def _name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)


# --- registration functions (A1111's names), for the extension being loaded ---------------------

def _register(kind: str) -> Callable[[Callable[..., Any]], None]:
    def register(callback: Callable[..., Any], *, name: str | None = None) -> None:
        context.active_registry().add(kind, callback)

    register.__name__ = f"on_{kind}"
    register.__doc__ = f"Register ``{KINDS[kind]}``."
    return register


on_app_started = _register("app_started")
on_ui_tabs = _register("ui_tabs")
on_ui_settings = _register("ui_settings")
on_before_image_saved = _register("before_image_saved")
on_image_saved = _register("image_saved")
on_model_loaded = _register("model_loaded")
on_infotext_pasted = _register("infotext_pasted")
on_script_unloaded = _register("script_unloaded")
on_cfg_denoiser = _register("cfg_denoiser")
on_cfg_denoised = _register("cfg_denoised")
on_cfg_after_cfg = _register("cfg_after_cfg")
