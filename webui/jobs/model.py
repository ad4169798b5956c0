"""The records of the job queue: a job, its state and its progress. Plain data, no threads."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable


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

    A new instance replaces ``Job.progress`` on every report, so a reader on another thread
    always sees one consistent snapshot. ``step``/``total`` count sampler steps of the current
    image; ``image_index``/``image_count`` position that image within the job. ``fraction`` (0..1)
    covers the whole job; ``eta_seconds`` is the estimated time left (None until known);
    ``preview`` is an opaque object (e.g. a PIL image) from step ``preview_step``.
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

    Fields are written by the queue only; front ends read them. ``owner`` is the user who
    submitted it. ``result`` is whatever the runner returned (for an interrupted job: the partial
    result, with ``interrupted=True``). ``error`` is ``"ExcType: message"`` for a failed job.
    ``done_event`` is set once the job reaches a finished state. ``saved`` holds what the runner
    already saved (image index → record), so a job re-run after a crash does not save it twice.
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
    saved: dict[int, Any] = field(default_factory=dict, repr=False)
    resume_folders: dict[int, str] = field(default_factory=dict, repr=False)  # images a crash may have left
    done_event: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def finished(self) -> bool:
        """True once the job is done, failed or cancelled."""
        return self.state.finished


JobCallback = Callable[[Job], None]
"""Hook called with the job (outside the queue lock, exceptions logged)."""


class QueueFull(RuntimeError):
    """The queue holds as many jobs as allowed (for this user, or in all); the message says which."""
