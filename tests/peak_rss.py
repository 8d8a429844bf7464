"""Running a command in its own process and reading its peak resident memory.

The peak comes from the kernel (`wait4`'s `ru_maxrss`: the largest of the process and the
children it waited for, such as ffmpeg), so a short spike counts as much as a plateau. Linux
carries a process's peak across `exec`, and a child spawned from a big process (pytest with
models loaded) would report that process's size as its own: so the command is forked from a
small launcher, which reports what the kernel says of it. A watchdog polls the resident
memory meanwhile and kills the command past a ceiling, so that a regression fails the test
instead of exhausting the machine.
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


@dataclass(frozen=True)
class Measured:
    returncode: int
    peak_mb: float
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
        report = Path(tmp) / "maxrss"
        proc = subprocess.Popen([sys.executable, "-c", LAUNCHER, str(report), *argv], cwd=cwd,
                                stdout=log, stderr=subprocess.STDOUT)
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
        peak_kb = int(report.read_text()) if report.exists() else 0
    return Measured(proc.returncode, peak_kb / 1024, time.monotonic() - started, output, killed)
