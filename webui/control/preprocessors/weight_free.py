"""The modules that need no annotator weights: plain OpenCV / numpy image operations.

Each takes an RGB uint8 array (H, W, 3), the processor resolution and the two slider values, and
returns an RGB uint8 array. Resolution is handled as the extension does: the short side is scaled to
the processor resolution and the image edge-padded to multiples of 64 while the operation runs;
the pad is cut off again, so a map's short side is the processor resolution.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Callable

import cv2
import numpy as np

Operation = Callable[[np.ndarray, int, float, float], np.ndarray]


def rgb(array: np.ndarray) -> np.ndarray:
    """Any uint8 grey / RGB / RGBA array as RGB (RGBA over white, as the extension's HWC3)."""
    if array.ndim == 2:
        array = array[:, :, None]
    channels = array.shape[2]
    if channels == 3:
        return array
    if channels == 1:
        return np.repeat(array, 3, axis=2)
    if channels == 4:
        alpha = array[:, :, 3:4].astype(np.float32) / 255.0
        blended = array[:, :, :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
        return blended.clip(0, 255).astype(np.uint8)
    raise ValueError(f"an image with {channels} channels: expected 1, 3 or 4")


def scaled_padded(image: np.ndarray, resolution: int) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    """The image with its short side at ``resolution``, edge-padded to multiples of 64, and the crop
    that removes the pad from a result of the padded size."""
    height, width = image.shape[:2]
    scale = float(resolution) / float(min(height, width))
    target_h, target_w = max(1, int(round(height * scale))), max(1, int(round(width * scale)))
    interpolation = cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA
    resized = cv2.resize(image, (target_w, target_h), interpolation=interpolation)
    pad_h, pad_w = -target_h % 64, -target_w % 64
    padded = np.pad(resized, [[0, pad_h], [0, pad_w], [0, 0]], mode="edge")

    def crop(result: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(result[:target_h, :target_w])

    return np.ascontiguousarray(padded), crop


def _grey_to_rgb(grey: np.ndarray) -> np.ndarray:
    return np.repeat(grey[:, :, None], 3, axis=2)


def identity(image: np.ndarray, res: int, a: float, b: float) -> np.ndarray:
    return image


def invert(image: np.ndarray, res: int, a: float, b: float) -> np.ndarray:
    return 255 - image


def canny(image: np.ndarray, res: int, a: float, b: float) -> np.ndarray:
    padded, crop = scaled_padded(image, res)
    return _grey_to_rgb(crop(cv2.Canny(padded, int(a), int(b))))


def blur_gaussian(image: np.ndarray, res: int, a: float, b: float) -> np.ndarray:
    padded, crop = scaled_padded(image, res)
    return cv2.GaussianBlur(crop(padded), (0, 0), max(float(a), 0.01))


def threshold(image: np.ndarray, res: int, a: float, b: float) -> np.ndarray:
    padded, crop = scaled_padded(image, res)
    # A pixel is white only when every channel is above the threshold.
    mask = padded.min(axis=2) > a
    return _grey_to_rgb(crop(np.where(mask, 255, 0).astype(np.uint8)))


def scribble_xdog(image: np.ndarray, res: int, a: float, b: float) -> np.ndarray:
    padded, crop = scaled_padded(image, res)
    pixels = padded.astype(np.float32)
    # Difference of Gaussians: strokes are where the wide blur is darker than the narrow one.
    fine, wide = cv2.GaussianBlur(pixels, (0, 0), 0.5), cv2.GaussianBlur(pixels, (0, 0), 5.0)
    strength = (255 - (255 - np.min(wide - fine, axis=2)).clip(0, 255).astype(np.uint8)).astype(np.float32)
    return _grey_to_rgb(crop(np.where(2 * strength > a, 255, 0).astype(np.uint8)))


def lineart_standard(image: np.ndarray, res: int, a: float, b: float) -> np.ndarray:
    padded, crop = scaled_padded(image, res)
    pixels = padded.astype(np.float32)
    darkness = np.min(cv2.GaussianBlur(pixels, (0, 0), 6.0) - pixels, axis=2).clip(0, 255)
    strokes = darkness[darkness > 8]
    scale = max(16.0, float(np.median(strokes)) if strokes.size else 0.0)
    return _grey_to_rgb(crop((darkness / scale * 127).clip(0, 255).astype(np.uint8)))


def color_grid(image: np.ndarray, res: int, a: float, b: float) -> np.ndarray:
    """T2I-Adapter's colour grid: short side to ``res``, averaged down by 64, blown up in blocks."""
    height, width = image.shape[:2]
    if height < width:
        size = (max(1, int(round(width / height * res))), res)
    else:
        size = (res, max(1, int(round(height / width * res))))
    scaled = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    small = cv2.resize(scaled, (max(1, size[0] // 64), max(1, size[1] // 64)), interpolation=cv2.INTER_CUBIC)
    return cv2.resize(small, size, interpolation=cv2.INTER_NEAREST)


def tile_resample(image: np.ndarray, res: int, a: float, b: float) -> np.ndarray:
    if a < 1.1:  # the extension's cut-off: below it the image passes unchanged
        return image
    height, width = image.shape[:2]
    size = (max(1, int(width / a)), max(1, int(height / a)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def recolor_luminance(image: np.ndarray, res: int, a: float, b: float) -> np.ndarray:
    # The extension converts with the BGR constant on RGB data; the recolor models were trained so.
    lightness = cv2.cvtColor(image, cv2.COLOR_BGR2LAB)[:, :, 0].astype(np.float32) / 255.0
    return _grey_to_rgb((lightness ** a * 255.0).clip(0, 255).astype(np.uint8))


def recolor_intensity(image: np.ndarray, res: int, a: float, b: float) -> np.ndarray:
    value = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)[:, :, 2].astype(np.float32) / 255.0
    return _grey_to_rgb((value ** a * 255.0).clip(0, 255).astype(np.uint8))


def inpaint_view(image: np.ndarray) -> np.ndarray:
    """What the inpaint modules show: the image, its masked part (alpha = mask) faded half to white."""
    if image.ndim != 3 or image.shape[2] != 4:
        return rgb(image)
    fade = image[:, :, 3:4].astype(np.float32) / 255.0 * 0.5
    shown = image[:, :, :3].astype(np.float32) * (1.0 - fade) + 255.0 * fade
    return shown.clip(0, 255).astype(np.uint8)


_NUMPY_RANDOM = threading.Lock()  # ContentShuffleDetector draws from numpy's global generator


def shuffle(image: np.ndarray, res: int, a: float, b: float) -> np.ndarray:
    """controlnet-aux's content shuffle, seeded from the image so a preview equals the job's map."""
    from webui.control.preprocessors.annotators import controlnet_aux

    padded, crop = scaled_padded(image, res)
    image = crop(padded)
    seed = int.from_bytes(hashlib.blake2b(image.tobytes(), digest_size=4).digest(), "little")
    with _NUMPY_RANDOM:
        saved = np.random.get_state()
        np.random.seed(seed)
        try:
            result = controlnet_aux().ContentShuffleDetector()(image, detect_resolution=res, image_resolution=res, output_type="np")
        finally:
            np.random.set_state(saved)
    return rgb(np.asarray(result, dtype=np.uint8))


OPERATIONS: dict[str, Operation] = {
    "none": identity, "invert": invert, "canny": canny, "blur_gaussian": blur_gaussian, "threshold": threshold,
    "scribble_xdog": scribble_xdog, "lineart_standard": lineart_standard, "color": color_grid,
    "tile_resample": tile_resample, "tile_colorfix": identity, "tile_colorfix+sharp": identity,
    "recolor_luminance": recolor_luminance, "recolor_intensity": recolor_intensity, "shuffle": shuffle,
    # The inpaint modules pass the image on; the unit's mask is applied where the unit runs.
    "inpaint": identity, "inpaint_only": identity,
}
MASK_VIEWS = {"inpaint", "inpaint_only"}  # given RGBA (the mask as alpha), they show inpaint_view
