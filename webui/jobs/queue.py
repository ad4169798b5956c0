"""The job queue: one worker thread per device, fair across users, optionally kept on disk.

The only path from the front ends (Gradio UI, ``/sdapi/v1``, ``/api/v1/jobs``) to the engine.
Deliberately narrow, so a distributed backend could later sit behind the same interface::

    queue = JobQueue(runner, store=JobStore(path), codec=codec)   # runner(payload, ctx) -> result
    queue.recover()                          # after a restart: unfinished jobs run again
    queue.start()
    job = queue.submit(payload, owner="ann") # -> Job "queued"; QueueFull past the caps
    queue.wait(job.id, timeout=None)
    queue.get(job.id); queue.cancel(job.id); queue.interrupt(owner); queue.skip(owner)

Order: round-robin across owners, oldest first within an owner (webui/jobs/fair.py). The
engine sees only a :class:`JobContext`. Payloads and results are opaque here; with a store, the
codec turns them into text and back. This module imports neither torch, gradio, fastapi nor PIL.

Job life: ``queued -> running -> done | failed | cancelled`` (a queued job may also go straight
to ``cancelled``). A runner exception marks the job failed with its message; the worker goes on.
"""

from __future__ import annotations

import builtins
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import replace
from typing import Any, Callable

from webui.jobs.context import JobContext
from webui.jobs.fair import FairPending
from webui.jobs.model import Job, JobCallback, JobState, Progress, QueueFull
from webui.jobs.records import JobCodec, JobRecords
from webui.jobs.store import JobStore

log = logging.getLogger(__name__)

Runner = Callable[[Any, JobContext], Any]
"""``runner(payload, ctx) -> result``; runs on the worker thread."""


class JobQueue:
    """Fair job queue with exactly one worker thread (one per device).

    ``max_per_owner`` / ``max_total``: queued jobs allowed (0 = no cap); past them ``submit``
    raises :class:`QueueFull`. ``max_finished``: finished jobs kept in memory for lookup (older
    ones are read back from the store). ``preview_every`` (live): steps between previews.
    Hooks: ``on_change`` on every state change, ``on_progress`` on every report; both run
    outside the lock and their exceptions are logged.
    """

    def __init__(
        self,
        runner: Runner,
        *,
        store: JobStore | None = None,
        codec: JobCodec | None = None,
        preview_every: int = 5,
        max_finished: int = 200,
        max_per_owner: int = 0,
        max_total: int = 0,
        clock: Callable[[], float] = time.monotonic,
        name: str = "jobs-worker",
    ) -> None:
        if store is not None and codec is None:
            raise ValueError("a job store needs a codec")
        self._runner = runner
        self._records = JobRecords(store, codec) if store is not None and codec is not None else None
        self.preview_every = preview_every
        self.max_finished = max(0, max_finished)
        self.max_per_owner = max_per_owner
        self.max_total = max_total
        self._clock = clock
        self._name = name
        self.on_change: list[JobCallback] = []
        self.on_progress: list[JobCallback] = []

        self._cond = threading.Condition()
        self._jobs: dict[str, Job] = {}  # known jobs in memory, in submission order
        self._pending = FairPending()
        self._finished: OrderedDict[str, None] = OrderedDict()  # finish order
        self._current: tuple[Job, JobContext] | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False

    # ---------------------------------------------------------------- life

    def start(self) -> None:
        """Start the worker thread (no-op when running). Jobs submitted before wait in the queue."""
        with self._cond:
            if self._thread is not None and self._thread.is_alive():
                if self._stopping:
                    raise RuntimeError("job queue is still stopping")
                return
            self._stopping = False
            self._thread = threading.Thread(target=self._work, name=self._name, daemon=True)
            self._thread.start()

    def stop(self, timeout: float | None = None) -> bool:
        """Shut down: interrupt the running job, cancel every queued one, join the worker.

        With a store the queued jobs are *not* cancelled on disk: they run after the next start.
        Further :meth:`submit` calls raise ``RuntimeError``. Returns True when the worker exited.
        """
        with self._cond:
            self._stopping = True
            cancelled = self._pending.clear()
            for job in cancelled:
                self._finish_locked(job, JobState.CANCELLED, persist=False)
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

    def recover(self) -> int:
        """Take back the store's unfinished jobs (the interrupted one first) and recent history.

        Returns how many jobs will run again. Call before :meth:`start`.
        """
        if self._records is None:
            return 0
        history, revived = self._records.recent(self.max_finished), self._records.unfinished()
        with self._cond:
            for job in history:
                self._jobs[job.id] = job
                self._finished[job.id] = None
            for job in revived:
                self._jobs[job.id] = job
                self._pending.add(job)
        return len(revived)

    # ---------------------------------------------------------- submitting

    def submit(self, payload: Any, owner: str | None = None) -> Job:
        """Append a job (state ``queued``); :class:`QueueFull` past the caps."""
        job = Job(payload=payload, owner=owner)
        with self._cond:
            if self._stopping:
                raise RuntimeError("job queue is stopped")
            if self.max_total and len(self._pending) >= self.max_total:
                raise QueueFull(f"the queue is full ({self.max_total} jobs waiting); try again later")
            if self.max_per_owner and self._pending.count(owner) >= self.max_per_owner:
                raise QueueFull(f"you have {self.max_per_owner} jobs waiting, the most allowed; "
                                "wait for some to finish")
            if self._records is not None:
                self._records.add(job)  # before it can run: a crash from here on finds it on disk
            self._jobs[job.id] = job
            self._pending.add(job)
            self._cond.notify_all()
        self._fire(self.on_change, job)
        return job

    def run(self, payload: Any, owner: str | None = None, timeout: float | None = None) -> Job:
        """Submit and wait (for synchronous endpoints). On timeout the job is returned unfinished."""
        job = self.submit(payload, owner)
        job.done_event.wait(timeout)
        return job

    def wait(self, job_id: str, timeout: float | None = None) -> Job:
        """Block until the job is finished or ``timeout`` passed; ``KeyError`` for an unknown id."""
        job = self.get(job_id)
        if job is None:
            raise KeyError(job_id)
        job.done_event.wait(timeout)
        return job

    # -------------------------------------------------------------- lookup

    def get(self, job_id: str) -> Job | None:
        """The job with this id (from memory, else from the store), or None."""
        with self._cond:
            job = self._jobs.get(job_id)
        if job is not None or self._records is None:
            return job
        return self._records.finished_job(job_id)

    def list(self, owner: str | None = None) -> builtins.list[Job]:
        """Known jobs in submission order; only those of ``owner`` when given."""
        with self._cond:
            jobs = builtins.list(self._jobs.values())
        return jobs if owner is None else [j for j in jobs if j.owner == owner]

    def current(self, owner: str | None = None) -> Job | None:
        """The running job (only if it is ``owner``'s, when given)."""
        with self._cond:
            job = self._current[0] if self._current is not None else None
        return job if job is None or owner is None or job.owner == owner else None

    def queue_position(self, job_id: str) -> int | None:
        """How many jobs run before this one starts (0: running, or next); None when finished."""
        with self._cond:
            if self._current is not None and self._current[0].id == job_id:
                return 0
            ahead = 1 if self._current is not None else 0
            for i, job in enumerate(self._pending.order()):
                if job.id == job_id:
                    return ahead + i
            return None

    def forget_finished(self, older_than_seconds: float) -> int:
        """Drop finished jobs older than this from the store (their files stay); how many."""
        if self._records is None or older_than_seconds <= 0:
            return 0
        return self._records.forget_older_than(older_than_seconds)

    def waiting(self) -> int:
        with self._cond:
            return len(self._pending)

    # ------------------------------------------------------------ control

    def cancel(self, job_id: str) -> bool:
        """Cancel a job: a queued one never runs, a running one stops after its step."""
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

    def interrupt(self, owner: str | None = None, job_id: str | None = None) -> bool:
        """Stop the running job after its step (only ``owner``'s, or only job ``job_id``, when
        given); False when no such job runs."""
        return self._flag("_interrupt", owner, job_id)

    def skip(self, owner: str | None = None, job_id: str | None = None) -> bool:
        """Stop the running job's current image (as :meth:`interrupt` chooses the job)."""
        return self._flag("_skip", owner, job_id)

    def _flag(self, name: str, owner: str | None, job_id: str | None) -> bool:
        with self._cond:
            if self._current is None:
                return False
            job = self._current[0]
            if (owner is not None and job.owner != owner) or (job_id is not None and job.id != job_id):
                return False
            setattr(self._current[1], name, True)
            return True

    def current_flags(self) -> tuple[bool, bool]:
        """(interrupt requested, skip pending) for the running job."""
        with self._cond:
            if self._current is None:
                return False, False
            ctx = self._current[1]
            return ctx._interrupt, ctx._skip

    # ------------------------------------------------------------ internal

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                job = self._pending.pop()
                ctx = JobContext(self, job)
                job.state = JobState.RUNNING
                job.started_at = time.time()
                job.progress = Progress(started_at=job.started_at, textinfo="Starting")
                self._current = (job, ctx)
                self._persist_locked("started", job)
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
            state, job.result = JobState.CANCELLED, result
        elif error is not None:
            state, job.error = JobState.FAILED, error
        else:
            state, job.result = JobState.DONE, result
        if self._stopping and job.interrupted and not ctx._cancel and self._records is not None:
            # Stopped by a shutdown, not by its owner: left "running" on disk, it runs again after
            # the restart (keeping the images it saved), and this run is not counted as a crash.
            self._persist_locked("stopped", job)
            self._current = None
            job.state = JobState.CANCELLED
            job.done_event.set()
            self._cond.notify_all()
            return
        if state is JobState.DONE:
            job.progress = replace(job.progress, eta_seconds=0.0,
                                   fraction=job.progress.fraction if job.interrupted else 1.0,
                                   textinfo="Interrupted" if job.interrupted else "Done")
        else:
            job.progress = replace(job.progress, eta_seconds=None, textinfo=state.value.capitalize())
        self._current = None
        self._finish_locked(job, state)

    def _finish_locked(self, job: Job, state: JobState, persist: bool = True) -> None:
        """Move a job to a finished state, keep it for lookup, evict the oldest, wake waiters."""
        job.state = state
        job.finished_at = time.time()
        if persist:
            self._persist_locked("finished", job)
        self._finished[job.id] = None
        while len(self._finished) > self.max_finished:
            old_id, _ = self._finished.popitem(last=False)
            self._jobs.pop(old_id, None)
        job.done_event.set()
        self._cond.notify_all()

    def _persist(self, event: str, job: Job, *args: Any) -> None:
        with self._cond:
            self._persist_locked(event, job, *args)

    def _persist_locked(self, event: str, job: Job, *args: Any) -> None:
        # Under the lock, so the disk sees a job's changes in the order they happened.
        if self._records is not None:
            self._records.write(event, job, *args)

    @staticmethod
    def _fire(callbacks: builtins.list[JobCallback], job: Job) -> None:
        for cb in builtins.list(callbacks):
            try:
                cb(job)
            except Exception:
                log.exception("job callback %r failed", cb)
