"""The img2img part of a GenerationRequest: init images, mask, resize mode, inpaint and outpaint.

Images travel inside the request (they are part of what the job needs, and the job store keeps
the request as JSON): in memory they are PIL images, serialised as base64 PNG. Anything that is
not a decodable, non-empty image is refused when the request is built, so a job never starts
with a broken input.
"""

from __future__ import annotations

import base64
import binascii
import io
from typing import Annotated, Any, Literal

from PIL import Image, UnidentifiedImageError
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    WithJsonSchema,
)

# A1111's names, by index (the API sends the index, infotext the name).
RESIZE_MODES = ("Just resize", "Crop and resize", "Resize and fill", "Just resize (latent upscale)")
MASKED_CONTENT = ("fill", "original", "latent noise", "latent nothing")
MASK_MODES = ("Inpaint masked", "Inpaint not masked")
INPAINT_AREAS = ("Whole picture", "Only masked")
OUTPAINT_METHODS = ("fill", "mk2", "poor man")
MAX_INPUT_SIDE = 8192  # far above any limit; the pixel limit (webui/limits.py) is the real bound


def image_bytes(text: str) -> bytes:
    """An image file's bytes from base64 text or a data URL (nothing decoded); ValueError with a reason."""
    text = text.strip()
    if text.startswith("data:"):
        if "," not in text:
            raise ValueError("a data URL needs a ',' before the base64 data")
        text = text.split(",", 1)[1]
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not valid base64") from None


def open_image(raw: bytes, max_pixels: int | None = None) -> Image.Image:
    """An image file's bytes → a loaded PIL image (``max_pixels`` checked from the header first)."""
    try:
        image = Image.open(io.BytesIO(raw))
        _check_size(image, max_pixels)
        image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as e:
        raise ValueError(f"not a readable image ({type(e).__name__})") from None
    return image


def decode_image(data: Any, max_pixels: int | None = None) -> Image.Image:
    """A PIL image, base64 text or a data URL → a loaded PIL image; ValueError with a reason.

    ``max_pixels`` is checked from the header, before the pixels are decoded: a small, highly
    compressed file can stand for gigabytes of pixels.
    """
    if isinstance(data, Image.Image):
        image = data
    elif isinstance(data, (str, bytes)):
        text = data.decode("ascii", "replace") if isinstance(data, bytes) else data
        image = open_image(image_bytes(text), max_pixels)
    else:
        raise ValueError("must be an image: base64 text or a data URL")
    _check_size(image, max_pixels)
    return image


def _check_size(image: Image.Image, max_pixels: int | None) -> None:
    if image.width < 1 or image.height < 1:
        raise ValueError("the image has no pixels")
    if max(image.size) > MAX_INPUT_SIDE:
        raise ValueError(f"the image is {image.width}x{image.height}; each side may be at most {MAX_INPUT_SIDE}")
    if max_pixels is not None and image.width * image.height > max_pixels:
        raise ValueError(f"a {image.width}x{image.height} image is {image.width * image.height} pixels; the limit "
                         f"(limit_pixels_per_image) is {max_pixels}")


def encode_png(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


InputImage = Annotated[
    Image.Image,
    PlainValidator(decode_image),
    PlainSerializer(encode_png, return_type=str),
    WithJsonSchema({"type": "string", "description": "base64 PNG/JPEG/WEBP, or a data URL"}),
]


class InpaintSettings(BaseModel):
    """A mask and how it is used (A1111's inpaint controls)."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    mask: InputImage = Field(description="white (or opaque, for an image with alpha) = the area to repaint")
    blur_x: int = Field(4, ge=0, le=64, description="Mask blur (A1111 blurs x and y separately)")
    blur_y: int = Field(4, ge=0, le=64)
    invert: bool = Field(False, description="Mask mode 'Inpaint not masked'")
    masked_content: Literal["fill", "original", "latent noise", "latent nothing"] = "original"
    only_masked: bool = Field(False, description="Inpaint area 'Only masked': crop around the mask, paste back")
    padding: int = Field(32, ge=0, le=256, description="Masked area padding (only masked), in pixels")
    round: bool = Field(True, description="A1111's mask_round: the mask is made black and white first")


class OutpaintSettings(BaseModel):
    """Grow the canvas: pixels added on each side, and how the new area is filled before denoising."""

    model_config = ConfigDict(extra="forbid")

    left: int = Field(0, ge=0, le=1024)
    right: int = Field(0, ge=0, le=1024)
    up: int = Field(0, ge=0, le=1024)
    down: int = Field(0, ge=0, le=1024)
    method: Literal["fill", "mk2", "poor man"] = Field(
        "mk2", description="mk2: colour-matched noise; poor man: the masked-content fill; fill: edge colours")
    blur: int = Field(8, ge=0, le=64, description="mask blur at the seam")

    @property
    def grows(self) -> bool:
        return any((self.left, self.right, self.up, self.down))


class Img2ImgInput(BaseModel):
    """What makes a request img2img: the images to start from and how to treat them."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    init_images: list[InputImage] = Field(min_length=1, max_length=16)
    resize_mode: int = Field(0, ge=0, le=3, description="; ".join(f"{i} = {m}" for i, m in enumerate(RESIZE_MODES)))
    initial_noise_multiplier: float | None = Field(None, ge=0.0, le=1.5, description="None = the setting")
    inpaint: InpaintSettings | None = None
    outpaint: OutpaintSettings | None = None
    output_dir: str | None = Field(None, description="batch: save here (inside the output folders) ...")
    output_name: str | None = Field(None, description="... under the input's name", max_length=200)

    @property
    def resize_mode_name(self) -> str:
        return RESIZE_MODES[self.resize_mode]
