"""The service's dispatcher against a cancel that arrives while its thread takes the job.

CI once saw a queued job, cancelled, run to success anyway: the feeding thread had read the
row as queued, the cancel ended it, and the hand-over then started it. The interleaving is
made here step by step, on the real queue and the in-process executor's intake (the
feeding thread has no room: `max_active=0`, so only the test hands a job over).
"""

from __future__ import annotations

from pathlib import Path

from bolly_ray.engine.registry import default_registry
from bolly_ray.executors import LocalExecutor
from bolly_ray.service.dispatcher import Dispatcher
from bolly_ray.service.queue import JobQueue, RowStatus


def test_a_job_cancelled_while_being_taken_is_not_run(tmp_path: Path) -> None:
    registry = default_registry()
    queue = JobQueue(tmp_path / "state" / "jobs.sqlite")
    dispatcher = Dispatcher(queue, registry, lambda seen: LocalExecutor(registry, seen),
                            max_active=0)
    film = tmp_path / "film.mp4"
    film.write_bytes(b"not read: the job never starts")
    job = {"id": "film", "media": str(film), "out_root": str(tmp_path / "out")}
    queue.enqueue("film", "path", job, {}, str(tmp_path / "out"))
    dispatcher.start()
    try:
        [taken] = queue.with_status(RowStatus.QUEUED)  # the feeding thread's read
        cancelled = dispatcher.cancel("film")
        assert cancelled is not None and cancelled.status == RowStatus.CANCELLED
        dispatcher._hand_over(taken)  # the hand-over that read the row before the cancel
        row = queue.get("film")
        assert row is not None and row.status == RowStatus.CANCELLED
        assert row.started is None
    finally:
        dispatcher.stop()
        assert dispatcher._intake is not None
        outcomes = dispatcher._intake.close()
    assert outcomes == []  # nothing reached the executor
    assert not (tmp_path / "out").exists()
