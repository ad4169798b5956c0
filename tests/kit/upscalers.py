"""Write tiny random-weight upscaler files in the real layouts A1111 users download, for tests.

- ESRGAN, old layout (``model.0.weight``, ``model.1.sub.N.RDBk.convj.0.weight``...): the original
  ESRGAN / most community ``4x_*.pth`` files.
- Real-ESRGAN, BasicSR layout (``conv_first``, ``body.N.rdbK.convJ``, ``conv_body``, ``conv_up1``...)
  wrapped in ``params_ema``: RealESRGAN_x4plus.pth.
- Real-ESRGAN compact (SRVGGNetCompact: ``body.N.weight`` convs and PReLUs) wrapped in ``params``:
  realesr-general-x4v3.pth.
- SwinIR (``layers.N.residual_group.blocks.M...`` with its buffers) wrapped in ``params_ema``.

Widths are the smallest that keep each layout recognisable: ESRGAN's dense blocks always grow by
32 channels (spandrel reads the width from ``model.0`` and the blocks from the key count). Weights are
seeded, scaled by 1/sqrt(fan-in) so a random image comes out with structure, not saturated.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from safetensors.torch import save_file

GROWTH = 32  # ESRGAN's residual-dense growth channels (fixed in the architecture)


def _conv(gen: torch.Generator, out_ch: int, in_ch: int, k: int = 3, gain: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    weight = torch.randn((out_ch, in_ch, k, k), generator=gen) * (gain / math.sqrt(in_ch * k * k))
    return weight, torch.randn((out_ch,), generator=gen) * 0.01


def _save(state: dict, path: Path, wrapper: str | None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save({wrapper: state} if wrapper else state, path)
    return path


def _rrdb_trunk(gen: torch.Generator, nf: int, blocks: int, name) -> dict[str, torch.Tensor]:
    """Residual-in-residual dense blocks; ``name(block, rdb, conv)`` gives the weight's key stem."""
    state = {}
    for b in range(blocks):
        for r in (1, 2, 3):
            for c in range(1, 6):
                out_ch = nf if c == 5 else GROWTH
                # small gain: the block output is added back scaled, as in trained models
                state[f"{name(b, r, c)}.weight"], state[f"{name(b, r, c)}.bias"] = _conv(
                    gen, out_ch, nf + (c - 1) * GROWTH, gain=0.2)
    return state


def write_esrgan(path: Path, *, scale: int = 4, nf: int = 8, blocks: int = 1, seed: int = 0) -> Path:
    """An ESRGAN model in the old layout (``model.0`` ... ``model.10`` for 4×); ``.pth`` or ``.safetensors``."""
    gen = torch.Generator().manual_seed(seed)
    ups = int(math.log2(scale))
    assert 2 ** ups == scale and ups >= 1, "ESRGAN scales are powers of two"
    state = {}
    state["model.0.weight"], state["model.0.bias"] = _conv(gen, nf, 3)
    state.update(_rrdb_trunk(gen, nf, blocks, lambda b, r, c: f"model.1.sub.{b}.RDB{r}.conv{c}.0"))
    state[f"model.1.sub.{blocks}.weight"], state[f"model.1.sub.{blocks}.bias"] = _conv(gen, nf, nf)
    for i in range(1, ups + 1):  # model.(3i-1) is the nearest upsample, model.3i its conv, then a LeakyReLU
        state[f"model.{3 * i}.weight"], state[f"model.{3 * i}.bias"] = _conv(gen, nf, nf)
    hr = 3 * ups + 2
    state[f"model.{hr}.weight"], state[f"model.{hr}.bias"] = _conv(gen, nf, nf)
    state[f"model.{hr + 2}.weight"], state[f"model.{hr + 2}.bias"] = _conv(gen, 3, nf)
    return _save(state, Path(path), None)


def write_realesrgan(path: Path, *, nf: int = 8, blocks: int = 1, seed: int = 1) -> Path:
    """A 4× Real-ESRGAN (BasicSR RRDBNet) ``.pth`` wrapped in ``params_ema``, as RealESRGAN_x4plus."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    state["conv_first.weight"], state["conv_first.bias"] = _conv(gen, nf, 3)
    state.update(_rrdb_trunk(gen, nf, blocks, lambda b, r, c: f"body.{b}.rdb{r}.conv{c}"))
    for name in ("conv_body", "conv_up1", "conv_up2", "conv_hr"):
        state[f"{name}.weight"], state[f"{name}.bias"] = _conv(gen, nf, nf)
    state["conv_last.weight"], state["conv_last.bias"] = _conv(gen, 3, nf)
    return _save(state, Path(path), "params_ema")


def write_compact(path: Path, *, scale: int = 4, nf: int = 8, convs: int = 1, seed: int = 2) -> Path:
    """A Real-ESRGAN compact (SRVGGNetCompact) ``.pth`` wrapped in ``params``: convs and PReLUs."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    state["body.0.weight"], state["body.0.bias"] = _conv(gen, nf, 3)
    state["body.1.weight"] = torch.full((nf,), 0.1)  # PReLU slopes
    for i in range(convs):
        state[f"body.{2 + 2 * i}.weight"], state[f"body.{2 + 2 * i}.bias"] = _conv(gen, nf, nf)
        state[f"body.{3 + 2 * i}.weight"] = torch.full((nf,), 0.1)
    last = 2 + 2 * convs
    state[f"body.{last}.weight"], state[f"body.{last}.bias"] = _conv(gen, 3 * scale * scale, nf)
    return _save(state, Path(path), "params")


def write_swinir(path: Path, *, seed: int = 3) -> Path:
    """A 4× real-world SwinIR (nearest+conv upsampler) ``.pth`` wrapped in ``params_ema``.

    One residual group of two blocks (the second shifted, so ``attn_mask`` is present as in real
    files), embed dim 12, 2 heads, window 4, trained size 16. Built with spandrel's own SwinIR
    class: its parameter and buffer names are the reference implementation's.
    """
    from spandrel.architectures.SwinIR import SwinIR

    torch.manual_seed(seed)
    model = SwinIR(img_size=16, patch_size=1, in_chans=3, embed_dim=12, depths=[2], num_heads=[2], window_size=4,
                   mlp_ratio=2.0, upscale=4, img_range=1.0, upsampler="nearest+conv", resi_connection="1conv")
    return _save(dict(model.state_dict()), Path(path), "params_ema")


class _RunsCode:
    """A pickle that would create a file when unpickled with code execution allowed."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def write_malicious_upscaler(path: Path, marker: Path) -> Path:
    """A ``.pth`` in the ESRGAN layout whose pickle also asks to create ``marker`` (``Path.touch``)."""
    gen = torch.Generator().manual_seed(9)
    weight, bias = _conv(gen, 8, 3)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model.0.weight": weight, "model.0.bias": bias, "payload": _RunsCode(marker)}, path)
    return Path(path)
