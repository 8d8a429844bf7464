"""`bolly-ray doctor` names what is missing, per mode, with the command that fixes it."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path

import pytest

from bolly_ray.core.job import validate_job
from bolly_ray.engine.registry import build_registry
from bolly_ray.errors import UsageError
from bolly_ray.executors import LocalExecutor
from tests.conftest import assert_one_line_error, bolly
from tests.fakes import fake


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


def test_docker_mode_fails_the_check_only_when_it_is_the_mode_you_run(tmp_path: Path) -> None:
    no_docker = {"DOCKER_HOST": f"unix://{tmp_path}/no.sock"}
    native = bolly("doctor", cwd=tmp_path, env=no_docker)
    assert native.returncode == 0, native.stdout + native.stderr
    assert "native mode: ready" in native.stdout
    assert "docker mode: not ready (not needed for the mode you run)" in native.stdout
    docker = bolly("doctor", "--mode", "docker", "--json", cwd=tmp_path, env=no_docker)
    assert docker.returncode == 1
    assert json.loads(docker.stdout)["ready"]["docker"] is False
    bad = bolly("doctor", "--mode", "cluster", cwd=tmp_path)
    assert_one_line_error(bad, 2, "--mode cluster needs --address")


def test_preflight_names_missing_stage_libraries_before_anything_runs(tmp_path: Path) -> None:
    needy = fake("needy", ["media"], ["x"])
    needy.spec = dataclasses.replace(needy.spec, image_requirements=("no-such-lib-bolly>=1",))
    media = tmp_path / "film.txt"
    media.write_text("film")
    job = validate_job({"id": "j", "media": str(media), "out_root": str(tmp_path / "out")},
                       [needy.spec], "t")
    with pytest.raises(UsageError, match=r"needy needs no-such-lib-bolly>=1 \(not installed\): "
                       r"pip install 'no-such-lib-bolly>=1'"):
        LocalExecutor(build_registry([needy])).run([job])
    assert not (tmp_path / "out").exists()
