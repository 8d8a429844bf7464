"""The README and docs/CLUSTER.md, followed word by word (`scripts/check-docs`), work here;
and the checker fails, naming the command, when a documented command does not."""

from __future__ import annotations

import ctypes
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

CHECK_DOCS = Path(__file__).resolve().parent.parent / "scripts" / "check-docs"


def die_with_parent() -> None:
    """In the child: SIGKILL it when the test's process dies (PR_SET_PDEATHSIG), so even a
    killed test run leaves no check, and through its PID namespace no Ray, behind."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)


def check_docs(*args: str | Path, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(CHECK_DOCS), *map(str, args)], text=True,
                          capture_output=True, timeout=timeout, check=False,
                          preexec_fn=die_with_parent)


@pytest.mark.slow
@pytest.mark.timeout(1600)  # the check's own limit is 1,500 s; the suite's 300 s is too short
def test_every_command_of_the_readme_and_cluster_guide_runs() -> None:
    done = check_docs(timeout=1500)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert not [line for line in lines if line.startswith("FAIL")]
    for command in ("README.md: scripts/bootstrap demo && .venv/bin/bolly-ray demo",
                    "README.md: bolly-ray run film.job.json --cpu-stages docker",
                    "docs/CLUSTER.md: bolly-ray run film1.job.json film2.job.json "
                    "--address 127.0.0.1:6379",
                    "docs/CLUSTER.md: RAY_AUTH_MODE=token ray job submit --address "
                    "http://127.0.0.1:8265",
                    "docs/CLUSTER.md: docker-compose -f deploy/compose.yaml exec -T head "
                    "bolly-ray run film.job.json --address auto"):
        assert any(line.startswith(f"ok   {command}") for line in lines), done.stdout
    ran = sum(line.startswith("ok ") for line in lines)
    skipped = sum(line.startswith("skip ") for line in lines)
    assert ran >= 30 and skipped <= 9


def test_a_documented_command_that_fails_fails_the_check(tmp_path: Path) -> None:
    doc = tmp_path / "GUIDE.md"
    doc.write_text("Run it:\n\n```bash\nbolly-ray schema > schema.json\n"
                   "bolly-ray run missing.job.json   # a file nobody has\n"
                   "echo never reached\n```\n")
    done = check_docs(doc, timeout=300)
    assert done.returncode == 1
    assert "ok   " in done.stdout and "bolly-ray schema > schema.json" in done.stdout
    assert "FAIL " in done.stdout and "bolly-ray run missing.job.json  (exit 2" in done.stdout
    assert "never reached" not in done.stdout


def test_a_command_that_prints_something_else_than_documented_fails_the_check(
        tmp_path: Path) -> None:
    doc = tmp_path / "GUIDE.md"
    doc.write_text("```bash\necho 'took 1.5 s in /tmp/a/b'\n```\n\n```text\n"
                   "took 9.9 s in /somewhere/else\n```\n\n```bash\necho 'job done'\n```\n\n"
                   "```text\njob failed\n...\n```\n")
    done = check_docs(doc, timeout=300)
    assert done.returncode == 1
    assert "ok   " in done.stdout and "took 1.5 s" in done.stdout  # numbers and paths may differ
    assert "FAIL " in done.stdout and "echo 'job done'" in done.stdout
    assert "lines the document shows:)\n  job failed" in done.stdout


def test_a_ray_head_the_docs_start_dies_with_a_killed_check(tmp_path: Path) -> None:
    """`ray start --head` daemonises; the check's PID namespace still takes it down when the
    check is killed outright (SIGKILL, no cleanup code runs)."""
    marker = f"bolly-ray-docs-kill-{tmp_path.name}"
    doc = tmp_path / "GUIDE.md"
    daemon = f"bash -c 'exec -a {marker} sleep 600' >/dev/null 2>&1 &"
    doc.write_text(f"```bash\n{daemon}\nsleep 600\n```\n")
    check = subprocess.Popen([sys.executable, str(CHECK_DOCS), str(doc)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             preexec_fn=die_with_parent)
    try:
        assert wait_for(lambda: processes_named(marker), 60), "the daemon never started"
        check.kill()
        check.wait(30)
        assert wait_for(lambda: not processes_named(marker), 30), "the daemon outlived it"
    finally:
        check.kill()


def processes_named(marker: str) -> list[Path]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if cmdline.read_bytes().startswith(marker.encode()):
                found.append(cmdline)
        except OSError:
            continue
    return found


def wait_for(condition: Callable[[], object], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False
