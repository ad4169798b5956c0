"""Work limits: what one request may ask of the machine, checked before it is queued.

A 1 MB prompt or a 2048² × 64 × 100 batch must be refused with a sentence, not take the GPU for
an hour. The limits are options (section "Limits", admin-only when logins are on); each refusal
names the limit, its value and what was asked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from webui.request import GenerationRequest
from webui.styles import StyleDatabase, StyledTextTooLong, StyleError

_OPENERS, _CLOSERS = "([{<", ")]}>"
WORK_UNIT = 512 * 512  # one 512×512 image step
# The prompt grammar's parser spends ~3 ms per bracketed group (measured: 1000 "[a:]" took 3.4 s),
# so 20 KB of them held the worker for half a minute. Real prompts use a few dozen.
MAX_BRACKET_GROUPS = 1000


class LimitExceeded(ValueError):
    """A request over a limit; ``field`` is the request field to blame."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Limits:
    prompt_chars: int
    prompt_depth: int
    images_per_job: int
    pixels_per_image: int
    work_per_job: int  # in 512×512-image steps

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> "Limits":
        return cls(int(options["limit_prompt_chars"]), int(options["limit_prompt_depth"]),
                   int(options["limit_images_per_job"]), int(options["limit_pixels_per_image"]),
                   int(options["limit_work_per_job"]))


def nesting_depth(text: str) -> int:
    """The deepest nesting of ( [ { < brackets (unbalanced closers are ignored)."""
    depth = deepest = 0
    for char in text:
        if char in _OPENERS:
            depth += 1
            deepest = max(deepest, depth)
        elif char in _CLOSERS and depth:
            depth -= 1
    return deepest


def work_units(request: GenerationRequest) -> float:
    """Pixels × steps × images over every pass, in 512×512-image steps."""
    images = request.image_count
    width, height = request.render_size
    work = width * height * request.steps * images
    if request.enable_hr:
        width, height = request.hires_size
        work += width * height * (request.hr_second_pass_steps or request.steps) * images
    return work / WORK_UNIT


def check_text(field: str, text: str, limits: Limits) -> None:
    """Raise :class:`LimitExceeded` when one prompt text is too long or nests too deep."""
    if len(text) > limits.prompt_chars:
        raise LimitExceeded(field, f"{field} has {len(text)} characters; the limit (limit_prompt_chars) is "
                                   f"{limits.prompt_chars}")
    depth = nesting_depth(text)
    if depth > limits.prompt_depth:
        raise LimitExceeded(field, f"{field} nests brackets {depth} deep; the limit (limit_prompt_depth) is "
                                   f"{limits.prompt_depth}")
    groups = sum(text.count(opener) for opener in _OPENERS)
    if groups > MAX_BRACKET_GROUPS:
        raise LimitExceeded(field, f"{field} has {groups} bracketed groups ((emphasis), [schedules], <networks>); "
                                   f"at most {MAX_BRACKET_GROUPS}: each costs the prompt parser about 3 ms")


def check_styled(request: GenerationRequest, styles: StyleDatabase, limits: Limits) -> None:
    """The worker applies styles after :func:`check`: check the texts they make too, stopping as
    soon as one outgrows the limit (a "{prompt}{prompt}" style doubles the prompt per use).
    Unknown style names are left to the worker, which reports them."""
    texts = {("prompt", "negative_prompt"): (request.prompt, request.negative_prompt)}
    if request.enable_hr:  # the worker styles the hires prompts too; an empty one is the prompt
        texts[("hr_prompt", "hr_negative_prompt")] = (request.hr_prompt or request.prompt,
                                                     request.hr_negative_prompt or request.negative_prompt)
    names = [name for name in request.styles if styles.get(name) is not None]
    for fields, (prompt, negative) in texts.items():
        try:
            styled = styles.apply(prompt, negative, names, max_chars=limits.prompt_chars)
        except StyledTextTooLong as e:
            raise LimitExceeded("styles", f"{fields[0]} with styles: {e}") from None
        except StyleError:  # deleted since: the worker reports it
            return
        for field, text in zip(fields, styled):
            check_text(f"{field} with styles", text, limits)


def check(request: GenerationRequest, limits: Limits) -> None:
    """Raise :class:`LimitExceeded` for the first limit the request goes over."""
    for field in ("prompt", "negative_prompt", "hr_prompt", "hr_negative_prompt"):
        check_text(field, getattr(request, field), limits)
    if request.image_count > limits.images_per_job:
        raise LimitExceeded("n_iter", f"{request.image_count} images (batch size × batch count); the limit "
                                      f"(limit_images_per_job) is {limits.images_per_job}")
    sizes = [request.render_size] + ([request.hires_size] if request.enable_hr else [])
    for width, height in sizes:
        if width * height > limits.pixels_per_image:
            raise LimitExceeded("width", f"{width}x{height} is {width * height} pixels; the limit "
                                         f"(limit_pixels_per_image) is {limits.pixels_per_image}")
    if request.img2img is not None:
        inputs = [("init_images", image) for image in request.img2img.init_images]
        if request.img2img.inpaint is not None:
            inputs.append(("mask", request.img2img.inpaint.mask))
        for field, image in inputs:
            if image.width * image.height > limits.pixels_per_image:
                raise LimitExceeded(field, f"{field}: a {image.width}x{image.height} image is "
                                           f"{image.width * image.height} pixels; the limit (limit_pixels_per_image) "
                                           f"is {limits.pixels_per_image}")
    work = work_units(request)
    if work > limits.work_per_job:
        raise LimitExceeded("steps", f"the job would take {work:.0f} units of work (512×512 image-steps: pixels × "
                                     f"steps × images over every pass); the limit (limit_work_per_job) is "
                                     f"{limits.work_per_job}")
