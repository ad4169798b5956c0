"""The engine's handle on its running job: progress, stop flags, and the images it saved."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from webui.jobs.model import Job, JobState

if TYPE_CHECKING:
    from webui.jobs.queue import JobQueue

IMAGE_TAG = "sd-studio-job"  # PNG text chunk: {"job": id, "index": n}


class JobContext:
    """The engine's handle on its running job (one per job run).

    The engine calls :meth:`report` after each sampler step and polls
    :attr:`interrupted` and :attr:`skipped` between steps. A typical loop::

        for i in range(n_images):
            if ctx.interrupted:
                break
            for step in range(steps):
                if ctx.interrupted or ctx.skipped:
                    break
                ...
                preview = decode(latents) if ctx.preview_wanted(step + 1) else None
                ctx.report(step + 1, steps, image_index=i, image_count=n_images,
                           preview=preview)
            ctx.consume_skip()
    """

    def __init__(self, queue: "JobQueue", job: Job) -> None:
        self._queue = queue
        self._job = job
        self._interrupt = False
        self._skip = False
        self._cancel = False
        # ETA baseline: clock time and whole-job steps done at the first report
        self._started_mono: float = queue._clock()
        self._base_mono: float | None = None
        self._base_done: int = 0

    @property
    def job(self) -> Job:
        """The job being run (read-only by convention)."""
        return self._job

    @property
    def interrupted(self) -> bool:
        """True when the whole job should stop now (interrupt, cancel or stop)."""
        with self._queue._cond:
            return self._interrupt

    @property
    def skipped(self) -> bool:
        """True when the current image should stop; the job goes on with the
        next image. Stays set until :meth:`consume_skip` is called."""
        with self._queue._cond:
            return self._skip

    def consume_skip(self) -> bool:
        """Clear a pending skip once the engine honoured it; returns whether
        one was pending."""
        with self._queue._cond:
            was, self._skip = self._skip, False
            return was

    def preview_wanted(self, step: int) -> bool:
        """Whether a preview is worth computing at ``step`` (completed steps,
        as passed to :meth:`report`): every ``preview_every`` steps of the
        queue, never when that is 0."""
        every = self._queue.preview_every
        return every > 0 and step > 0 and step % every == 0

    def report(
        self,
        step: int,
        total: int,
        *,
        image_index: int = 0,
        image_count: int = 1,
        preview: object | None = None,
        textinfo: str | None = None,
    ) -> None:
        """Record progress: ``step`` of ``total`` done for image
        ``image_index`` (0-based) of ``image_count``. A ``preview`` replaces
        the previous one; None keeps it. ``textinfo`` defaults to
        ``"Step s/t"`` (prefixed with ``"Image i/n, "`` for several images)."""
        queue = self._queue
        now = queue._clock()
        image_count = max(1, image_count)
        with queue._cond:
            job = self._job
            if job.state is not JobState.RUNNING:
                return
            all_steps = max(0, total) * image_count
            done = max(0, image_index) * max(0, total) + max(0, step)
            fraction = min(1.0, max(0.0, done / all_steps)) if all_steps else 0.0
            eta = self._eta(now, done, all_steps)
            if textinfo is None:
                textinfo = f"Step {step}/{total}"
                if image_count > 1:
                    textinfo = f"Image {image_index + 1}/{image_count}, {textinfo}"
            old = job.progress
            job.progress = replace(
                old,
                step=step,
                total=total,
                image_index=image_index,
                image_count=image_count,
                eta_seconds=eta,
                fraction=fraction,
                preview=old.preview if preview is None else preview,
                preview_step=old.preview_step if preview is None else step,
                textinfo=textinfo,
            )
        queue._fire(queue.on_progress, job)

    def _eta(self, now: float, done: int, all_steps: int) -> float | None:
        """Seconds left for the whole job. The time per step is measured from
        the first report on, so model loading before step 1 does not skew it;
        until a second report exists, from the job start."""
        if self._base_mono is None:
            self._base_mono, self._base_done = now, done
        if done > self._base_done:
            per_step = (now - self._base_mono) / (done - self._base_done)
        elif done > 0:
            per_step = (now - self._started_mono) / done
        else:
            return None
        return max(0.0, per_step * max(0, all_steps - done))

    # --- what was saved (a job re-run after a crash must not save an image twice) ------------

    def saved_image(self, index: int) -> Any:
        """What the runner recorded for image ``index`` before (``record_image``), or None.

        An image whose file was written but not yet recorded when the server died is found in
        its folder by the tag ``image_tag`` put into it.
        """
        record = self._job.saved.get(index)
        folder = self._job.resume_folders.get(index)
        if record is None and folder is not None:
            record = _find_tagged_image(folder, self._job.id, index)
            if record is not None:
                self.record_image(index, record["path"], record)
        return record

    def image_tag(self, index: int) -> dict[str, str]:
        return {IMAGE_TAG: json.dumps({"job": self._job.id, "index": index})}

    def image_starting(self, index: int, folder: str) -> None:
        """Tell the queue where image ``index`` is about to be written."""
        self._queue._persist("image_starting", self._job, index, folder)

    def record_image(self, index: int, path: str | None, record: Any) -> None:
        """Image ``index`` is saved (``path``) or made without saving; ``record`` describes it."""
        self._job.saved[index] = record
        self._queue._persist("image_saved", self._job, index, path, record)


def _find_tagged_image(folder: str, job_id: str, index: int) -> dict | None:
    """The record of image ``index`` of ``job_id`` if its file is in ``folder`` (after a crash)."""
    from webui.outputs import (
        find_tagged,  # PIL only here, not when the queue is imported
    )

    wanted = {"job": job_id, "index": index}
    found = find_tagged(folder, IMAGE_TAG, lambda value: _tag(value) == wanted)
    if found is None:
        return None
    path, info = found
    return {"path": str(path), "seed": None, "subseed": None, "infotext": info.get("parameters", "")}


def _tag(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return None
