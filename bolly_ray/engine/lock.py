"""One run per job at a time: an exclusive lock on the job folder.

The lock is an `flock` on `<job dir>/.lock`, so the kernel releases it when its holder dies,
even by SIGKILL. The file also records who holds it (pid, host, start time) for the message a
second run prints, and a run that finds a dead holder's record says it took over.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
from pathlib import Path
from types import TracebackType

from bolly_ray.engine.manifest import now_iso
from bolly_ray.errors import JobLockedError

log = logging.getLogger(__name__)


class JobLock:
    def __init__(self, job_dir: Path, job_id: str) -> None:
        self.path = job_dir / ".lock"
        self.job_id = job_id
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise JobLockedError(
                f"job {self.job_id} is already being run by pid {holder.get('pid', '?')} on "
                f"{holder.get('host', '?')} since {holder.get('since', '?')} ({self.path}); "
                "wait for it to finish or stop it") from None
        previous = _read_holder(fd)
        if previous.get("pid"):
            log.warning("job %s: taking over the lock left by pid %s on %s (that run ended "
                        "without releasing it)", self.job_id, previous["pid"], previous.get("host"))
        _write_holder(fd, {"pid": os.getpid(), "host": socket.gethostname(), "since": now_iso()})
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        _write_holder(self._fd, {})
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> JobLock:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def _read_holder(fd: int) -> dict[str, object]:
    os.lseek(fd, 0, os.SEEK_SET)
    raw = os.read(fd, 4096)
    try:
        data = json.loads(raw) if raw.strip() else {}
    except json.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def _write_holder(fd: int, holder: dict[str, object]) -> None:
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, json.dumps(holder).encode())
    os.fsync(fd)


def run_holder(job_dir: Path) -> dict[str, object] | None:
    """Who runs the job now, from the lock's record, or None when no run holds it.

    The record is only read, never locked, so asking can never make a starting run fail. A
    holder on this host whose process is gone does not count; one on another host is
    trusted (its process cannot be seen from here)."""
    try:
        fd = os.open(job_dir / ".lock", os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        holder = _read_holder(fd)
    finally:
        os.close(fd)
    pid = holder.get("pid")
    if not isinstance(pid, int):
        return None
    if holder.get("host") == socket.gethostname() and not _alive(pid):
        return None
    return holder


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True
