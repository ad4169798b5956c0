"""Initial latent noise from seeds, as A1111 makes it (CPU generator, so any device agrees).

Image i of a job uses seed + i. A variation seed blends a second noise in by spherical
interpolation; "resize seed from" draws the noise at another size and centres it, so a
composition found at 512x512 survives a change to 512x768.
"""

from __future__ import annotations

import torch

LATENT_SCALE = 8


def randn(seed: int, shape: tuple[int, ...]) -> torch.Tensor:
    generator = torch.Generator("cpu").manual_seed(int(seed))
    return torch.randn(shape, generator=generator, dtype=torch.float32)


def slerp(t: float, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between two noise tensors (t=0 → low, t=1 → high)."""
    low_n = low / low.norm()
    high_n = high / high.norm()
    dot = (low_n * high_n).sum().clamp(-1.0, 1.0)
    if dot.abs() > 0.9995:  # nearly parallel: plain lerp avoids dividing by ~0
        return (1 - t) * low + t * high
    omega = torch.acos(dot)
    so = torch.sin(omega)
    return (torch.sin((1.0 - t) * omega) / so) * low + (torch.sin(t * omega) / so) * high


def _paste_centered(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Copy the overlapping centre of ``source`` into ``target`` (both C×H×W)."""
    out = target.clone()
    _, sh, sw = source.shape
    _, th, tw = target.shape
    h, w = min(sh, th), min(sw, tw)
    sy, sx = (sh - h) // 2, (sw - w) // 2
    ty, tx = (th - h) // 2, (tw - w) // 2
    out[:, ty:ty + h, tx:tx + w] = source[:, sy:sy + h, sx:sx + w]
    return out


def image_noise(
    shape: tuple[int, int, int],
    seed: int,
    subseed: int | None = None,
    subseed_strength: float = 0.0,
    resize_from: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Noise for one image. ``shape`` is (C, H/8, W/8); ``resize_from`` is (width, height) in pixels."""
    noise_shape = shape
    if resize_from is not None:
        noise_shape = (shape[0], resize_from[1] // LATENT_SCALE, resize_from[0] // LATENT_SCALE)
    noise = randn(seed, noise_shape)
    if subseed is not None and subseed_strength > 0:
        noise = slerp(subseed_strength, noise, randn(subseed, noise_shape))
    if noise_shape != shape:
        noise = _paste_centered(noise, randn(seed, shape))
    return noise


def batch_noise(
    shape: tuple[int, int, int],
    seeds: list[int],
    subseeds: list[int],
    subseed_strength: float = 0.0,
    resize_from: tuple[int, int] | None = None,
) -> torch.Tensor:
    return torch.stack([
        image_noise(shape, seed, subseed, subseed_strength, resize_from) for seed, subseed in zip(seeds, subseeds)
    ])
