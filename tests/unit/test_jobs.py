"""Unit tests for webui/jobs.py: real threads, coordinated with Events.

Every blocking call has a timeout so a bug fails the test instead of hanging.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Any, Callable

import pytest

from webui.jobs import Job, JobContext, JobQueue, JobState, Progress

T = 5.0  # generous upper bound for anything that should happen "at once"


def wait_for(predicate: Callable[[], bool], timeout: float = T) -> bool:
    """Poll a condition the test cannot get an Event for (only used for
    observing the runner from outside, e.g. a flag set by the queue)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.001)
    return predicate()


@pytest.fixture
def make_queue():
    queues: list[JobQueue] = []

    def factory(runner: Callable[[Any, JobContext], Any], start: bool = True, **kw: Any) -> JobQueue:
        q = JobQueue(runner, **kw)
        queues.append(q)
        if start:
            q.start()
        return q

    yield factory
    for q in queues:
        assert q.stop(timeout=T), "worker thread did not exit"


class Gate:
    """A runner that records payloads, signals when it starts a payload and
    blocks until released (per payload, or all at once)."""

    def __init__(self) -> None:
        self.ran: list[Any] = []
        self.started: dict[Any, threading.Event] = {}
        self.release: dict[Any, threading.Event] = {}
        self.lock = threading.Lock()

    def _ev(self, table: dict[Any, threading.Event], key: Any) -> threading.Event:
        with self.lock:
            return table.setdefault(key, threading.Event())

    def started_ev(self, payload: Any) -> threading.Event:
        return self._ev(self.started, payload)

    def open(self, payload: Any) -> None:
        self._ev(self.release, payload).set()

    def __call__(self, payload: Any, ctx: JobContext) -> Any:
        with self.lock:
            self.ran.append(payload)
        self.started_ev(payload).set()
        if not self._ev(self.release, payload).wait(T):
            raise TimeoutError("gate never opened")
        return f"result:{payload}"


def poll_until_stopped(ctx: JobContext, *, image: bool = False) -> bool:
    """Like an engine between steps: poll the flags; True if told to stop."""
    deadline = time.monotonic() + T
    while time.monotonic() < deadline:
        if ctx.interrupted or (image and ctx.skipped):
            return True
        time.sleep(0.001)
    return False


# --------------------------------------------------------------------- order


def test_fifo_order(make_queue):
    ran: list[int] = []
    q = make_queue(lambda p, ctx: ran.append(p) or p * 2, start=False)
    jobs = [q.submit(i) for i in range(10)]
    assert all(j.state is JobState.QUEUED for j in jobs)
    q.start()
    for j in jobs:
        assert q.wait(j.id, timeout=T).state is JobState.DONE
    assert ran == list(range(10))
    assert [j.result for j in jobs] == [i * 2 for i in range(10)]


def test_one_job_at_a_time(make_queue):
    gate = Gate()
    q = make_queue(gate)
    a, b = q.submit("a"), q.submit("b")
    assert gate.started_ev("a").wait(T)
    assert q.current() is a
    assert b.state is JobState.QUEUED
    assert not gate.started_ev("b").is_set()
    gate.open("a")
    assert gate.started_ev("b").wait(T)
    assert q.current() is b
    gate.open("b")
    assert q.wait(b.id, T).state is JobState.DONE
    assert q.current() is None
    assert gate.ran == ["a", "b"]


# -------------------------------------------------------------------- states


def test_states_over_a_jobs_life(make_queue):
    gate = Gate()
    q = make_queue(gate, start=False)
    seen: list[JobState] = []
    q.on_change.append(lambda job: seen.append(job.state))

    job = q.submit("x", owner="alice")
    assert len(job.id) == 32 and int(job.id, 16) >= 0
    assert job.owner == "alice" and job.payload == "x"
    assert job.state is JobState.QUEUED and job.state == "queued"
    assert job.started_at is None and job.finished_at is None and not job.finished
    assert q.queue_position(job.id) == 0

    q.start()
    assert gate.started_ev("x").wait(T)
    assert job.state is JobState.RUNNING
    assert job.started_at is not None and job.started_at >= job.created_at
    assert job.progress.started_at == job.started_at
    assert not job.done_event.is_set()

    gate.open("x")
    assert job.done_event.wait(T)
    assert job.state is JobState.DONE and job.finished
    assert job.result == "result:x" and job.error is None and not job.interrupted
    assert job.finished_at >= job.started_at
    assert job.progress.fraction == 1.0 and job.progress.eta_seconds == 0.0
    assert q.queue_position(job.id) is None
    assert q.get(job.id) is job
    assert wait_for(lambda: len(seen) == 3)
    assert seen == [JobState.QUEUED, JobState.RUNNING, JobState.DONE]


def test_callback_errors_do_not_stop_the_worker(make_queue, caplog):
    q = make_queue(lambda p, ctx: ctx.report(1, 1) or p)

    def bad(job: Job) -> None:
        raise RuntimeError("hook broke")

    q.on_change.append(bad)
    q.on_progress.append(bad)
    with caplog.at_level(logging.ERROR, logger="webui.jobs"):
        jobs = [q.submit(i) for i in range(3)]
        assert [q.wait(j.id, T).result for j in jobs] == [0, 1, 2]
    assert "hook broke" in caplog.text


# ------------------------------------------------------------------ progress


def test_progress_eta_and_preview_visible_while_running(make_queue):
    now = [100.0]
    reported = threading.Event()
    proceed = threading.Event()
    preview = object()

    def runner(payload: Any, ctx: JobContext) -> str:
        now[0] = 101.0
        ctx.report(1, 4, image_index=0, image_count=2)
        now[0] = 103.0
        ctx.report(2, 4, image_index=0, image_count=2, preview=preview)
        reported.set()
        assert proceed.wait(T)
        now[0] = 104.0
        ctx.report(1, 4, image_index=1, image_count=2)  # no preview: keep the old one
        reported.set()
        return "ok"

    q = make_queue(runner, clock=lambda: now[0])
    progress_seen: list[Progress] = []
    q.on_progress.append(lambda job: progress_seen.append(job.progress))
    job = q.submit("p")

    assert reported.wait(T)
    reported.clear()
    p = job.progress  # read from this (another) thread while the runner waits
    assert job.state is JobState.RUNNING
    assert (p.step, p.total, p.image_index, p.image_count) == (2, 4, 0, 2)
    assert p.fraction == pytest.approx(2 / 8)
    # time per step from the first report on: (103 - 101) / 1 step; 6 steps left
    assert p.eta_seconds == pytest.approx(12.0)
    assert p.preview is preview and p.preview_step == 2
    assert p.textinfo == "Image 1/2, Step 2/4"
    # the first report had no baseline yet: (101 - 100) / 1 step * 7 left
    assert progress_seen[0].eta_seconds == pytest.approx(7.0)
    assert progress_seen[0].preview is None and progress_seen[0].preview_step is None

    proceed.set()
    assert reported.wait(T)
    assert q.wait(job.id, T).state is JobState.DONE
    p = progress_seen[-1]
    assert (p.step, p.image_index) == (1, 1)
    assert p.fraction == pytest.approx(5 / 8)
    assert p.eta_seconds == pytest.approx(3 / 4 * 3)  # (104 - 101) / 4 steps, 3 left
    assert p.preview is preview and p.preview_step == 2
    assert len(progress_seen) == 3


def test_report_textinfo_override_and_single_image(make_queue):
    seen: list[Progress] = []
    q = make_queue(lambda p, ctx: (ctx.report(0, 20), ctx.report(3, 20, textinfo="hires"))[-1])
    q.on_progress.append(lambda job: seen.append(job.progress))
    q.run("x", timeout=T)
    assert seen[0].textinfo == "Step 0/20" and seen[0].eta_seconds is None
    assert seen[0].fraction == 0.0
    assert seen[1].textinfo == "hires" and seen[1].fraction == pytest.approx(3 / 20)


def test_preview_wanted_cadence(make_queue):
    def runner(payload: Any, ctx: JobContext) -> list[int]:
        return [s for s in range(0, 13) if ctx.preview_wanted(s)]

    q = make_queue(runner, preview_every=3)
    assert q.run("a", timeout=T).result == [3, 6, 9, 12]
    q.preview_every = 5  # options change live
    assert q.run("b", timeout=T).result == [5, 10]
    q.preview_every = 0
    assert q.run("c", timeout=T).result == []


# ------------------------------------------------------- interrupt / skip


def test_interrupt_stops_running_job_and_next_job_runs(make_queue):
    started = threading.Event()

    def runner(payload: Any, ctx: JobContext) -> list[str]:
        done = []
        if payload == "long":
            done.append("image0")
            started.set()
            if poll_until_stopped(ctx):
                return done  # partial result, like A1111
            done.append("image1")
        else:
            assert not ctx.interrupted  # flags are per job
        return done + ["all"]

    q = make_queue(runner)
    assert q.interrupt() is False  # nothing running
    long_job, next_job = q.submit("long"), q.submit("next")
    assert started.wait(T)
    assert q.interrupt() is True
    assert q.wait(long_job.id, T).state is JobState.DONE
    assert long_job.interrupted is True
    assert long_job.result == ["image0"]
    assert long_job.progress.textinfo == "Interrupted"
    nxt = q.wait(next_job.id, T)
    assert nxt.state is JobState.DONE and nxt.result == ["all"] and not nxt.interrupted


def test_skip_ends_the_current_image_only(make_queue):
    in_image0 = threading.Event()

    def runner(payload: Any, ctx: JobContext) -> list[tuple[int, str]]:
        images = []
        for i in range(3):
            outcome = "full"
            for step in range(1, 4):
                if ctx.interrupted:
                    return images
                if ctx.skipped:
                    outcome = "skipped"
                    assert ctx.consume_skip() is True
                    break
                ctx.report(step, 3, image_index=i, image_count=3)
                if i == 0 and step == 1:
                    in_image0.set()
                    assert poll_until_stopped(ctx, image=True)
            images.append((i, outcome))
        assert ctx.consume_skip() is False
        return images

    q = make_queue(runner)
    assert q.skip() is False  # nothing running
    job = q.submit("s")
    assert in_image0.wait(T)
    assert q.skip() is True
    assert q.wait(job.id, T).state is JobState.DONE
    assert job.result == [(0, "skipped"), (1, "full"), (2, "full")]
    assert job.interrupted is False
    assert job.progress.fraction == 1.0


# ------------------------------------------------------------------- cancel


def test_cancel_queued_job_never_runs(make_queue):
    gate = Gate()
    q = make_queue(gate)
    seen: list[tuple[str, JobState]] = []
    q.on_change.append(lambda job: seen.append((job.payload, job.state)))
    blocker, victim, after = q.submit("blocker"), q.submit("victim"), q.submit("after")
    assert gate.started_ev("blocker").wait(T)
    assert q.queue_position(victim.id) == 1 and q.queue_position(after.id) == 2

    assert q.cancel(victim.id) is True
    assert victim.state is JobState.CANCELLED and victim.done_event.is_set()
    assert victim.finished_at is not None and victim.started_at is None
    assert q.queue_position(victim.id) is None
    assert q.queue_position(after.id) == 1
    assert q.cancel(victim.id) is False  # already finished
    assert q.cancel("no-such-job") is False
    assert ("victim", JobState.CANCELLED) in seen

    gate.open("blocker")
    gate.open("after")
    assert q.wait(after.id, T).state is JobState.DONE
    assert q.wait(blocker.id, T).state is JobState.DONE
    assert gate.ran == ["blocker", "after"]
    assert q.cancel(after.id) is False


def test_cancel_running_job(make_queue):
    started = threading.Event()

    def runner(payload: Any, ctx: JobContext) -> str:
        if payload == "running":
            started.set()
            assert poll_until_stopped(ctx)
            return "partial"
        return "ok"

    q = make_queue(runner)
    job, nxt = q.submit("running"), q.submit("next")
    assert started.wait(T)
    assert q.cancel(job.id) is True
    assert q.wait(job.id, T).state is JobState.CANCELLED
    assert job.interrupted is True and job.error is None
    assert q.wait(nxt.id, T).state is JobState.DONE and nxt.result == "ok"


def test_cancel_running_job_whose_runner_raises_is_cancelled(make_queue):
    started = threading.Event()

    def runner(payload: Any, ctx: JobContext) -> str:
        started.set()
        assert poll_until_stopped(ctx)
        raise RuntimeError("torn down")

    q = make_queue(runner)
    job = q.submit("x")
    assert started.wait(T)
    assert q.cancel(job.id)
    assert q.wait(job.id, T).state is JobState.CANCELLED


# ------------------------------------------------------------------ failure


def test_failing_runner_marks_failed_and_worker_goes_on(make_queue, caplog):
    def runner(payload: Any, ctx: JobContext) -> str:
        if payload == "boom":
            raise ValueError("bad things")
        return "fine"

    q = make_queue(runner)
    with caplog.at_level(logging.ERROR, logger="webui.jobs"):
        bad, good = q.submit("boom"), q.submit("ok")
        assert q.wait(bad.id, T).state is JobState.FAILED
    assert bad.error == "ValueError: bad things"
    assert bad.result is None and not bad.interrupted
    assert bad.progress.textinfo == "Failed"
    assert q.wait(good.id, T).state is JobState.DONE and good.result == "fine"
    assert "Traceback" in caplog.text and "bad things" in caplog.text
    assert bad.id in caplog.text


# ---------------------------------------------------------------- waiting


def test_wait_with_timeout(make_queue):
    gate = Gate()
    q = make_queue(gate)
    job = q.submit("slow")
    assert gate.started_ev("slow").wait(T)

    t0 = time.monotonic()
    got = q.wait(job.id, timeout=0.05)
    assert time.monotonic() - t0 >= 0.04
    assert got is job and not got.finished and got.state is JobState.RUNNING

    gate.open("slow")
    assert q.wait(job.id, timeout=T).state is JobState.DONE
    with pytest.raises(KeyError):
        q.wait("unknown", timeout=0.01)


def test_run_convenience_and_timeout(make_queue):
    gate = Gate()
    q = make_queue(gate)
    gate.open("quick")
    job = q.run("quick", owner="bob", timeout=T)
    assert job.state is JobState.DONE and job.result == "result:quick" and job.owner == "bob"

    slow = q.run("slow", timeout=0.02)  # returns unfinished; still queued/running
    assert not slow.finished
    assert q.cancel(slow.id)
    gate.open("slow")
    assert q.wait(slow.id, T).state is JobState.CANCELLED


# --------------------------------------------------------------- bookkeeping


def test_eviction_of_old_finished_jobs(make_queue):
    gate = Gate()
    q = make_queue(lambda p, ctx: p, max_finished=3)
    jobs = [q.run(i, timeout=T) for i in range(5)]
    assert all(j.state is JobState.DONE for j in jobs)
    assert q.get(jobs[0].id) is None and q.get(jobs[1].id) is None
    assert [q.get(j.id) for j in jobs[2:]] == jobs[2:]
    assert q.list() == jobs[2:]

    # queued and running jobs are never evicted, only finished ones
    q2 = make_queue(gate, max_finished=1)
    running, queued = q2.submit("r"), q2.submit("q")
    assert gate.started_ev("r").wait(T)
    for i in range(3):
        cancelled = q2.submit(f"c{i}")
        assert q2.cancel(cancelled.id)
    assert q2.get(running.id) is running and q2.get(queued.id) is queued
    assert q2.list() == [running, queued, cancelled]
    gate.open("r")
    gate.open("q")
    assert q2.wait(queued.id, T).state is JobState.DONE
    assert q2.list() == [queued]


def test_owner_filter_in_list(make_queue):
    gate = Gate()
    q = make_queue(gate, start=False)
    a1 = q.submit(1, owner="alice")
    b1 = q.submit(2, owner="bob")
    n1 = q.submit(3)
    a2 = q.submit(4, owner="alice")
    assert q.list() == [a1, b1, n1, a2]
    assert q.list(owner="alice") == [a1, a2]
    assert q.list("bob") == [b1]
    assert q.list("carol") == []


def test_queue_position(make_queue):
    gate = Gate()
    q = make_queue(gate, start=False)
    a, b, c = q.submit("a"), q.submit("b"), q.submit("c")
    assert [q.queue_position(j.id) for j in (a, b, c)] == [0, 1, 2]  # nothing runs yet
    q.start()
    assert gate.started_ev("a").wait(T)
    assert [q.queue_position(j.id) for j in (a, b, c)] == [0, 1, 2]
    gate.open("a")
    assert gate.started_ev("b").wait(T)
    assert [q.queue_position(j.id) for j in (a, b, c)] == [None, 0, 1]
    assert q.queue_position("unknown") is None
    gate.open("b")
    gate.open("c")
    assert q.wait(c.id, T).finished


def test_many_concurrent_submitters(make_queue):
    order: list[tuple[int, int]] = []
    q = make_queue(lambda p, ctx: order.append(p) or p, max_finished=1000)
    n_threads, per_thread = 8, 25
    results: dict[int, list[Job]] = {}
    errors: list[BaseException] = []
    go = threading.Barrier(n_threads)

    def submitter(t: int) -> None:
        try:
            go.wait(T)
            mine = [q.submit((t, i), owner=f"user{t}") for i in range(per_thread)]
            results[t] = [q.wait(j.id, T) for j in mine]
        except BaseException as e:  # surface in the main thread
            errors.append(e)

    threads = [threading.Thread(target=submitter, args=(t,)) for t in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(T * 2)
        assert not th.is_alive()
    assert errors == []
    assert len(order) == n_threads * per_thread
    for t in range(n_threads):
        assert [j.state for j in results[t]] == [JobState.DONE] * per_thread
        assert [j.result for j in results[t]] == [(t, i) for i in range(per_thread)]
        # FIFO per submitter: its jobs ran in the order it submitted them
        assert [p for p in order if p[0] == t] == [(t, i) for i in range(per_thread)]
        assert len(q.list(owner=f"user{t}")) == per_thread
    assert len({j.id for js in results.values() for j in js}) == n_threads * per_thread


# ------------------------------------------------------------------- stop


def test_stop_interrupts_running_cancels_queued_and_joins(make_queue):
    started = threading.Event()

    def runner(payload: Any, ctx: JobContext) -> str:
        if payload == "quick":
            return "quick"
        started.set()
        return "partial" if poll_until_stopped(ctx) else "full"

    q = make_queue(runner)
    running, queued = q.submit("a"), q.submit("b")
    assert started.wait(T)
    assert q.stop(timeout=T) is True
    assert running.state is JobState.DONE and running.interrupted and running.result == "partial"
    assert queued.state is JobState.CANCELLED and queued.done_event.is_set()
    with pytest.raises(RuntimeError):
        q.submit("c")

    q.start()  # restartable
    assert q.run("quick", timeout=T).result == "quick"
    assert q.stop(timeout=T)


def test_stop_without_start_and_context_manager():
    q = JobQueue(lambda p, ctx: p)
    assert q.stop(timeout=T) is True
    with JobQueue(lambda p, ctx: p + 1) as q2:
        assert q2.run(1, timeout=T).result == 2
    assert q2._thread is not None and not q2._thread.is_alive()


def test_module_imports_no_heavy_frameworks():
    import subprocess
    from pathlib import Path

    code = (
        "import sys, webui.jobs; "
        "bad = [m for m in ('torch', 'gradio', 'fastapi', 'PIL') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=root
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
