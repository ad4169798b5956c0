"""The callback points of the denoising loop: the one place extensions, ControlNet and the engine's
own features (previews, interrupt, tiling) hook into generation.

A callback is an object with any of the methods of :class:`LoopCallback`; the loop calls them in
``order`` (lower first; ties in the order they were added). The points, in the order they occur::

    before_batch(batch)        a batch is about to start; batch.prompts / negative_prompts may be replaced
    patch_models(stage)        context manager around a stage's sampling and its decode
    before_loop(stage)         a stage is about to sample; ``stage.latents`` may be replaced
    before_unet(call)          each UNet call; add UNet kwargs (ControlNet residuals) to call.unet_kwargs
    after_unet(output)         the UNet's raw batch output, before guidance; output.output may be replaced
    after_cfg(step)            the guided prediction; read or replace step.noise_pred / step.denoised (x0)
    after_step(step)           after the scheduler step; step.latents may be replaced; step.stop() ends the stage
    after_stage(stage)         a stage ended (finished or stopped)
    after_decode(decoded)      each image of a batch after decoding; decoded.images may be replaced
    before_save(saving)        an image is about to be saved; saving.image / saving.infotext may be replaced
    after_save(saving)         an image was saved to saving.path

Callbacks run on the job's worker thread, between GPU calls, while the job holds the model lock:
they must not wait for anything that waits for a job (loading a model, changing options).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ContextManager, Iterator, Sequence

import torch
from PIL import Image

if TYPE_CHECKING:  # imported for annotations only; the loop imports this module
    from webui.engine.denoiser import BatchLayout
    from webui.engine.sampling import SamplingRun
    from webui.models.manager import ActiveModel

@dataclass
class BatchStart:
    """A batch about to run: its seeds and, per image, the prompts it will be made from.

    The prompts are styled text with extra-network tags (as infotext records them); images
    with different prompts in one batch are sampled in groups of equal prompts.
    """

    iteration: int  # batch number within the job (0-based)
    seeds: tuple[int, ...]
    subseeds: tuple[int, ...]
    prompts: list[str]
    negative_prompts: list[str]


@dataclass
class StageContext:
    """One stage of a job: which kind, which model, its sampling run and the latents it carries."""

    kind: str  # "base", "hires" or "refiner"
    model: ActiveModel
    run: SamplingRun
    latents: torch.Tensor
    seeds: tuple[int, ...]
    iteration: int  # batch number within the job (0-based)
    iterations: int = 1  # batches in the job
    steps_before: int = 0  # sampling steps of this batch done in earlier passes
    steps_total: int = 0  # sampling steps of the whole batch (all passes)
    stopped: bool = False  # the stage ended early (interrupt, skip, a callback's stop())


@dataclass
class UNetCall:
    """The inputs of one batched UNet call; ``unet_kwargs`` are passed to the UNet as well.

    ``layout`` tells which rows of the batch are the unconditional half and which are each AND
    part of the prompt (ControlNet's guess mode scales only the conditional rows).
    """

    stage: StageContext
    step: int  # sampling step of the stage's schedule (0-based)
    index: int  # index into the stage's timesteps (second-order samplers take two per step)
    timestep: torch.Tensor
    sample: torch.Tensor
    encoder_hidden_states: torch.Tensor
    layout: BatchLayout
    added_cond_kwargs: dict[str, torch.Tensor] | None = None
    unet_kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class UNetOutput:
    """The UNet's output for one call, all rows (see ``call.layout``), before guidance combines them."""

    call: UNetCall
    output: torch.Tensor


@dataclass
class StepContext:
    """One sampling step: the latents before it, the guided prediction, the latents after it."""

    stage: StageContext
    step: int
    index: int
    timestep: torch.Tensor
    sample: torch.Tensor  # the latents this step started from
    noise_pred: torch.Tensor  # the model output after CFG (epsilon or v, as the model predicts)
    latents: torch.Tensor | None = None  # after the scheduler step (``after_step`` on); replaceable
    _stop: bool = False

    @property
    def denoised(self) -> torch.Tensor:
        """The prediction of the clean latents (x0) at this step."""
        return self.stage.run.to_denoised(self.noise_pred, self.sample, self.index)

    @denoised.setter
    def denoised(self, value: torch.Tensor) -> None:
        self.noise_pred = self.stage.run.from_denoised(value, self.sample, self.index)

    def stop(self) -> None:
        """End this stage after the current step (the job's images keep what was made)."""
        self._stop = True

    @property
    def stop_requested(self) -> bool:
        return self._stop


@dataclass
class DecodedBatch:
    """Images of one batch right after decoding, before they are saved."""

    stage: StageContext
    images: list[Image.Image]


@dataclass
class ImageSaving:
    """One finished image on its way to disk (``before_save``) or just written (``after_save``)."""

    index: int  # the image's number within the job
    image: Image.Image
    infotext: str  # the "parameters" text chunk; empty when infotext is not written
    seed: int
    folder: Path
    path: Path | None = None  # the file written (after_save)


class LoopCallback:
    """Base class for loop callbacks: override the points you need (all are no-ops here)."""

    order: int = 0

    def before_batch(self, batch: BatchStart) -> None:
        pass

    def patch_models(self, stage: StageContext) -> ContextManager[None]:
        return contextlib.nullcontext()

    def before_loop(self, stage: StageContext) -> None:
        pass

    def before_unet(self, call: UNetCall) -> None:
        pass

    def after_unet(self, output: UNetOutput) -> None:
        pass

    def after_cfg(self, step: StepContext) -> None:
        pass

    def after_step(self, step: StepContext) -> None:
        pass

    def after_stage(self, stage: StageContext) -> None:
        pass

    def after_decode(self, decoded: DecodedBatch) -> None:
        pass

    def before_save(self, saving: ImageSaving) -> None:
        pass

    def after_save(self, saving: ImageSaving) -> None:
        pass


class Callbacks:
    """An ordered set of callbacks, called point by point."""

    def __init__(self, callbacks: Sequence[object] = ()):
        indexed = list(enumerate(callbacks))
        self._items = [cb for _, cb in sorted(indexed, key=lambda pair: (getattr(pair[1], "order", 0), pair[0]))]

    def __iter__(self) -> Iterator[object]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def _each(self, point: str) -> Iterator[Any]:
        for callback in self._items:
            method = getattr(callback, point, None)
            if method is not None:
                yield method

    def _call(self, point: str, context: object) -> None:
        for method in self._each(point):
            method(context)

    def before_batch(self, batch: BatchStart) -> None:
        self._call("before_batch", batch)

    @contextlib.contextmanager
    def patch_models(self, stage: StageContext) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            for method in self._each("patch_models"):
                stack.enter_context(method(stage))
            yield

    def before_loop(self, stage: StageContext) -> None:
        self._call("before_loop", stage)

    def before_unet(self, call: UNetCall) -> None:
        self._call("before_unet", call)

    def after_unet(self, output: UNetOutput) -> None:
        self._call("after_unet", output)

    def after_cfg(self, step: StepContext) -> None:
        self._call("after_cfg", step)

    def after_step(self, step: StepContext) -> None:
        self._call("after_step", step)

    def after_stage(self, stage: StageContext) -> None:
        self._call("after_stage", stage)

    def after_decode(self, decoded: DecodedBatch) -> None:
        self._call("after_decode", decoded)

    def before_save(self, saving: ImageSaving) -> None:
        self._call("before_save", saving)

    def after_save(self, saving: ImageSaving) -> None:
        self._call("after_save", saving)
