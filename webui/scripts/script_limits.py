"""Work limits for scripts that run many img2img passes from one request.

The request's own limits are checked before it is queued, but a script multiplies the work
(SD upscale runs a pass per tile, Loopback one per loop, outpainting renders a larger canvas).
Scripts check what they will really do against the same limits (webui/limits.py options), in
``check_args``, so the refusal is a 422 with a sentence, before anything runs.
"""

from __future__ import annotations

from webui.limits import WORK_UNIT, Limits
from webui.plugins import context


def current() -> Limits | None:
    """The studio's limits now (None without a running studio: nothing to check against)."""
    options = context.current_options()
    return Limits.from_options(options.snapshot()) if options is not None else None


def work(width: int, height: int, steps: int, passes: int) -> float:
    """Work of ``passes`` img2img passes of ``width`` × ``height`` at ``steps``, in 512×512 image-steps."""
    return width * height * steps * passes / WORK_UNIT


def check_work(units: float, what: str) -> None:
    limits = current()
    if limits is not None and units > limits.work_per_job:
        raise ValueError(f"{what} would take {units:.0f} units of work (512×512 image-steps); the limit "
                         f"(limit_work_per_job) is {limits.work_per_job}")


def check_pixels(width: int, height: int, what: str, key: str = "limit_pixels_per_image") -> None:
    """``what`` at ``width`` × ``height`` against the pixel limit option ``key``."""
    options = context.current_options()
    if options is None:
        return
    try:
        limit = int(options.get(key))
    except (AttributeError, KeyError):  # an option this studio does not have: the per-image one
        limit = int(options.get("limit_pixels_per_image"))
        key = "limit_pixels_per_image"
    if width * height > limit:
        raise ValueError(f"{what} would be {width}x{height} = {width * height} pixels; the limit ({key}) is {limit}")
