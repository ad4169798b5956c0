"""Control images at a stage's size: the extension's resize modes, pixel perfect, the inpaint hint.

Maps are resized the way the extension treats them: a map of few colours (segmentation) keeps
hard edges (nearest), a binary one (edges) is area-resized then Otsu-thresholded so thin lines
survive, other maps shrink by area and grow bicubically. An inpaint hint is RGBA whose alpha is
the mask; as a tensor its masked pixels are -1 (the extension's inpaint convention), the rest the
image in [0, 1].
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from webui.control.units import ResizeMode


def pixel_perfect_resolution(size: tuple[int, int], width: int, height: int, mode: ResizeMode) -> int:
    """The preprocessor resolution that maps the image 1:1 onto ``width`` × ``height`` (the extension's rule)."""
    raw_w, raw_h = size
    k_h, k_w = height / raw_h, width / raw_w
    k = min(k_h, k_w) if mode == ResizeMode.OUTER_FIT else max(k_h, k_w)
    return int(round(k * min(raw_h, raw_w)))


def _resize(image: Image.Image, width: int, height: int) -> Image.Image:
    if image.size == (width, height):
        return image
    rgb = image.convert("RGB")
    colours = rgb.getcolors(256)
    shrinking = width * height < image.width * image.height
    if colours is not None and len(colours) == 2:  # binary edges: stay binary, thin lines survive shrinking
        import cv2

        grey = rgb.convert("L").resize((width, height), Image.Resampling.BOX if shrinking else Image.Resampling.BICUBIC)
        _, binary = cv2.threshold(np.asarray(grey), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        out = Image.fromarray(binary).convert("RGB")
    elif colours is not None and len(colours) > 2:  # a palette (segmentation): no new colours
        out = rgb.resize((width, height), Image.Resampling.NEAREST)
    else:
        out = rgb.resize((width, height), Image.Resampling.BOX if shrinking else Image.Resampling.BICUBIC)
    if image.mode == "RGBA":
        alpha = image.getchannel("A").resize((width, height), Image.Resampling.BILINEAR)
        out = out.convert("RGBA")
        out.putalpha(alpha.point(lambda v: 255 if v > 127 else 0))
    return out


def fit(image: Image.Image, mode: ResizeMode, width: int, height: int) -> Image.Image:
    """``image`` (RGB, or RGBA with the inpaint mask as alpha) at ``width`` × ``height``."""
    if mode == ResizeMode.RESIZE:
        return _resize(image, width, height)
    k_h, k_w = height / image.height, width / image.width
    if mode == ResizeMode.OUTER_FIT:
        k = min(k_h, k_w)
        inner = _resize(image, max(1, round(image.width * k)), max(1, round(image.height * k)))
        array = np.asarray(image)
        border = np.concatenate([array[0], array[-1], array[:, 0], array[:, -1]])
        colour = np.median(border, axis=0).astype(np.uint8)
        if image.mode == "RGBA":
            colour[3] = 255  # the padding is to be painted (the extension's inpaint rule)
        canvas = Image.new(image.mode, (width, height), tuple(int(c) for c in np.atleast_1d(colour)))
        canvas.paste(inner, (max(0, (width - inner.width) // 2), max(0, (height - inner.height) // 2)))
        return canvas
    k = max(k_h, k_w)
    inner = _resize(image, max(width, round(image.width * k)), max(height, round(image.height * k)))
    left, top = (inner.width - width) // 2, (inner.height - height) // 2
    return inner.crop((left, top, left + width, top + height))


def with_mask(image: Image.Image, mask: Image.Image | None) -> Image.Image:
    """The inpaint hint: RGB plus the mask as alpha (white = masked; none: nothing masked)."""
    hint = image.convert("RGB")
    alpha = mask.convert("L").point(lambda v: 255 if v > 127 else 0) if mask is not None \
        else Image.new("L", hint.size, 0)
    if alpha.size != hint.size:
        alpha = alpha.resize(hint.size, Image.Resampling.NEAREST)
    hint.putalpha(alpha)
    return hint


def to_tensor(image: Image.Image, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(1, 3, H, W): the image in [0, 1]; for an RGBA inpaint hint, masked pixels are -1."""
    array = torch.from_numpy(np.asarray(image.convert("RGBA" if image.mode == "RGBA" else "RGB")).copy())
    tensor = array.permute(2, 0, 1).float().div(255.0).unsqueeze(0)
    if tensor.shape[1] == 4:
        colour, mask = tensor[:, :3], (tensor[:, 3:4] > 0.5).float()
        tensor = colour * (1 - mask) - mask
    return tensor.to(device=device, dtype=dtype)


def visible(image: Image.Image) -> Image.Image:
    """The detected map as the results show it (an inpaint hint: the masked part half transparent)."""
    if image.mode != "RGBA":
        return image.convert("RGB")
    shown = image.copy()
    shown.putalpha(image.getchannel("A").point(lambda v: 255 - v // 2))
    return shown
