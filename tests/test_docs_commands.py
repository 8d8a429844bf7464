"""The README and docs/CLUSTER.md, followed word by word (`scripts/check-docs`), work here;
and the checker fails, naming the command, when a documented command does not."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

CHECK_DOCS = Path(__file__).resolve().parent.parent / "scripts" / "check-docs"


def check_docs(*args: str | Path, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(CHECK_DOCS), *map(str, args)], text=True,
                          capture_output=True, timeout=timeout, check=False)


@pytest.mark.slow
def test_every_command_of_the_readme_and_cluster_guide_runs() -> None:
    done = check_docs(timeout=1500)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert not [line for line in lines if line.startswith("FAIL")]
    for command in ("README.md: scripts/bootstrap demo && .venv/bin/bolly-ray demo",
                    "README.md: bolly-ray run film.job.json --cpu-stages docker",
                    "docs/CLUSTER.md: bolly-ray run film1.job.json film2.job.json "
                    "--address 127.0.0.1:6379",
                    "docs/CLUSTER.md: ray job submit --address http://HEAD_IP:8265"):
        assert any(line.startswith(f"ok   {command}") for line in lines), done.stdout
    ran = sum(line.startswith("ok ") for line in lines)
    skipped = sum(line.startswith("skip ") for line in lines)
    assert ran >= 20 and skipped <= 7


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
