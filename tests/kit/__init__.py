"""Shared test helpers: random-weight checkpoints in the real single-file layouts."""

from webui.models.synthetic import (
    FAMILIES,
    checkpoint_tensors,
    family_spec,
    write_checkpoint,
    write_ckpt_pickle,
    write_vae,
)

__all__ = [
    "FAMILIES",
    "checkpoint_tensors",
    "family_spec",
    "write_checkpoint",
    "write_ckpt_pickle",
    "write_vae",
]
