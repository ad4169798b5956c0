"""Upscalers: the model-free ones (None, Lanczos, Nearest) and model files loaded with spandrel.

``from webui.upscaling import Upscalers`` is the service the studio creates once (``studio.upscalers``)
and hands to the engine, the Extras tab and scripts.
"""

from webui.upscaling.catalog import UPSCALER_FOLDERS, UpscalerFile
from webui.upscaling.service import (
    BUILTIN_UPSCALERS,
    UpscalerError,
    UpscalerItem,
    Upscalers,
)

__all__ = ["BUILTIN_UPSCALERS", "UPSCALER_FOLDERS", "UpscalerError", "UpscalerFile", "UpscalerItem", "Upscalers"]
