"""The service's job queue, persisted in SQLite so a restart loses no queued or running job.

One row per job: what was asked (the validated job as JSON, and the request's own choices
such as the output format), where it stands, where its folder is. The row's id is the job
id, and a job id is derived from the request's deduplication key (audio or film, settings,
model, bolly-ray version), so a request identical to a queued, running or finished job
finds that row instead of adding one; a failed or cancelled job asked again is queued
again under the same id and resumes from its manifest. SQLite in WAL mode is the embedded
default; everything goes through this class, the place to plug PostgreSQL later.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any


class RowStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def ended(self) -> bool:
        return self in (RowStatus.SUCCEEDED, RowStatus.FAILED, RowStatus.CANCELLED)


LIVE = (RowStatus.QUEUED, RowStatus.RUNNING, RowStatus.SUCCEEDED)
"""A request identical to a job in one of these joins it; otherwise the job runs again."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id       TEXT PRIMARY KEY,
    kind     TEXT NOT NULL,
    status   TEXT NOT NULL,
    job      TEXT NOT NULL,
    request  TEXT NOT NULL,
    job_dir  TEXT NOT NULL,
    error    TEXT,
    runs     INTEGER NOT NULL DEFAULT 0,
    joined   INTEGER NOT NULL DEFAULT 0,
    created  REAL NOT NULL,
    started  REAL,
    finished REAL
);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, created);
"""


@dataclass(frozen=True)
class JobRow:
    id: str
    kind: str
    status: RowStatus
    job: dict[str, Any]
    """The validated job, as `job_json_for_disk` writes it."""
    request: dict[str, Any]
    """What the request asked beyond the job: output format, where to write subtitles."""
    job_dir: str
    error: str | None
    runs: int
    """How many times a run of this job was started (1 for a job that ran once)."""
    joined: int
    """How many later requests were answered by this job instead of a run of their own."""
    created: float
    started: float | None
    finished: float | None

    def public(self) -> dict[str, Any]:
        """The row as the jobs API shows it."""
        return {"id": self.id, "kind": self.kind, "status": self.status.value,
                "media": self.job.get("media"), "job_dir": self.job_dir, "error": self.error,
                "runs": self.runs, "joined": self.joined, "created": self.created,
                "started": self.started, "finished": self.finished}


class JobQueue:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None,
                                   timeout=30)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.Lock()  # one connection shared by the server's threads
        with self._lock:  # executescript commits by itself: outside a transaction
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(SCHEMA)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def enqueue(self, job_id: str, kind: str, job: dict[str, Any], request: dict[str, Any],
                job_dir: str) -> tuple[JobRow, bool]:
        """The job's row and whether it was queued now (False: an identical job is queued,
        running or done, and the request joins it)."""
        with self._transaction() as db:
            found = _row(db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone())
            if found is not None and found.status in LIVE:
                db.execute("UPDATE jobs SET joined = joined + 1 WHERE id = ?", (job_id,))
                return found, False
            now = time.time()
            if found is None:
                db.execute("INSERT INTO jobs (id, kind, status, job, request, job_dir, created)"
                           " VALUES (?, ?, ?, ?, ?, ?, ?)",
                           (job_id, kind, RowStatus.QUEUED, json.dumps(job),
                            json.dumps(request), job_dir, now))
            else:  # failed or cancelled before: run again, resuming from its manifest
                db.execute("UPDATE jobs SET status = ?, job = ?, request = ?, error = NULL,"
                           " created = ?, started = NULL, finished = NULL WHERE id = ?",
                           (RowStatus.QUEUED, json.dumps(job), json.dumps(request), now,
                            job_id))
        row = self.get(job_id)
        assert row is not None  # written in the transaction above
        return row, True

    def requeue(self, job_id: str) -> JobRow | None:
        """A finished job whose folder is gone runs again (someone cleaned the outputs)."""
        with self._transaction() as db:
            db.execute("UPDATE jobs SET status = ?, error = NULL, started = NULL,"
                       " finished = NULL WHERE id = ?", (RowStatus.QUEUED, job_id))
        return self.get(job_id)

    def get(self, job_id: str) -> JobRow | None:
        with self._lock:
            return _row(self._db.execute("SELECT * FROM jobs WHERE id = ?",
                                         (job_id,)).fetchone())

    def with_status(self, *statuses: RowStatus) -> list[JobRow]:
        marks = ", ".join("?" * len(statuses))
        with self._lock:
            rows = self._db.execute(f"SELECT * FROM jobs WHERE status IN ({marks})"
                                    " ORDER BY created", statuses).fetchall()
        return [r for r in map(_row, rows) if r is not None]

    def recent(self, limit: int = 50) -> list[JobRow]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM jobs ORDER BY created DESC LIMIT ?",
                                    (limit,)).fetchall()
        return [r for r in map(_row, rows) if r is not None]

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status")
            found = {status: count for status, count in rows.fetchall()}
        return {status.value: found.get(status.value, 0) for status in RowStatus}

    def started(self, job_id: str) -> None:
        with self._transaction() as db:
            db.execute("UPDATE jobs SET status = ?, started = ?, runs = runs + 1 WHERE id = ?",
                       (RowStatus.RUNNING, time.time(), job_id))

    def ended(self, job_id: str, status: RowStatus, error: str | None = None,
              job_dir: str | None = None) -> None:
        with self._transaction() as db:
            db.execute("UPDATE jobs SET status = ?, error = ?, finished = ?,"
                       " job_dir = COALESCE(?, job_dir) WHERE id = ?",
                       (status, error, time.time(), job_dir, job_id))

    def requeue_running(self) -> list[str]:
        """At start: jobs a stopped service left running go back to the queue (their
        manifests tell the next run what is done)."""
        with self._transaction() as db:
            ids = [r[0] for r in db.execute("SELECT id FROM jobs WHERE status = ?",
                                            (RowStatus.RUNNING,)).fetchall()]
            db.execute("UPDATE jobs SET status = ? WHERE status = ?",
                       (RowStatus.QUEUED, RowStatus.RUNNING))
        return ids

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _row(found: sqlite3.Row | None) -> JobRow | None:
    if found is None:
        return None
    return JobRow(id=found["id"], kind=found["kind"], status=RowStatus(found["status"]),
                  job=json.loads(found["job"]), request=json.loads(found["request"]),
                  job_dir=found["job_dir"], error=found["error"], runs=found["runs"],
                  joined=found["joined"], created=found["created"], started=found["started"],
                  finished=found["finished"])
