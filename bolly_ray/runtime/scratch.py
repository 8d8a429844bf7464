"""Private scratch folders for attempts on a Ray node, and removal of those a crash left.

A worker removes its attempt's folder when the attempt ends, but a worker killed outright
(a node's raylet crashing, the OOM killer, SIGKILL) cannot, and a film's unpacked audio is
hundreds of megabytes. Each folder's name carries the process id of the worker that made it,
so the next attempt on the node removes the folders whose worker no longer exists.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

PREFIX = "bolly-ray-"


def new_scratch(stage: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"{PREFIX}{stage}-{os.getpid()}-"))


def remove_orphaned(root: Path | None = None) -> int:
    """Remove this user's scratch folders whose worker process is gone; returns how many."""
    removed = 0
    for folder in (root or Path(tempfile.gettempdir())).glob(f"{PREFIX}*-*-*"):
        pid = _owner_pid(folder)
        if pid is None or _alive(pid):
            continue
        try:
            if folder.stat().st_uid != os.getuid():
                continue
        except FileNotFoundError:
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed += 1
    return removed


def _owner_pid(folder: Path) -> int | None:
    """The pid in `bolly-ray-<stage>-<pid>-<random>`, or None for any other name."""
    parts = folder.name.rsplit("-", 2)
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True
