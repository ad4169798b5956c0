"""Seamless tiling as A1111 does it: circular padding in every UNet and VAE convolution."""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch

from webui.engine.callbacks import LoopCallback, StageContext


@contextlib.contextmanager
def circular_padding(*modules: torch.nn.Module) -> Iterator[None]:
    """Every Conv2d inside ``modules`` pads circularly for the block, then as before."""
    convs = [m for module in modules for m in module.modules() if isinstance(m, torch.nn.Conv2d)]
    saved = [m.padding_mode for m in convs]
    for conv in convs:
        conv.padding_mode = "circular"
    try:
        yield
    finally:
        for conv, mode in zip(convs, saved):
            conv.padding_mode = mode


class TilingCallback(LoopCallback):
    """Tiling for a job: each stage's UNet and VAE (decoding runs inside the same patch)."""

    def patch_models(self, stage: StageContext):
        pipe = stage.model.pipe
        return circular_padding(pipe.unet, pipe.vae)
