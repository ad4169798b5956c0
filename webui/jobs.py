"""In-process job queue: one worker thread per device, FIFO, one job at a time.

This module is the only path from the front ends (Gradio UI, ``/sdapi/v1``,
``/api/v1/jobs``) to the engine. It is deliberately narrow so that a
distributed backend could later sit behind the same interface::

    queue = JobQueue(runner)                 # runner(payload, ctx) -> result
    queue.start()
    job = queue.submit(payload, owner=None)  # -> Job, state "queued"
    queue.wait(job.id, timeout=None)         # -> Job (check job.state.finished)
    queue.get(job.id); queue.cancel(job.id); queue.interrupt(); queue.skip()

The engine sees only a :class:`JobContext`: it calls ``ctx.report(...)`` after
each sampler step and polls ``ctx.interrupted`` / ``ctx.skipped`` between steps.

Payloads, results and previews are opaque objects here: this module imports
neither torch, gradio, fastapi nor PIL. All mutable queue state lives behind
one :class:`threading.Condition`; callers block on events/conditions, never by
polling.

Job life: ``queued -> running -> done | failed | cancelled`` (a queued job may
also go straight to ``cancelled``).
"""

from __future__ import annotations

import builtins
import logging
import threading
import time
import uuid
from collections import OrderedDict, deque
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any, Callable

__all__ = [
    "JobState",
    "Progress",
    "Job",
    "JobContext",
    "JobQueue",
    "Runner",
    "JobCallback",
]

log = logging.getLogger(__name__)


class JobState(str, Enum):
    """Life-cycle state of a :class:`Job`. Values are the lowercase names."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        """True for the terminal states (done, failed, cancelled)."""
        return self in _FINISHED_STATES


_FINISHED_STATES = frozenset({JobState.DONE, JobState.FAILED, JobState.CANCELLED})


@dataclass(frozen=True)
class Progress:
    """Snapshot of a job's progress.

    A new instance replaces ``Job.progress`` on every report, so a reader on
    another thread always sees one consistent snapshot.

    ``step``/``total`` count sampler steps of the current image;
    ``image_index``/``image_count`` position that image within the job.
    ``fraction`` (0..1) covers the whole job. ``eta_seconds`` is the estimated
    time left for the whole job, from the time per step measured so far (None
    until it can be estimated). ``preview`` is an opaque object (e.g. a PIL
    image) from step ``preview_step``; it stays until a newer one arrives.
    ``started_at`` is the wall-clock time (``time.time()``) the job started
    running, None while queued.
    """

    step: int = 0
    total: int = 0
    image_index: int = 0
    image_count: int = 1
    started_at: float | None = None
    eta_seconds: float | None = None
    fraction: float = 0.0
    preview: Any = None
    preview_step: int | None = None
    textinfo: str = ""


@dataclass(eq=False)
class Job:
    """One request in the queue. Compared by identity.

    Fields are written by the queue only; front ends read them. ``result`` is
    whatever the runner returned (for an interrupted job: the partial result,
    with ``interrupted=True``). ``error`` is ``"ExcType: message"`` for a
    failed job. ``done_event`` is set once the job reaches a finished state.
    """

    payload: Any
    owner: str | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    state: JobState = JobState.QUEUED
    progress: Progress = field(default_factory=Progress)
    result: Any = None
    error: str | None = None
    interrupted: bool = False
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    done_event: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def finished(self) -> bool:
        """True once the job is done, failed or cancelled."""
        return self.state.finished


Runner = Callable[[Any, "JobContext"], Any]
"""``runner(payload, ctx) -> result``; runs on the worker thread."""

JobCallback = Callable[[Job], None]
"""Hook called with the job (outside the queue lock, exceptions logged)."""


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

    def __init__(self, queue: JobQueue, job: Job) -> None:
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


class JobQueue:
    """FIFO job queue with exactly one worker thread (one per device).

    ``runner(payload, ctx)`` runs each job on the worker thread. Its return
    value becomes ``job.result`` (state ``done``, also after an interrupt, with
    ``job.interrupted`` set). An exception marks the job ``failed`` with
    ``"ExcType: message"``, logs the traceback, and the worker continues.

    ``preview_every`` (public, may be changed live): steps between previews,
    0 = none. ``max_finished``: finished jobs kept for lookup (oldest evicted
    first; queued and running jobs are never evicted). ``clock``: monotonic
    clock used for ETAs (injectable for tests). ``name``: worker thread name.

    Hooks: ``on_change`` callbacks get the job on every state change
    (queued, running, done/failed/cancelled); ``on_progress`` callbacks on
    every report. Both run outside the lock, on the thread causing the change
    (the worker for most); exceptions in them are logged and ignored.
    """

    def __init__(
        self,
        runner: Runner,
        *,
        preview_every: int = 5,
        max_finished: int = 200,
        clock: Callable[[], float] = time.monotonic,
        name: str = "jobs-worker",
    ) -> None:
        self._runner = runner
        self.preview_every = preview_every
        self.max_finished = max(0, max_finished)
        self._clock = clock
        self._name = name
        self.on_change: list[JobCallback] = []
        self.on_progress: list[JobCallback] = []

        self._cond = threading.Condition()
        self._jobs: dict[str, Job] = {}  # every known job, in submission order
        self._pending: deque[Job] = deque()
        self._finished: OrderedDict[str, None] = OrderedDict()  # finish order
        self._current: tuple[Job, JobContext] | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False

    # ---------------------------------------------------------------- life

    def start(self) -> None:
        """Start the worker thread (no-op when already running). Jobs
        submitted before start wait in the queue. May be called again after
        :meth:`stop`."""
        with self._cond:
            if self._thread is not None and self._thread.is_alive():
                if self._stopping:
                    raise RuntimeError("job queue is still stopping")
                return
            self._stopping = False
            self._thread = threading.Thread(target=self._work, name=self._name, daemon=True)
            self._thread.start()

    def stop(self, timeout: float | None = None) -> bool:
        """Shut down: interrupt the running job (it ends ``done`` with its
        partial result and ``interrupted=True``, as the runner returns), cancel
        every queued job, and join the worker for up to ``timeout`` seconds.
        Further :meth:`submit` calls raise ``RuntimeError`` until
        :meth:`start`. Returns True when the worker has exited."""
        with self._cond:
            self._stopping = True
            cancelled = builtins.list(self._pending)
            self._pending.clear()
            for job in cancelled:
                self._finish_locked(job, JobState.CANCELLED)
            if self._current is not None:
                self._current[1]._interrupt = True
            self._cond.notify_all()
            thread = self._thread
        for job in cancelled:
            self._fire(self.on_change, job)
        if thread is None:
            return True
        if thread is not threading.current_thread():
            thread.join(timeout)
        return not thread.is_alive()

    def __enter__(self) -> JobQueue:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---------------------------------------------------------- submitting

    def submit(self, payload: Any, owner: str | None = None) -> Job:
        """Append a job to the queue and return it (state ``queued``)."""
        job = Job(payload=payload, owner=owner)
        with self._cond:
            if self._stopping:
                raise RuntimeError("job queue is stopped")
            self._jobs[job.id] = job
            self._pending.append(job)
            self._cond.notify_all()
        self._fire(self.on_change, job)
        return job

    def run(self, payload: Any, owner: str | None = None, timeout: float | None = None) -> Job:
        """Submit and wait (for synchronous endpoints). On timeout the job is
        returned unfinished and keeps its place; the caller may cancel it."""
        job = self.submit(payload, owner)
        job.done_event.wait(timeout)
        return job

    def wait(self, job_id: str, timeout: float | None = None) -> Job:
        """Block until the job is finished or ``timeout`` seconds passed, then
        return it (check ``job.finished``). ``KeyError`` for an unknown or
        evicted id."""
        with self._cond:
            job = self._jobs.get(job_id)
        if job is None:
            raise KeyError(job_id)
        job.done_event.wait(timeout)
        return job

    # -------------------------------------------------------------- lookup

    def get(self, job_id: str) -> Job | None:
        """The job with this id, or None (unknown or evicted)."""
        with self._cond:
            return self._jobs.get(job_id)

    def list(self, owner: str | None = None) -> builtins.list[Job]:
        """Known jobs (queued, running and kept finished ones) in submission
        order; only those of ``owner`` when given."""
        with self._cond:
            jobs = builtins.list(self._jobs.values())
        if owner is None:
            return jobs
        return [j for j in jobs if j.owner == owner]

    def current(self) -> Job | None:
        """The running job, if any."""
        with self._cond:
            return self._current[0] if self._current is not None else None

    def queue_position(self, job_id: str) -> int | None:
        """How many jobs will run before this one starts: 0 for the running
        job (and for the next queued job while nothing runs), None for
        finished or unknown jobs."""
        with self._cond:
            if self._current is not None and self._current[0].id == job_id:
                return 0
            ahead = 1 if self._current is not None else 0
            for i, job in enumerate(self._pending):
                if job.id == job_id:
                    return ahead + i
            return None

    # ------------------------------------------------------------ control

    def cancel(self, job_id: str) -> bool:
        """Cancel a job. A queued job becomes ``cancelled`` at once and never
        runs; a running job is interrupted and ends ``cancelled`` when the
        runner returns. False when the job is unknown or already finished."""
        with self._cond:
            job = self._jobs.get(job_id)
            if job is None or job.finished:
                return False
            if job.state is JobState.RUNNING:
                assert self._current is not None and self._current[0] is job
                ctx = self._current[1]
                ctx._cancel = ctx._interrupt = True
                return True
            self._pending.remove(job)
            self._finish_locked(job, JobState.CANCELLED)
        self._fire(self.on_change, job)
        return True

    def interrupt(self) -> bool:
        """Stop the running job after its current step (``/sdapi/v1/interrupt``).
        It ends ``done`` with its partial result and ``interrupted=True``.
        Returns False when nothing runs."""
        with self._cond:
            if self._current is None:
                return False
            self._current[1]._interrupt = True
            return True

    def skip(self) -> bool:
        """Stop the running job's current image; it goes on with the next
        (``/sdapi/v1/skip``). Returns False when nothing runs."""
        with self._cond:
            if self._current is None:
                return False
            self._current[1]._skip = True
            return True

    def current_flags(self) -> tuple[bool, bool]:
        """(interrupt requested, skip of the current image pending) for the running job."""
        with self._cond:
            if self._current is None:
                return False, False
            ctx = self._current[1]
            return ctx._interrupt, ctx._skip

    # ------------------------------------------------------------ internal

    def _work(self) -> None:
        """Worker loop: take the oldest queued job, run it, record the end."""
        while True:
            with self._cond:
                while not self._pending and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                job = self._pending.popleft()
                ctx = JobContext(self, job)
                job.state = JobState.RUNNING
                job.started_at = time.time()
                job.progress = Progress(started_at=job.started_at, textinfo="Starting")
                self._current = (job, ctx)
            self._fire(self.on_change, job)

            result: Any = None
            error: str | None = None
            try:
                result = self._runner(job.payload, ctx)
            except Exception as e:  # the worker must survive any runner error
                error = f"{type(e).__name__}: {e}"
                log.exception("job %s failed", job.id)
            except BaseException as e:  # e.g. SystemExit: record, then let it end the thread
                with self._cond:
                    self._end_running_locked(job, ctx, None, f"{type(e).__name__}: {e}")
                self._fire(self.on_change, job)
                raise

            with self._cond:
                self._end_running_locked(job, ctx, result, error)
            self._fire(self.on_change, job)

    def _end_running_locked(self, job: Job, ctx: JobContext, result: Any, error: str | None) -> None:
        job.interrupted = ctx._interrupt
        if ctx._cancel:
            state = JobState.CANCELLED
            job.result = result
        elif error is not None:
            state = JobState.FAILED
            job.error = error
        else:
            state = JobState.DONE
            job.result = result
        if state is JobState.DONE:
            job.progress = replace(
                job.progress,
                eta_seconds=0.0,
                fraction=1.0 if not job.interrupted else job.progress.fraction,
                textinfo="Interrupted" if job.interrupted else "Done",
            )
        else:
            job.progress = replace(job.progress, eta_seconds=None, textinfo=state.value.capitalize())
        self._current = None
        self._finish_locked(job, state)

    def _finish_locked(self, job: Job, state: JobState) -> None:
        """Move a job to a finished state, keep it for lookup, evict the
        oldest finished jobs beyond ``max_finished``, and wake waiters."""
        job.state = state
        job.finished_at = time.time()
        self._finished[job.id] = None
        while len(self._finished) > self.max_finished:
            old_id, _ = self._finished.popitem(last=False)
            self._jobs.pop(old_id, None)
        job.done_event.set()
        self._cond.notify_all()

    @staticmethod
    def _fire(callbacks: builtins.list[JobCallback], job: Job) -> None:
        for cb in builtins.list(callbacks):
            try:
                cb(job)
            except Exception:
                log.exception("job callback %r failed", cb)
