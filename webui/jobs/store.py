"""The queue on disk: SQLite in the data dir (WAL), so jobs survive a crash or a restart.

    jobs    one row per job: owner, payload, state, times, error, result
    images  one row per image a job saved: index, folder, path (NULL while being written)

A job is written when it is submitted and at every change of state; each image when it is
saved. After a restart, queued jobs run again in their order, and a job that was running runs
again from the start with the images it had saved kept (see ``JobQueue.recover``); ``runs``
counts its starts that no clean stop ended, so a job that takes the server down with it is not
run forever. Payloads and results are opaque text here: the queue's codec turns them into objects.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, seq INTEGER NOT NULL, owner TEXT, payload TEXT NOT NULL, state TEXT NOT NULL,
    created_at REAL NOT NULL, started_at REAL, finished_at REAL, error TEXT, interrupted INTEGER DEFAULT 0,
    result TEXT, runs INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state, seq);
CREATE TABLE IF NOT EXISTS images (
    job_id TEXT NOT NULL, idx INTEGER NOT NULL, folder TEXT, path TEXT, record TEXT,
    PRIMARY KEY (job_id, idx)
);
"""


class StoreError(RuntimeError):
    """The job database cannot be opened or written (read-only or full data dir)."""


@dataclass
class StoredJob:
    id: str
    owner: str | None
    payload: str
    state: str
    created_at: float
    started_at: float | None
    finished_at: float | None
    error: str | None
    interrupted: bool
    result: str | None
    images: dict[int, dict]  # index → {"folder", "path", "record"}
    runs: int = 0  # starts not ended by a finish or a clean stop: crashes while it ran


class JobStore:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=10)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(jobs)")}
            if "runs" not in columns:  # a database from before the column
                self._db.execute("ALTER TABLE jobs ADD COLUMN runs INTEGER NOT NULL DEFAULT 0")
        except sqlite3.Error as e:
            raise StoreError(f"cannot open the job database {self.path}: {e}") from None

    def _run(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            try:
                return self._db.execute(sql, args).fetchall()
            except sqlite3.Error as e:
                raise StoreError(f"job database {self.path}: {e}") from None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- writing ------------------------------------------------------------------------------

    def add(self, job_id: str, owner: str | None, payload: str, created_at: float) -> None:
        self._run("INSERT INTO jobs (id, seq, owner, payload, state, created_at) VALUES "
                  "(?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM jobs), ?, ?, 'queued', ?)",
                  (job_id, owner, payload, created_at))

    def started(self, job_id: str, at: float) -> None:
        self._run("UPDATE jobs SET state = 'running', started_at = ?, runs = runs + 1 WHERE id = ?", (at, job_id))

    def stopped(self, job_id: str) -> None:
        """A clean shutdown stopped the running job: it stays "running", to run again, and this
        run does not count as a crash."""
        self._run("UPDATE jobs SET runs = MAX(runs - 1, 0) WHERE id = ?", (job_id,))

    def finished(self, job_id: str, state: str, at: float, error: str | None, interrupted: bool,
                 result: str | None) -> None:
        self._run("UPDATE jobs SET state = ?, finished_at = ?, error = ?, interrupted = ?, result = ? WHERE id = ?",
                  (state, at, error, int(interrupted), result, job_id))

    def image_starting(self, job_id: str, index: int, folder: str) -> None:
        """Before an image file is written: where it will go (found there after a crash)."""
        self._run("INSERT OR REPLACE INTO images (job_id, idx, folder) VALUES (?, ?, ?)", (job_id, index, folder))

    def image_saved(self, job_id: str, index: int, path: str | None, record: dict) -> None:
        self._run("INSERT OR REPLACE INTO images (job_id, idx, folder, path, record) VALUES "
                  "(?, ?, (SELECT folder FROM images WHERE job_id = ? AND idx = ?), ?, ?)",
                  (job_id, index, job_id, index, path, json.dumps(record)))

    def forget_older_than(self, seconds: float) -> int:
        """Drop finished jobs (and their image rows; the files stay) older than ``seconds``."""
        cutoff = time.time() - seconds
        old = [row[0] for row in self._run(
            "SELECT id FROM jobs WHERE state IN ('done', 'failed', 'cancelled') AND finished_at < ?", (cutoff,))]
        for job_id in old:
            self._run("DELETE FROM images WHERE job_id = ?", (job_id,))
            self._run("DELETE FROM jobs WHERE id = ?", (job_id,))
        return len(old)

    # --- reading ------------------------------------------------------------------------------

    def _images(self, job_id: str) -> dict[int, dict]:
        rows = self._run("SELECT idx, folder, path, record FROM images WHERE job_id = ? ORDER BY idx", (job_id,))
        return {idx: {"folder": folder, "path": path, "record": json.loads(record) if record else None}
                for idx, folder, path, record in rows}

    def _job(self, row: tuple) -> StoredJob:
        job_id, owner, payload, state, created, started, finished, error, interrupted, result, runs = row
        return StoredJob(job_id, owner, payload, state, created, started, finished, error, bool(interrupted), result,
                         self._images(job_id), runs)

    _COLUMNS = "id, owner, payload, state, created_at, started_at, finished_at, error, interrupted, result, runs"

    def get(self, job_id: str) -> StoredJob | None:
        rows = self._run(f"SELECT {self._COLUMNS} FROM jobs WHERE id = ?", (job_id,))
        return self._job(rows[0]) if rows else None

    def unfinished(self) -> list[StoredJob]:
        """Jobs to run again after a restart: the running one(s) first, then the queued, in order."""
        rows = self._run(f"SELECT {self._COLUMNS} FROM jobs WHERE state IN ('running', 'queued') "
                         "ORDER BY state = 'queued', seq")
        return [self._job(row) for row in rows]

    def recent(self, limit: int) -> list[StoredJob]:
        """The most recently finished jobs, oldest first (the queue's memory after a restart)."""
        rows = self._run(f"SELECT {self._COLUMNS} FROM jobs WHERE state IN ('done', 'failed', 'cancelled') "
                         "ORDER BY seq DESC LIMIT ?", (limit,))
        return [self._job(row) for row in reversed(rows)]
