"""A1111's outpainting scripts' args → a ``p`` that outpaints with SD Studio's own outpaint code.

The img2img outpaint (webui/engine/init_image.py ``outpaint``) grows the canvas, fills the new
area (mk2: colour-matched noise; poor man: the masked-content fill) and repaints it in one pass.
The scripts only choose the sides (A1111's rounding to multiples of 64, see outpaint_sides),
the seam blur and the fill, and start from the init image at its own size (as A1111's scripts do:
width and height are not used to resize it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from PIL import Image

from webui.plugins.processing import Processing
from webui.request import MAX_SIZE, MIN_SIZE
from webui.request_img2img import MASKED_CONTENT, OutpaintSettings
from webui.scripts import script_limits
from webui.scripts.outpaint_sides import Sides, sides
from webui.scripts.script_args import directions, number

MAX_PIXELS = 1024  # per side, as the img2img outpaint settings allow
MAX_BLUR = 64


@dataclass(frozen=True)
class OutpaintPlan:
    base: tuple[int, int]  # the init image's size as rendered (multiples of 8)
    sides: Sides
    blur: int

    @property
    def size(self) -> tuple[int, int]:
        return self.sides.size(*self.base)


def base_size(image: Image.Image) -> tuple[int, int]:
    """The init image's size rounded down to the sampler's 8-pixel cells (at least the minimum size)."""
    return tuple(max(MIN_SIZE, side - side % 8) for side in image.size)  # type: ignore[return-value]


def plan(p: Processing, pixels: Any, mask_blur: Any, direction: Any) -> OutpaintPlan:
    """The outpaint for these args; ValueError with a sentence for bad args or too much work."""
    if not p.init_images:
        raise ValueError("needs an init image (img2img)")
    amount = int(number(pixels, "Pixels to expand", 1, MAX_PIXELS, integer=True))
    blur = int(number(mask_blur, "Mask blur", 0, MAX_BLUR, integer=True))
    chosen = directions(direction)
    base = base_size(p.init_images[0])
    grown = sides(*base, amount, chosen)
    made = OutpaintPlan(base, grown, blur)
    width, height = made.size
    if max(grown.left, grown.right, grown.up, grown.down) > MAX_PIXELS or max(width, height) > MAX_SIZE:
        raise ValueError(f"the {base[0]}x{base[1]} image would grow to {width}x{height}; each side may be at most "
                         f"{MAX_SIZE} and each margin {MAX_PIXELS} pixels")
    script_limits.check_pixels(width, height, "the outpainted image")
    script_limits.check_work(script_limits.work(width, height, p.steps, p.batch_size * p.n_iter), "this outpaint")
    return made


def apply(p: Processing, made: OutpaintPlan, method: str, masked_content: int | None = None) -> None:
    """Set ``p`` up to outpaint as planned: its own size, the sides, the fill, whole-picture.

    ``masked_content`` (poor man's "Masked content") travels as the inpaint settings' masked
    content, which is where the outpaint code reads it; the mask itself is ignored when outpainting
    (the new area is the mask), so an empty one is given.
    """
    p.width, p.height = made.base
    p.resize_mode = 0
    p.inpaint_full_res = False
    p.inpainting_mask_invert = 0
    s = made.sides
    p.outpaint = OutpaintSettings(left=s.left, right=s.right, up=s.up, down=s.down, method=method, blur=made.blur)
    p.mask_blur = made.blur
    if masked_content is None:
        p.image_mask = None
        p.inpainting_fill = MASKED_CONTENT.index("original")
    else:
        p.image_mask = Image.new("L", made.base, 0)
        p.inpainting_fill = masked_content
