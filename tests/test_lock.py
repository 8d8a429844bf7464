"""One run per job: a second run is refused while a live holder exists, a dead one's lock
is taken over."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bolly_ray.engine.lock import JobLock
from bolly_ray.errors import JobLockedError

HOLD = """
import sys, time
from pathlib import Path
from bolly_ray.engine.lock import JobLock
JobLock(Path(sys.argv[1]), "j").acquire()
print("held", flush=True)
time.sleep(60)
"""


def hold_lock_in_child(job_dir: Path) -> subprocess.Popen[str]:
    child = subprocess.Popen([sys.executable, "-c", HOLD, str(job_dir)], stdout=subprocess.PIPE,
                             text=True)
    assert child.stdout is not None and child.stdout.readline().strip() == "held"
    return child


def test_a_live_holder_blocks_a_second_run(tmp_path: Path) -> None:
    child = hold_lock_in_child(tmp_path)
    try:
        with pytest.raises(JobLockedError, match=rf"job j is already being run by pid {child.pid}"):
            JobLock(tmp_path, "j").acquire()
    finally:
        child.kill()
        child.wait()


def test_a_killed_holders_lock_is_taken_over(tmp_path: Path,
                                             caplog: pytest.LogCaptureFixture) -> None:
    child = hold_lock_in_child(tmp_path)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    time.sleep(0.05)
    with JobLock(tmp_path, "j"):
        pass
    assert f"taking over the lock left by pid {child.pid}" in caplog.text
    with JobLock(tmp_path, "j"):  # released cleanly: no takeover message this time
        pass
    assert caplog.text.count("taking over") == 1
