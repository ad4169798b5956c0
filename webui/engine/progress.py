"""The job's view of the loop: progress reports, live previews, interrupt and skip.

One ``ProgressCallback`` per job bridges the loop and the job queue's context (webui/jobs.py):
after each step it reports the step, adds a preview when one is due, and stops the stage when
the user interrupted or skipped. Nothing here synchronises the GPU except a due preview.
"""

from __future__ import annotations

from typing import Any, Protocol

from webui.engine.callbacks import LoopCallback, StepContext
from webui.engine.preview import latents_to_preview


class JobControl(Protocol):
    """What the engine needs of a running job (``webui.jobs.JobContext`` provides it)."""

    @property
    def interrupted(self) -> bool: ...

    @property
    def skipped(self) -> bool: ...

    def report(self, step: int, total: int, *, image_index: int = 0, image_count: int = 1,
               preview: object | None = None) -> None: ...

    def preview_wanted(self, step: int) -> bool: ...

    def consume_skip(self) -> bool: ...

    # A job re-run after a crash must not save an image twice. A record describes a saved image:
    # {"path": str, "seed": int, "subseed": int, "infotext": str}.
    def saved_image(self, index: int) -> dict | None: ...

    def image_tag(self, index: int) -> dict[str, str] | None: ...  # PNG text chunks that find it again

    def image_starting(self, index: int, folder: str) -> None: ...

    def record_image(self, index: int, path: str | None, record: dict) -> None: ...


class NoControl:
    """Stand-in job context for direct calls (tests, scripts) outside the queue."""

    interrupted = False
    skipped = False

    def report(self, *args: Any, **kwargs: Any) -> None:
        pass

    def preview_wanted(self, step: int) -> bool:
        return False

    def consume_skip(self) -> bool:
        return False

    def saved_image(self, index: int) -> dict | None:
        return None

    def image_tag(self, index: int) -> dict[str, str] | None:
        return None

    def image_starting(self, index: int, folder: str) -> None:
        pass

    def record_image(self, index: int, path: str | None, record: dict) -> None:
        pass


class ProgressCallback(LoopCallback):
    """Reports every step; previews when due (and enabled); stops on interrupt or skip."""

    order = 1000  # after every callback that may still change the latents

    def __init__(self, control: JobControl, *, previews: bool):
        self.control = control
        self.previews = previews

    def after_step(self, step: StepContext) -> None:
        stage = step.stage
        done = stage.steps_before + stage.run.steps_done(step.index)
        preview = None
        if self.previews and self.control.preview_wanted(done):
            preview = latents_to_preview(step.latents, sdxl=stage.model.spec.is_sdxl)
        self.control.report(done, stage.steps_total, image_index=stage.iteration, image_count=stage.iterations,
                            preview=preview)
        if self.control.interrupted or self.control.skipped:
            step.stop()
