"""SD Studio's extension API, in one import::

    from webui.plugins.api import Script, AlwaysVisible, process_images, on_app_started, add_option

Everything here is documented in docs/extensions.md (its hook reference is generated from these
docstrings). The A1111 compatibility layer (``from modules import scripts, ...``, in
webui/compat/) is a thin skin over the same objects.
"""

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
from webui.plugins.jobs import process_images
from webui.plugins.options import add_option, get_option
from webui.plugins.processing import Processed, Processing
from webui.plugins.script import (
    AlwaysVisible,
    PostprocessBatchListArgs,
    PostprocessImageArgs,
    Script,
)

__all__ = [
    "AfterCFGCallbackParams", "AlwaysVisible", "CFGDenoisedParams", "CFGDenoiserParams", "ImageSaveParams",
    "PostprocessBatchListArgs", "PostprocessImageArgs", "Processed", "Processing", "Script", "add_option",
    "get_option", "on_app_started", "on_before_image_saved", "on_cfg_after_cfg", "on_cfg_denoised",
    "on_cfg_denoiser", "on_image_saved", "on_infotext_pasted", "on_model_loaded", "on_script_unloaded",
    "on_ui_settings", "on_ui_tabs", "process_images",
]
