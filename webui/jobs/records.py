"""The queue's side of its store: jobs written as they change, read back after a restart.

The store (store.py) keeps text; the codec turns payloads and results into text and back. A
failing disk is logged here and never fails a job: the job goes on in memory.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol

from webui.jobs.model import Job, JobState
from webui.jobs.store import JobStore, StoredJob, StoreError

log = logging.getLogger(__name__)

# A job the server was running when it died this many times is failed, not run again: it may be
# what kills the server (out of memory, a driver crash).
MAX_CRASHED_RUNS = 2


class JobCodec(Protocol):
    """Payloads and results as text, for the store."""

    def dump_payload(self, payload: Any) -> str: ...

    def load_payload(self, text: str) -> Any: ...

    def dump_result(self, result: Any) -> str | None: ...

    def load_result(self, text: str | None, images: dict[int, dict]) -> Any: ...


class JobRecords:
    def __init__(self, store: JobStore, codec: JobCodec):
        self.store = store
        self.codec = codec

    # --- writing ------------------------------------------------------------------------------

    def add(self, job: Job) -> None:
        """A new job; raises :class:`StoreError` (the submission is refused, not lost later)."""
        self.store.add(job.id, job.owner, self.codec.dump_payload(job.payload), job.created_at)

    def write(self, event: str, job: Job, *args: Any) -> None:
        """One change of a running or finishing job: started, stopped (by a clean shutdown), finished,
        image_starting, image_saved."""
        try:
            if event == "started":
                self.store.started(job.id, job.started_at or time.time())
            elif event == "stopped":
                self.store.stopped(job.id)
            elif event == "finished":
                result = self.codec.dump_result(job.result) if job.state is JobState.DONE else None
                self.store.finished(job.id, job.state.value, job.finished_at or time.time(), job.error,
                                    job.interrupted, result)
            elif event == "image_starting":
                self.store.image_starting(job.id, *args)
            elif event == "image_saved":
                self.store.image_saved(job.id, *args)
        except StoreError as e:
            log.error("job %s: %s", job.id, e)

    def forget_older_than(self, seconds: float) -> int:
        try:
            return self.store.forget_older_than(seconds)
        except StoreError as e:
            log.error("%s", e)
            return 0

    # --- reading ------------------------------------------------------------------------------

    def unfinished(self) -> list[Job]:
        """Jobs to run again, in order, each knowing the images it had saved before."""
        jobs = []
        for stored in self.store.unfinished():
            if stored.runs >= MAX_CRASHED_RUNS:
                self.store.finished(stored.id, "failed", time.time(), f"the server stopped while this job ran, "
                                    f"{stored.runs} times (a crash?); it is not run again", True, None)
                continue
            try:
                payload = self.codec.load_payload(stored.payload)
            except Exception as e:  # a payload this version cannot read: end it, say why
                self.store.finished(stored.id, "failed", time.time(), f"could not resume: {e}", False, None)
                continue
            job = Job(payload=payload, owner=stored.owner, id=stored.id, created_at=stored.created_at)
            job.saved = {i: image["record"] for i, image in stored.images.items() if image["record"] is not None}
            job.resume_folders = {i: image["folder"] for i, image in stored.images.items()
                                  if image["record"] is None and image["folder"]}
            jobs.append(job)
        return jobs

    def recent(self, limit: int) -> list[Job]:
        """The most recently finished jobs, oldest first."""
        return [self._finished(stored) for stored in self.store.recent(limit)]

    def finished_job(self, job_id: str) -> Job | None:
        stored = self.store.get(job_id)
        return self._finished(stored) if stored is not None and JobState(stored.state).finished else None

    def _finished(self, stored: StoredJob) -> Job:
        job = Job(payload=None, owner=stored.owner, id=stored.id, state=JobState(stored.state),
                  error=stored.error, interrupted=stored.interrupted, created_at=stored.created_at,
                  started_at=stored.started_at, finished_at=stored.finished_at)
        try:
            job.payload = self.codec.load_payload(stored.payload)
            if job.state is JobState.DONE:
                job.result = self.codec.load_result(stored.result, stored.images)
        except Exception as e:  # written by another version: keep what can be shown
            log.warning("job %s from the store: %s", stored.id, e)
        job.done_event.set()
        return job
