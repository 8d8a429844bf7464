"""`bolly-ray doctor` names what is missing, per mode, with the command that fixes it."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from tests.conftest import bolly


def checks_of(done) -> dict[str, dict]:
    return {c["name"]: c for c in json.loads(done.stdout)["checks"]}


def test_missing_ffmpeg_and_docker_are_reported_with_their_fixes(tmp_path: Path) -> None:
    bare = tmp_path / "bin"
    bare.mkdir()
    (bare / "python3").symlink_to(sys.executable)  # a PATH with Python and nothing else
    done = bolly("doctor", "--json", cwd=tmp_path,
                 env={"PATH": str(bare), "DOCKER_HOST": f"unix://{tmp_path}/no.sock"})
    assert done.returncode == 1
    checks = checks_of(done)
    assert checks["ffmpeg"] == {"mode": "native", "name": "ffmpeg", "ok": False,
                                "detail": "not on PATH", "fix": "apt-get install ffmpeg"}
    assert checks["engine"]["ok"] is False and checks["engine"]["fix"] == "scripts/ensure-docker"
    assert checks["ray"]["ok"] is True and checks["python"]["ok"] is True


def test_a_healthy_native_setup_passes_its_checks(tmp_path: Path) -> None:
    done = bolly("doctor", "--json", cwd=tmp_path, env={"PATH": os.environ["PATH"]})
    native = [c for c in checks_of(done).values() if c["mode"] == "native"]
    assert native and all(c["ok"] for c in native), native
