"""A1111's ``modules.script_callbacks``: the ``on_*`` registrations SD Studio calls, same names.

Callbacks that hook A1111's LDM internals or its Gradio build (``on_before_component``,
``on_extra_noise``, ``on_list_unets``...) are not called here: using one raises an
AttributeError that says so, instead of registering something that would never run.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable

from modules import missing
from webui.plugins import context
from webui.plugins.callbacks import (
    AfterCFGCallbackParams,
    CFGDenoisedParams,
    CFGDenoiserParams,
    ImageSaveParams,
    on_app_started,
    on_before_image_saved,
    on_cfg_after_cfg,
    on_cfg_denoised,
    on_cfg_denoiser,
    on_image_saved,
    on_infotext_pasted,
    on_model_loaded,
    on_script_unloaded,
    on_ui_settings,
    on_ui_tabs,
)

__all__ = [
    "AfterCFGCallbackParams", "CFGDenoisedParams", "CFGDenoiserParams", "ImageSaveParams", "on_app_started",
    "on_before_image_saved", "on_cfg_after_cfg", "on_cfg_denoised", "on_cfg_denoiser", "on_image_saved",
    "on_infotext_pasted", "on_model_loaded", "on_script_unloaded", "on_ui_settings", "on_ui_tabs",
    "remove_callbacks_for_function", "remove_current_script_callbacks",
]

# A1111 callbacks with no counterpart here, and why.
_WHY = {
    "on_before_component": "component hooks would patch Gradio's classes; build your controls in ui()",
    "on_after_component": "component hooks would patch Gradio's classes; build your controls in ui()",
    "on_extra_noise": "the sampling loop is SD Studio's own; use on_cfg_denoiser",
    "on_list_optimizers": "attention is PyTorch SDPA, not a pluggable optimizer",
    "on_list_unets": "UNets are diffusers models; there is no UNet list",
    "on_image_grid": "grids are made by SD Studio's outputs module",
    "on_ui_train_tabs": "there is no Train tab",
}


def _code_file(fn: Callable[..., Any]) -> str | None:
    code = getattr(getattr(fn, "__func__", fn), "__code__", None)
    return str(Path(code.co_filename).resolve()) if code is not None else None


def remove_current_script_callbacks() -> None:
    """Drop the callbacks defined in the calling script's file (A1111 calls it before a reload)."""
    caller = str(Path(sys._getframe(1).f_code.co_filename).resolve())
    context.active_registry().remove(lambda entry: _code_file(entry.fn) == caller)


def remove_callbacks_for_function(callback_func: Callable[..., Any]) -> None:
    """Drop every registration of ``callback_func``."""
    context.active_registry().remove(lambda entry: entry.fn == callback_func)


def __getattr__(name: str) -> Any:
    raise missing(f"modules.script_callbacks.{name}", _WHY.get(name, ""))
