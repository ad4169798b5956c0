"""img2img's inputs made ready for sampling: resize modes, the mask, masked-content fill, the
only-masked crop, outpainting, and the overlay that puts the untouched pixels back.

Pixels only (PIL and numpy); the latents side is in webui/engine/img2img.py. The steps follow
A1111's img2img, so an artist's settings mean the same here:

    mask → black/white (round) → invert → blur (x, y) → [only masked: crop box around it, grown
    to the output's aspect ratio] → each init image resized (or cropped) to the working size,
    masked area filled when asked → after decoding, the result is pasted back (only masked) and
    the original is laid over everything the blurred mask does not cover.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter, ImageOps

from webui.request_img2img import Img2ImgInput, InpaintSettings, OutpaintSettings

LANCZOS = Image.Resampling.LANCZOS


@dataclass(frozen=True)
class PreparedInput:
    """The init images at the working size, and what inpainting needs to blend and paste back."""

    images: tuple[Image.Image, ...]  # RGB, width × height of the pass (original size for latent resize)
    mask: Image.Image | None  # "L" at the working size: where the latents are repainted (blurred)
    overlays: tuple[Image.Image, ...] = ()  # RGBA originals at the final size, opaque where kept
    paste_box: tuple[int, int, int, int] | None = None  # only masked: (x, y, w, h) of the crop
    resize_latents: bool = False  # "Just resize (latent upscale)": the latents are resized instead
    masked_content: str = "original"  # latent noise / latent nothing change the latents, not the pixels
    round_latent_mask: bool = True  # A1111's mask_round: the latent mask is 0 or 1
    note: str | None = None  # something the artist should know (a blank mask, ...)

    def finish(self, index: int, image: Image.Image) -> Image.Image:
        """A decoded result → the final image: pasted into its crop, original laid over the rest."""
        if not self.overlays:
            return image
        overlay = self.overlays[index % len(self.overlays)]
        if self.paste_box is not None:
            x, y, w, h = self.paste_box
            canvas = Image.new("RGBA", overlay.size)
            canvas.paste(resize(image, w, h, mode=1), (x, y))
            image = canvas
        elif image.size != overlay.size:  # a hires pass made it larger: lay the original over at its size
            overlay = overlay.resize(image.size, LANCZOS)
        result = image.convert("RGBA")
        result.alpha_composite(overlay)
        return result.convert("RGB")


def prepare(settings: Img2ImgInput, width: int, height: int) -> PreparedInput:
    """The request's images and mask made ready for a pass of ``width`` × ``height``."""
    images = [flatten(image) for image in settings.init_images]
    inpaint = settings.inpaint
    if settings.outpaint is not None and settings.outpaint.grows:
        images = [resize(image, width, height, settings.resize_mode % 3) for image in images]
        grown, mask = outpaint(images, settings.outpaint)
        return _prepare_inpaint(grown, mask, _outpaint_inpaint(settings.outpaint, inpaint), 0, *grown[0].size)
    if inpaint is None:
        if settings.resize_mode == 3:
            return PreparedInput(tuple(images), None, resize_latents=True)
        return PreparedInput(tuple(resize(image, width, height, settings.resize_mode) for image in images), None)
    return _prepare_inpaint(images, inpaint.mask, inpaint, settings.resize_mode, width, height)


def _prepare_inpaint(images: list[Image.Image], mask_image: Image.Image, inpaint: InpaintSettings, resize_mode: int,
                     width: int, height: int) -> PreparedInput:
    if any(image.size != images[0].size for image in images):
        images = [image.resize(images[0].size, LANCZOS) for image in images]
    if mask_image.size != images[0].size:  # a mask of another size covers the same part of the picture
        mask_image = binary_mask(mask_image, inpaint.round).resize(images[0].size, Image.Resampling.BILINEAR)
    mask = binary_mask(mask_image, inpaint.round)
    if inpaint.invert:
        mask = ImageOps.invert(mask)
    mask = blur(mask, inpaint.blur_x, inpaint.blur_y)
    note = None
    crop = None
    if inpaint.only_masked:
        crop = crop_region(mask, inpaint.padding)
        if crop is None:
            note = "Only masked inpainting needs a mask; the mask is blank, so the whole picture was used"
        else:
            crop = expand_to_ratio(crop, width, height, *mask.size)
    if crop is not None:
        overlay_mask = mask
        working_mask = resize(mask.crop(crop), width, height, mode=2)
    else:
        working_mask = resize(mask, width, height, mode=resize_mode % 3)
        # A1111 doubles the blurred mask for the overlay: the seam fades over half the blur.
        overlay_mask = Image.fromarray(np.clip(np.asarray(working_mask, dtype=np.float32) * 2, 0, 255).astype(np.uint8))
    working, overlays = [], []
    for image in images:
        if crop is None:
            image = resize(image, width, height, resize_mode % 3)
        overlays.append(_overlay(image, overlay_mask))
        if crop is not None:
            image = resize(image.crop(crop), width, height, mode=2)
        if inpaint.masked_content == "fill":
            image = fill(image, working_mask)
        working.append(image)
    paste = (crop[0], crop[1], crop[2] - crop[0], crop[3] - crop[1]) if crop is not None else None
    return PreparedInput(tuple(working), working_mask, tuple(overlays), paste, masked_content=inpaint.masked_content,
                         round_latent_mask=inpaint.round, note=note)


def _overlay(image: Image.Image, mask: Image.Image) -> Image.Image:
    """The original, opaque where it is kept and transparent where it is repainted."""
    overlay = image.convert("RGBA")
    overlay.putalpha(ImageOps.invert(mask.convert("L")))
    return overlay


def _outpaint_inpaint(settings: OutpaintSettings, inpaint: InpaintSettings | None) -> InpaintSettings:
    """The inpaint settings outpainting runs with: the new area masked, repainted whole-picture."""
    content = {"mk2": "original", "fill": "fill"}.get(settings.method, inpaint.masked_content if inpaint else "fill")
    return InpaintSettings.model_construct(
        mask=None, blur_x=settings.blur, blur_y=settings.blur, invert=False, masked_content=content,
        only_masked=False, padding=0, round=True,
    )


# --- pixels ------------------------------------------------------------------------------------


def flatten(image: Image.Image, background: str = "#ffffff") -> Image.Image:
    """RGB; transparent pixels become the background colour (A1111's img2img_background_color)."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, background)
        canvas.alpha_composite(rgba)
        return canvas.convert("RGB")
    return image.convert("RGB")


def resize(image: Image.Image, width: int, height: int, mode: int = 0) -> Image.Image:
    """A1111's resize modes: 0 just resize, 1 crop and resize (cover, centre), 2 resize and fill
    (fit, centre, the empty bands filled by stretching the image's edges)."""
    if image.size == (width, height):
        return image
    if mode == 0:
        return image.resize((width, height), LANCZOS)
    ratio, source_ratio = width / height, image.width / image.height
    if mode == 1:
        scale_w = width if ratio > source_ratio else image.width * height // image.height
        scale_h = height if ratio <= source_ratio else image.height * width // image.width
        resized = image.resize((scale_w, scale_h), LANCZOS)
        canvas = Image.new(image.mode, (width, height))
        canvas.paste(resized, (width // 2 - scale_w // 2, height // 2 - scale_h // 2))
        return canvas
    scale_w = width if ratio < source_ratio else image.width * height // image.height
    scale_h = height if ratio >= source_ratio else image.height * width // image.width
    resized = image.resize((scale_w, scale_h), LANCZOS)
    canvas = Image.new(image.mode, (width, height))
    x, y = width // 2 - scale_w // 2, height // 2 - scale_h // 2
    canvas.paste(resized, (x, y))
    if y > 0:  # bands above and below: the first and last rows, stretched
        canvas.paste(resized.crop((0, 0, scale_w, 1)).resize((scale_w, y)), (x, 0))
        canvas.paste(resized.crop((0, scale_h - 1, scale_w, scale_h)).resize((scale_w, height - y - scale_h)),
                     (x, y + scale_h))
    if x > 0:
        canvas.paste(resized.crop((0, 0, 1, scale_h)).resize((x, scale_h)), (0, y))
        canvas.paste(resized.crop((scale_w - 1, 0, scale_w, scale_h)).resize((width - x - scale_w, scale_h)),
                     (x + scale_w, y))
    return canvas


def binary_mask(image: Image.Image, round_: bool = True) -> Image.Image:
    """An "L" mask: the alpha channel when the image has transparency, else its brightness."""
    if image.mode in ("RGBA", "LA") and image.getchannel("A").getextrema() != (255, 255):
        mask = image.getchannel("A")
    else:
        mask = image.convert("L")
    return mask.point(lambda v: 255 if v >= 128 else 0) if round_ else mask


def blur(mask: Image.Image, blur_x: int, blur_y: int) -> Image.Image:
    """Gaussian blur with separate x and y strengths (sigma in pixels, as A1111's mask blur)."""
    if not blur_x and not blur_y:
        return mask
    return mask.filter(ImageFilter.GaussianBlur((blur_x, blur_y)))


def crop_region(mask: Image.Image, padding: int) -> tuple[int, int, int, int] | None:
    """The box around the mask's non-zero pixels, grown by ``padding``; None for a blank mask."""
    box = mask.getbbox()
    if box is None:
        return None
    x1, y1, x2, y2 = box
    return max(0, x1 - padding), max(0, y1 - padding), min(mask.width, x2 + padding), min(mask.height, y2 + padding)


def expand_to_ratio(box: tuple[int, int, int, int], width: int, height: int, image_w: int,
                    image_h: int) -> tuple[int, int, int, int]:
    """Grow ``box`` to the aspect ratio of ``width × height`` (the crop is resized to it), within the image."""
    x1, y1, x2, y2 = box
    ratio = width / height
    if (x2 - x1) / (y2 - y1) < ratio:  # too narrow: widen
        want = min(image_w, round((y2 - y1) * ratio))
        x1, x2 = _centred(x1, x2, want, image_w)
    else:  # too flat: heighten
        want = min(image_h, round((x2 - x1) / ratio))
        y1, y2 = _centred(y1, y2, want, image_h)
    return x1, y1, x2, y2


def _centred(start: int, end: int, length: int, limit: int) -> tuple[int, int]:
    grow = length - (end - start)
    start -= grow // 2
    end += grow - grow // 2
    if start < 0:
        end, start = end - start, 0
    if end > limit:
        start, end = max(0, start - (end - limit)), limit
    return start, end


def fill(image: Image.Image, mask: Image.Image) -> Image.Image:
    """Masked content "fill": the masked area painted with the surrounding colours, blurred from
    coarse to fine so large holes get the broad colour and edges the local one."""
    keep = ImageOps.invert(mask.convert("L"))
    known = image.convert("RGBA")
    known.putalpha(keep)
    result = Image.new("RGBA", image.size)
    for radius, repeats in ((256, 1), (64, 1), (16, 2), (4, 4), (2, 2), (0, 1)):
        layer = _blur_premultiplied(known, radius)
        for _ in range(repeats):
            result.alpha_composite(layer)
    return result.convert("RGB")


def _blur_premultiplied(image: Image.Image, radius: int) -> Image.Image:
    """Blur an RGBA image without dark fringes: colours are weighted by their alpha."""
    if radius == 0:
        return image
    premultiplied = image.convert("RGBa").filter(ImageFilter.GaussianBlur(radius))
    return premultiplied.convert("RGBA")


def outpaint(images: list[Image.Image], settings: OutpaintSettings) -> tuple[list[Image.Image], Image.Image]:
    """Each image on a larger canvas (sides rounded up to multiples of 8) and the mask of the new area.

    The new area starts as the edge colours stretched out ("fill", "poor man") or, for "mk2",
    colour-matched noise over them (each image's own seedless noise would differ per run, so the
    noise is seeded from the image's pixels: the same input always gives the same canvas).
    """
    width, height = images[0].size
    left, right, up, down = settings.left, settings.right, settings.up, settings.down
    new_w = -(-(width + left + right) // 8) * 8
    new_h = -(-(height + up + down) // 8) * 8
    right += new_w - (width + left + right)
    down += new_h - (height + up + down)
    grown = []
    for image in images:
        canvas = _stretched(image, left, right, up, down)
        if settings.method == "mk2":
            canvas = _matched_noise(canvas, image, (left, up))
        canvas.paste(image, (left, up))
        grown.append(canvas)
    mask = Image.new("L", (new_w, new_h), 255)
    mask.paste(0, (left, up, left + width, up + height))
    return grown, mask


def _stretched(image: Image.Image, left: int, right: int, up: int, down: int) -> Image.Image:
    """The image with its edge rows and columns stretched outwards over the new margins."""
    w, h = image.size
    canvas = Image.new("RGB", (w + left + right, h + up + down))
    canvas.paste(image, (left, up))
    if left:
        canvas.paste(image.crop((0, 0, 1, h)).resize((left, h)), (0, up))
    if right:
        canvas.paste(image.crop((w - 1, 0, w, h)).resize((right, h)), (left + w, up))
    full_w = canvas.width
    if up:
        canvas.paste(canvas.crop((0, up, full_w, up + 1)).resize((full_w, up)), (0, 0))
    if down:
        canvas.paste(canvas.crop((0, up + h - 1, full_w, up + h)).resize((full_w, down)), (0, up + h))
    return canvas


def _matched_noise(canvas: Image.Image, original: Image.Image, offset: tuple[int, int]) -> Image.Image:
    """mk2's idea: the new area gets noise with the original's colour statistics over the stretched
    edges, blurred a little, so the sampler finds texture to work with instead of flat bands."""
    source = np.asarray(original, dtype=np.float32)
    seed = int(np.asarray(original.resize((8, 8)), dtype=np.uint64).sum() % (2**32))
    rng = np.random.default_rng(seed)
    base = np.asarray(canvas, dtype=np.float32)
    noise = rng.standard_normal(base.shape).astype(np.float32) * source.std(axis=(0, 1))
    noisy = Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(2))
    noisy.paste(original, offset)
    return noisy
