"""Loading an upscaler model file safely: tensors only, then spandrel detects the architecture.

Pickled files (.pth/.pt/.ckpt/.bin) are read by ``webui.models.safe_load`` with torch's
restricted unpickler, so a file that asks to run code is refused before spandrel sees it;
spandrel's own file loader is never used (it would also try TorchScript for .pt files).
"""

from __future__ import annotations

from pathlib import Path

import torch
from spandrel import (
    ImageModelDescriptor,
    ModelLoader,
    UnsupportedModelError,
    canonicalize_state_dict,
)

from webui.models.safe_load import (
    SAFETENSORS_SUFFIXES,
    CheckpointError,
    load_state_dict,
    read_torch_dict,
)


class UpscalerError(ValueError):
    """An upscaler that cannot be used; the message says why, for a person."""


def read_tensors(path: Path) -> dict:
    """The file's state dict (nested wrappers such as ``params_ema`` kept for spandrel to unwrap)."""
    try:
        if path.suffix.lower() in SAFETENSORS_SUFFIXES:
            return load_state_dict(path)
        return read_torch_dict(path, "upscaler model")
    except CheckpointError as e:
        raise UpscalerError(str(e)) from None


def load_model(path: Path, device: torch.device, dtype: torch.dtype) -> ImageModelDescriptor:
    """The model in ``path``, in eval mode on ``device``; UpscalerError when it is not usable."""
    state = canonicalize_state_dict(read_tensors(path))
    try:
        descriptor = ModelLoader().load_from_state_dict(state)
    except UnsupportedModelError:
        raise UpscalerError(f"{path.name}: not an upscaler architecture spandrel recognises "
                            "(ESRGAN, Real-ESRGAN, SwinIR, DAT, HAT, SCUNet, ...)") from None
    except Exception as e:  # a recognised layout with inconsistent tensors: a damaged file
        raise UpscalerError(f"{path.name}: looks like an upscaler but could not be loaded "
                            f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
    if not isinstance(descriptor, ImageModelDescriptor) or descriptor.purpose == "FaceSR":
        raise UpscalerError(f"{path.name}: a {descriptor.architecture.name} model "
                            f"({descriptor.purpose}), not an image upscaler")
    descriptor.eval()
    descriptor.to(device)
    if dtype == torch.float16 and descriptor.supports_half:
        descriptor.to(torch.float16)
    return descriptor
