"""The shared queue: round-robin across users, caps, owner-scoped stop, and its SQLite store."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from webui.jobs import JobContext, JobQueue, JobState, QueueFull
from webui.jobs.store import JobStore

T = 5.0


class Blocking:
    """A runner that records the order of payloads and holds the first one until released."""

    def __init__(self) -> None:
        self.ran: list[str] = []
        self.first_started = threading.Event()
        self.release = threading.Event()

    def __call__(self, payload: str, ctx: JobContext) -> str:
        self.ran.append(payload)
        if len(self.ran) == 1:
            self.first_started.set()
            self.release.wait(T)
        return f"done:{payload}"


class JsonCodec:
    def dump_payload(self, payload: Any) -> str:
        return json.dumps(payload)

    def load_payload(self, text: str) -> Any:
        return json.loads(text)

    def dump_result(self, result: Any) -> str | None:
        return json.dumps(result)

    def load_result(self, text: str | None, images: dict[int, dict]) -> Any:
        return json.loads(text) if text else None


@pytest.fixture
def queues():
    made: list[JobQueue] = []
    yield made
    for queue in made:
        queue.stop(timeout=T)


@pytest.fixture
def busy(queues):
    """A started queue whose first job (``first``, ann's) is running and held until released."""

    def make(first: str = "a0", **caps: int):
        runner = Blocking()
        queue = JobQueue(runner, **caps)
        queues.append(queue)
        queue.start()
        job = queue.submit(first, owner="ann")
        assert runner.first_started.wait(T)
        return queue, runner, job

    return make


def test_one_users_fifty_jobs_do_not_starve_anothers_single_image(busy):
    queue, runner, _ = busy()
    ann = [queue.submit(f"a{i}", owner="ann") for i in range(1, 51)]
    bob = queue.submit("b1", owner="bob")
    cat = queue.submit("c1", owner="cat")
    ann_late = queue.submit("a51", owner="ann")
    # bob's and cat's single jobs are next, whatever ann queued before them
    assert queue.queue_position(bob.id) == 1 and queue.queue_position(cat.id) == 2
    assert queue.queue_position(ann[0].id) == 3 and queue.queue_position(ann_late.id) == 53
    runner.release.set()
    queue.wait(ann_late.id, T)
    assert runner.ran[:5] == ["a0", "b1", "c1", "a1", "a2"]
    assert runner.ran[-1] == "a51" and len(runner.ran) == 54


def test_rounds_alternate_between_users_with_several_jobs(busy):
    queue, runner, _ = busy("x")
    last = None
    for i in range(3):
        queue.submit(f"a{i}", owner="ann")
    for i in range(3):
        last = queue.submit(f"b{i}", owner="bob")
    runner.release.set()
    queue.wait(last.id, T)
    assert runner.ran == ["x", "b0", "a0", "b1", "a1", "b2", "a2"]


def test_caps_per_user_and_in_all_refuse_with_a_sentence(busy):
    queue, runner, _ = busy(max_per_owner=2, max_total=3)
    queue.submit("a1", owner="ann")
    queue.submit("a2", owner="ann")
    with pytest.raises(QueueFull, match="2 jobs waiting"):
        queue.submit("a3", owner="ann")
    queue.submit("b1", owner="bob")
    with pytest.raises(QueueFull, match="queue is full"):
        queue.submit("b2", owner="bob")
    assert queue.waiting() == 3
    runner.release.set()


def test_interrupt_and_skip_reach_only_the_named_owner_or_job(busy):
    queue, runner, running = busy()
    other = queue.submit("b0", owner="bob")
    assert not queue.interrupt(owner="bob") and not queue.skip(owner="bob")
    assert not queue.interrupt(job_id=other.id)
    assert queue.current_flags() == (False, False)
    assert queue.current(owner="bob") is None and queue.current(owner="ann") is running
    assert queue.skip(owner="ann") and queue.current_flags() == (False, True)
    assert queue.interrupt(job_id=running.id) and queue.current_flags()[0]
    runner.release.set()
    assert queue.wait(other.id, T).state is JobState.DONE  # bob's job was not touched


def test_the_store_brings_back_queued_and_running_jobs_with_their_saved_images(tmp_path, queues):
    path = tmp_path / "jobs.sqlite"
    saving = threading.Event()

    def first_run(payload: str, ctx: JobContext) -> str:
        ctx.image_starting(0, str(tmp_path))
        ctx.record_image(0, str(tmp_path / "0.png"), {"path": str(tmp_path / "0.png")})
        saving.set()
        while not ctx.interrupted:  # "the server dies" mid-job: stop() interrupts
            threading.Event().wait(0.01)
        return "cut short"

    queue = JobQueue(first_run, store=JobStore(path), codec=JsonCodec())
    queue.start()
    running = queue.submit("first", owner="ann")
    assert saving.wait(T)
    queued = [queue.submit(name, owner=owner) for name, owner in (("second", "bob"), ("third", "ann"))]
    queue.stop(timeout=T)

    seen: list[tuple[str, dict]] = []

    def second_run(payload: str, ctx: JobContext) -> str:
        seen.append((payload, dict(ctx.job.saved)))
        return f"done:{payload}"

    queue = JobQueue(second_run, store=JobStore(path), codec=JsonCodec())
    queues.append(queue)
    assert queue.recover() == 3
    queue.start()
    for job in (running, *queued):
        again = queue.wait(job.id, T)
        assert again.state is JobState.DONE and again.owner == job.owner
    assert [payload for payload, _ in seen] == ["first", "second", "third"]
    assert seen[0][1] == {0: {"path": str(tmp_path / "0.png")}}  # the saved image is known, not made again
    # after a second restart every job is finished history: nothing runs twice
    later = JobQueue(second_run, store=JobStore(path), codec=JsonCodec())
    assert later.recover() == 0
    assert later.get(running.id).result == "done:first"


def test_finished_jobs_are_forgotten_after_the_retention_period(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite")
    store.add("old", "ann", "{}", 0.0)
    store.finished("old", "done", 1.0, None, False, None)
    store.add("new", "ann", "{}", 0.0)
    store.finished("new", "done", time.time(), None, False, None)
    store.add("waiting", "ann", "{}", 0.0)
    assert store.forget_older_than(3600) == 1
    assert store.get("old") is None and store.get("new") is not None and store.get("waiting") is not None
