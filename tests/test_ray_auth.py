"""Token auth on the documented cluster paths, as users run them: a head started with
`ray start` after a token exists (Ray 2.60 then requires it), joined with an explicit
`--address HOST:PORT`, and the Jobs API (`ray job submit`) running a bolly-ray batch there."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import assert_one_line_error, bolly, read_manifest
from tests.media.make_media import MediaCase
from tests.test_ray_cli import (
    RAY,
    free_port,
    gpu_job,
    job_dir,
    start_raylet,
    stop,
    wait_for_nodes,
)

pytestmark = pytest.mark.slow
TOKEN = "bolly-ray-test-token-0123456789abcdef"


@pytest.fixture(scope="module")
def token_head(ray_tmpdir: Path, tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[dict[str, object]]:
    """A single-node `ray start --head` (so the job folder a driver writes is the head's),
    whose user has a token in ~/.ray/auth_token and no RAY_AUTH_MODE
    set: token auth on, the dashboard (Jobs API) on loopback."""
    home = tmp_path_factory.mktemp("head-home")
    (home / ".ray").mkdir()
    (home / ".ray" / "auth_token").write_text(TOKEN)
    env = {k: v for k, v in os.environ.items() if k != "RAY_AUTH_MODE"} | {
        "HOME": str(home), "PATH": f"{RAY.parent}{os.pathsep}{os.environ['PATH']}"}
    port, dashboard = free_port(), free_port()
    head = start_raylet(["--head", f"--port={port}", "--num-cpus=2", "--num-gpus=0",
                         "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}",
                         f"--temp-dir={ray_tmpdir}", f"--ray-client-server-port={free_port()}"],
                        env)
    try:
        wait_for_nodes(f"127.0.0.1:{port}", 1, {**env, "RAY_AUTH_MODE": "token"})
        yield {"port": port, "dashboard": dashboard, "home": home}
    finally:
        stop(head)


def user_env(home: Path) -> dict[str, str]:
    """A user's shell (no RAY_AUTH_MODE: see _no_auth_mode), Ray's files under `home`."""
    return {"HOME": str(home)}


@pytest.fixture(autouse=True)
def _no_auth_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)  # the hermetic default disables auth


def test_an_explicit_address_finds_the_token_like_ray_does(
        token_head: dict, media: dict[str, MediaCase], tmp_path: Path) -> None:
    job_file = gpu_job(media["wav_only"], tmp_path)
    done = bolly("run", job_file, "--only", "demux", "--executor", "ray", "--address",
                 f"127.0.0.1:{token_head['port']}", cwd=tmp_path,
                 env=user_env(token_head["home"]), timeout=180)
    assert done.returncode == 0, done.stderr
    assert read_manifest(job_dir(tmp_path))["stages"]["demux"]["status"] == "succeeded"


def test_without_the_token_the_message_says_where_it_looked(
        token_head: dict, media: dict[str, MediaCase], tmp_path: Path) -> None:
    job_file = gpu_job(media["wav_only"], tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    started = time.monotonic()
    done = bolly("run", job_file, "--only", "demux", "--executor", "ray", "--address",
                 f"127.0.0.1:{token_head['port']}", cwd=tmp_path, env=user_env(home))
    assert_one_line_error(done, 1, f"the Ray cluster at 127.0.0.1:{token_head['port']} wants "
                          f"a token: none found (looked in $RAY_AUTH_TOKEN, {home}/.ray/"
                          "auth_token)")
    assert time.monotonic() - started < 30  # not Ray's 20 s of retries per try
    assert not job_dir(tmp_path).exists()
    (home / ".ray").mkdir()
    (home / ".ray" / "auth_token").write_text("not-the-token")
    refused = bolly("run", job_file, "--only", "demux", "--executor", "ray", "--address",
                    f"127.0.0.1:{token_head['port']}", cwd=tmp_path, env=user_env(home))
    assert_one_line_error(refused, 1, f"refuses the token from {home}/.ray/auth_token")


def test_doctor_tells_a_token_wanted_from_nothing_listening(
        token_head: dict, tmp_path: Path) -> None:
    def connect_check(address: str, home: Path) -> dict:
        done = bolly("doctor", "--address", address, "--mode", "cluster", "--json",
                     cwd=tmp_path, env=user_env(home), timeout=120)
        assert done.returncode == 1, done.stderr
        return next(c for c in json.loads(done.stdout)["checks"] if c["name"] == "connect")

    empty = tmp_path / "empty-home"
    empty.mkdir()
    wanted = connect_check(f"127.0.0.1:{token_head['port']}", empty)
    assert "wants a token" in wanted["detail"] and "auth_token" in wanted["fix"]
    silent = connect_check(f"127.0.0.1:{free_port()}", token_head["home"])
    assert "nothing listens at" in silent["detail"] and "ray start --head" in silent["fix"]
    joined = bolly("doctor", "--address", f"127.0.0.1:{token_head['port']}", "--mode",
                   "cluster", "--json", cwd=tmp_path, env=user_env(token_head["home"]),
                   timeout=120)
    assert json.loads(joined.stdout)["ready"]["cluster"] is True, joined.stdout


def test_ray_job_submit_runs_a_batch_on_the_head(
        token_head: dict, media: dict[str, MediaCase], tmp_path: Path) -> None:
    files = [gpu_job(media["wav_only"], tmp_path, f"sub-{n}") for n in range(2)]
    done = subprocess.run(
        [str(RAY), "job", "submit", "--address", f"http://127.0.0.1:{token_head['dashboard']}",
         "--", "bolly-ray", "run", *map(str, files), "--only", "demux", "--executor", "ray",
         "--address", "auto", "--json"],
        cwd=tmp_path, capture_output=True,
        # Ray's job CLI reads the token only in token mode (as docs/CLUSTER.md says)
        env={**os.environ, **user_env(token_head["home"]), "RAY_AUTH_MODE": "token"},
        text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "succeeded" in done.stdout
    for n in range(2):
        record = read_manifest(job_dir(tmp_path, f"sub-{n}"))
        assert record["status"] == "succeeded"
        assert record["stages"]["demux"]["status"] == "succeeded"
