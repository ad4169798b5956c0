"""The job queue: the one path from the front ends to the engine (see queue.py)."""

from webui.jobs.context import JobContext
from webui.jobs.model import Job, JobCallback, JobState, Progress, QueueFull
from webui.jobs.queue import JobQueue, Runner
from webui.jobs.records import JobCodec
from webui.jobs.store import JobStore, StoreError

__all__ = ["Job", "JobCallback", "JobCodec", "JobContext", "JobQueue", "JobState", "JobStore", "Progress",
           "QueueFull", "Runner", "StoreError"]
