"""Scratch folders of attempts on a Ray node: a folder whose worker died is removed by the
next attempt there; a live worker's folder and anything else are not."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bolly_ray.runtime.scratch import new_scratch, remove_orphaned


def scratch_of_a_dead_worker(root: Path) -> Path:
    """A folder made by a real process that then died without cleaning up (like SIGKILL)."""
    code = ("import os; from bolly_ray.runtime.scratch import new_scratch; "
            "f = new_scratch('asr'); (f / 'audio.wav').write_bytes(b'x' * 1000); print(f); "
            "os._exit(0)")
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, "TMPDIR": str(root)},
                          capture_output=True, text=True, check=True, timeout=60)
    return Path(done.stdout.strip())


def test_only_the_scratch_of_dead_workers_is_removed(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    dead = scratch_of_a_dead_worker(tmp_path)
    assert dead.parent == tmp_path and (dead / "audio.wav").is_file()
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)  # read TMPDIR again
    live = new_scratch("vad")
    unrelated = [tmp_path / "bolly-ray-secrets-k2j4h1ab", tmp_path / "bolly-ray-asr-x3x52b98",
                 tmp_path / "other-1-2"]
    for folder in unrelated:
        folder.mkdir()
    assert remove_orphaned(tmp_path) == 1
    assert not dead.exists()
    assert live.is_dir() and all(folder.is_dir() for folder in unrelated)
    assert remove_orphaned(tmp_path) == 0
