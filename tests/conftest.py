"""Shared fixtures: hermetic environment, generated media, fake stages, the real CLI."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bolly_ray.stages.formats.transcript import Segment, Word
from tests.media.make_media import MediaCase, build_all

REPO = Path(__file__).resolve().parent.parent
PLUGIN_SITE = Path(__file__).resolve().parent / "plugin_site"
BOLLY_RAY = Path(sys.executable).with_name("bolly-ray")


@pytest.fixture(scope="session")
def ray_tmpdir() -> Iterator[Path]:
    """A private Ray temp folder; short, since Ray's socket paths must fit in 107 bytes."""
    folder = Path(tempfile.mkdtemp(prefix="br-", dir="/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def image_prefix() -> Iterator[str]:
    """Stage images of this test session only: a second suite on the same Docker engine
    (another checkout, a CI run beside a developer's) builds and removes its own. Set for
    the whole session, before any module's fixture builds images."""
    prefix = f"bolly-ray-test-{uuid.uuid4().hex[:8]}-"
    with pytest.MonkeyPatch.context() as session_env:
        session_env.setenv("BOLLY_RAY_IMAGE_PREFIX", prefix)
        yield prefix
    with contextlib.suppress(Exception):  # no engine here: nothing was built
        import docker
        from bolly_ray.ops.images import remove_prefixed

        remove_prefixed(docker.from_env(), prefix)


@pytest.fixture(autouse=True)
def _hermetic_env(monkeypatch: pytest.MonkeyPatch, ray_tmpdir: Path, image_prefix: str) -> None:
    hermetic(monkeypatch, ray_tmpdir, image_prefix)


def hermetic(monkeypatch: pytest.MonkeyPatch, ray_tmpdir: Path, image_prefix: str) -> None:
    """What every test runs under, whatever the machine has (tokens, caches, a cluster)."""
    monkeypatch.setenv("BOLLY_RAY_IMAGE_PREFIX", image_prefix)  # again, should a test change it
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(ray_tmpdir / "torch"))  # no stray cached weights
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    monkeypatch.setenv("RAY_TMPDIR", str(ray_tmpdir))
    monkeypatch.setenv("BOLLY_RAY_EXECUTOR", "local")  # tests that want Ray say so
    for secret in ("TMDB_API_KEY", "TMDB_READ_TOKEN", "HF_TOKEN"):
        monkeypatch.delenv(secret, raising=False)


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, MediaCase]:
    cache = os.environ.get("BOLLY_TEST_MEDIA")
    root = Path(cache) if cache else tmp_path_factory.mktemp("media")
    return build_all(root)


@pytest.fixture(scope="session")
def conversation_demo(tmp_path_factory: pytest.TempPathFactory, ray_tmpdir: Path,
                      image_prefix: str) -> Path:
    """The job folder of `bolly-ray demo --conversation` (pyannote.audio's real call, named
    speakers), run once for the tests that read it."""
    out = tmp_path_factory.mktemp("conversation")
    with pytest.MonkeyPatch.context() as monkeypatch:
        hermetic(monkeypatch, ray_tmpdir, image_prefix)
        done = bolly("demo", "--conversation", "--out", out / "demo", "--json", cwd=out)
    assert done.returncode == 0, done.stderr
    return Path(json.loads(done.stdout)["jobs"][0]["job_dir"])


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory, ray_tmpdir: Path, image_prefix: str
             ) -> dict[str, Path]:
    """`bolly-ray demo` run once: its clip, its audio and its subtitles (a reference)."""
    out = tmp_path_factory.mktemp("demo-run")
    with pytest.MonkeyPatch.context() as monkeypatch:
        hermetic(monkeypatch, ray_tmpdir, image_prefix)
        done = bolly("demo", "--out", out / "demo", "--json", cwd=out, timeout=300)
    assert done.returncode == 0, done.stderr
    job_dir = Path(json.loads(done.stdout)["jobs"][0]["job_dir"])
    return {"clip": next(out.rglob("demo-film.mp4")), "audio": job_dir / "01_demux/audio.wav",
            "srt": job_dir / "subtitles/demo.en.srt"}


def bolly(*args: str | Path, cwd: Path, plugins: bool = False, timeout: float = 120,
          env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the installed `bolly-ray` console script for real."""
    full_env = {**os.environ, **(env or {})}
    if plugins:
        full_env["PYTHONPATH"] = os.pathsep.join([str(PLUGIN_SITE), full_env.get("PYTHONPATH", "")])
    return subprocess.run([str(BOLLY_RAY), *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env=full_env, check=False)


def segment(start: float, end: float, text: str, **fields: object) -> Segment:
    """A segment whose words share its time evenly."""
    tokens = text.split()
    step = (end - start) / max(1, len(tokens))
    words = [Word(text=t, start=round(start + i * step, 3), end=round(start + (i + 1) * step, 3))
             for i, t in enumerate(tokens)]
    return Segment(start=start, end=end, text=text, words=words, **fields)


def read_manifest(job_dir: Path) -> dict:
    return json.loads((job_dir / "manifest.json").read_text())


def stage_output(manifest: dict, stage: str, artifact: str) -> dict:
    """One published JSON artifact, from a manifest with the job folder added as "dir"."""
    record = manifest["stages"][stage]["outputs"][artifact]
    return json.loads((manifest["dir"] / record["path"]).read_text())


def words_of(text: str) -> list[str]:
    """Lower-case words, punctuation dropped: what word error rates are computed on."""
    return re.findall(r"[a-z]+", text.lower())


def assert_one_line_error(done: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout
    for needle in needles:
        assert needle in done.stderr, done.stderr
