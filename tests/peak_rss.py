"""Running a command in its own process and reading its peak resident memory.

The peak comes from the kernel, so a short spike counts as much as a plateau: a Python
program's own peak (VmHWM) when its work is done, after its atexit handlers
(`peak_rss_hook/sitecustomize.py`), or the largest of it and the children it waited for
(ffmpeg); for other programs, and as `exit_peak_mb` for all, `wait4`'s `ru_maxrss`, which
also counts the interpreter's teardown, where the C++ destructors of the CUDA libraries that
`import torch` maps fault in ~150 MB of their pages in a process that never used them (how
many depends on what the page cache holds). Linux carries a process's peak across `exec`,
and a child spawned from a big process (pytest with models loaded) would report that
process's size as its own: so the command is forked from a small launcher, which reports
what the kernel says of it. A watchdog polls the resident memory meanwhile and kills the
command past a ceiling, so that a regression fails the test instead of exhausting the
machine.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as report:
    report.write(str(usage.ru_maxrss))
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
"""


HOOK = Path(__file__).with_name("peak_rss_hook")


@dataclass(frozen=True)
class Measured:
    returncode: int
    peak_mb: float
    """Up to the end of the program's work (see the module docstring)."""
    exit_peak_mb: float
    """`wait4`'s figure: the interpreter's teardown included."""
    seconds: float
    output: str
    killed: bool


def resident_mb(pid: int) -> float:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    line = next((x for x in status.splitlines() if x.startswith("VmRSS:")), "VmRSS: 0 kB")
    return int(line.split()[1]) / 1024


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def run_measured(argv: Sequence[str], *, cwd: Path, ceiling_mb: float = 8192,
                 timeout_s: float = 900) -> Measured:
    """Run `argv` to its end (or kill it past `ceiling_mb` or `timeout_s`); its peak RSS."""
    started, killed = time.monotonic(), False
    with tempfile.TemporaryDirectory(prefix="peak-rss-") as tmp, \
            open(Path(tmp) / "log", "w+b") as log:
        report, work = Path(tmp) / "maxrss", Path(tmp) / "work-maxrss"
        path = os.pathsep.join(filter(None, [str(HOOK), os.environ.get("PYTHONPATH")]))
        # -S: the launcher itself loads no sitecustomize (the hook is for the command)
        proc = subprocess.Popen([sys.executable, "-S", "-c", LAUNCHER, str(report), *argv],
                                cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONPATH": path,
                                     "PEAK_RSS_REPORT": str(work)})
        while proc.poll() is None:
            command = children(proc.pid)
            over = any(resident_mb(p) > ceiling_mb for p in command)
            if command and (over or time.monotonic() - started > timeout_s):
                for pid in command:
                    os.kill(pid, signal.SIGKILL)
                killed = True
            time.sleep(0.1)
        log.seek(0)
        output = log.read().decode(errors="replace")
        exit_kb = int(report.read_text()) if report.exists() else 0
        work_kb = int(work.read_text()) if work.exists() else exit_kb
    return Measured(proc.returncode, work_kb / 1024, exit_kb / 1024,
                    time.monotonic() - started, output, killed)
