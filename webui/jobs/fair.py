"""Which queued job runs next: round-robin across owners, oldest first within an owner.

One user's batch of 50 jobs cannot starve another user's single image: the worker takes one
job from each owner in turn, in the order owners first queued. Not thread-safe on its own (the
queue holds its lock around every call).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import Iterator

from webui.jobs.model import Job


class FairPending:
    def __init__(self) -> None:
        self._by_owner: OrderedDict[str | None, deque[Job]] = OrderedDict()
        self._last: str | None | object = _NOBODY  # the owner served last

    def __len__(self) -> int:
        return sum(len(jobs) for jobs in self._by_owner.values())

    def __bool__(self) -> bool:
        return any(self._by_owner.values())

    def count(self, owner: str | None) -> int:
        return len(self._by_owner.get(owner, ()))

    def add(self, job: Job, *, first: bool = False) -> None:
        jobs = self._by_owner.setdefault(job.owner, deque())
        if first:  # a job resumed after a restart goes before its owner's others
            jobs.appendleft(job)
        else:
            jobs.append(job)

    def remove(self, job: Job) -> bool:
        jobs = self._by_owner.get(job.owner)
        if not jobs or job not in jobs:
            return False
        jobs.remove(job)
        return True

    def pop(self) -> Job:
        """The next job in fair order; its owner moves to the end of the round."""
        owner = next(self._rotation())
        job = self._by_owner[owner].popleft()
        self._last = owner
        return job

    def order(self) -> Iterator[Job]:
        """Every queued job in the order they will run if nothing else arrives."""
        queues = {owner: list(jobs) for owner, jobs in self._by_owner.items() if jobs}
        owners = list(self._rotation())
        while queues:
            for owner in owners:
                if queues.get(owner):
                    yield queues[owner].pop(0)
                    if not queues[owner]:
                        del queues[owner]

    def clear(self) -> list[Job]:
        jobs = [job for queue in self._by_owner.values() for job in queue]
        self._by_owner.clear()
        return jobs

    def _rotation(self) -> Iterator[str | None]:
        """Owners with queued jobs, starting after the one served last."""
        owners = [owner for owner, jobs in self._by_owner.items() if jobs]
        if self._last in owners:
            at = owners.index(self._last) + 1
            owners = owners[at:] + owners[:at]
        elif self._last is not _NOBODY:
            # The last owner has nothing queued: continue from where it stood in the round.
            keys = list(self._by_owner)
            if self._last in keys:
                after = keys[keys.index(self._last) + 1:] + keys[:keys.index(self._last)]
                owners = [o for o in after if self._by_owner[o]]
        return iter(owners)


_NOBODY = object()
