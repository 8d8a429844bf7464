"""Crash and concurrency through the real CLI: SIGKILL mid-stage, then resume; a second
concurrent run of the same job is refused. Uses the `slowcopy` plugin stage, which pauses
halfway through writing its output."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from bolly_ray.core.hashing import artifact_files
from bolly_ray.stages.formats.transcript import Segment, Transcript
from tests.conftest import BOLLY_RAY, PLUGIN_SITE, assert_one_line_error, bolly, read_manifest
from tests.media.make_media import MediaCase

# no TMDB key and no translation model on a test machine: both are skipped, with the reason
UNAVAILABLE_HERE = {"tmdb": "skipped", "translate": "skipped"}


def make_job(media: MediaCase, root: Path, pause_s: float) -> Path:
    transcript = root / "transcript.json"
    Transcript(language="en", segments=[
        Segment(start=0.3, end=3.0, text=media.spoken_text)]).write(transcript)
    job_file = root / "job.json"
    job_file.write_text(json.dumps({
        "id": "film", "media": str(media.path), "user": "tester", "created": "2026-11-29",
        "out_root": str(root / "out"), "artifacts": {"transcript": str(transcript)},
        "stages": {"slowcopy": {"pause_s": pause_s}}}))
    return job_file


def job_dir(root: Path) -> Path:
    return root / "out" / "2026" / "11" / "29" / "tester" / "film"


def start_run(job_file: Path, executor: str = "local") -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(PLUGIN_SITE), "BOLLY_RAY_EXECUTOR": executor}
    return subprocess.Popen([str(BOLLY_RAY), "run", str(job_file)],
                            cwd=job_file.parent, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=default_sigint)


def default_sigint() -> None:
    """Ctrl-C as a terminal user has it: a shell that started the tests in the background
    (`.ci/run &`) hands its children SIGINT ignored, and Python then never raises
    KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def kill_group(run: subprocess.Popen[str]) -> None:
    """SIGKILL what is left of a run's process group (an embedded Ray's helpers)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(run.pid, signal.SIGKILL)


def wait_until_running(folder: Path, stage: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if read_manifest(folder)["stages"][stage]["status"] == "running":
                return
        except (FileNotFoundError, KeyError, json.JSONDecodeError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"{stage} never started")


def published(folder: Path) -> dict[str, bytes]:
    """Every published output's bytes (a folder artifact: its files, in order)."""
    manifest = read_manifest(folder)
    return {f"{stage}.{name}": b"".join(f.read_bytes() for f in artifact_files(folder / o["path"]))
            for stage, record in manifest["stages"].items()
            for name, o in record["outputs"].items()}


@pytest.mark.parametrize("executor", ["local", "ray"])
def test_sigkill_mid_stage_then_rerun_gives_identical_outputs(
        executor: str, media: dict[str, MediaCase], tmp_path: Path) -> None:
    case = media["mkv_two_audio"]
    reference = tmp_path / "reference"
    reference.mkdir()
    done = bolly("run", make_job(case, reference, 1.0), cwd=reference, plugins=True)
    assert done.returncode == 0, done.stderr

    crashed = tmp_path / "crashed"
    crashed.mkdir()
    job_file = make_job(case, crashed, 1.0)
    run = start_run(job_file, executor)
    wait_until_running(job_dir(crashed), "slowcopy")
    time.sleep(0.3)  # the stage has written half of its output by now
    os.kill(run.pid, signal.SIGKILL)
    run.wait()
    kill_group(run)
    if executor == "local":  # a Ray worker's scratch lives on the worker, not here
        partial = list((job_dir(crashed) / ".scratch").rglob("copy.wav"))
        assert partial and partial[0].stat().st_size > 0  # killed with half an output
    assert not list(job_dir(crashed).glob("*_slowcopy"))  # ...and nothing published

    done = bolly("run", job_file, cwd=crashed, plugins=True, env={"BOLLY_RAY_EXECUTOR": executor})
    assert done.returncode == 0, done.stderr
    manifest = read_manifest(job_dir(crashed))
    statuses = {name: r["status"] for name, r in manifest["stages"].items()}
    for stage in ("glossary", "subtitles", "mux"):  # they may not have run before the kill
        assert statuses.pop(stage) in ("cached", "succeeded")
    assert statuses == {"demux": "cached", "slowcopy": "succeeded", **UNAVAILABLE_HERE}
    outputs = published(job_dir(crashed))
    assert set(outputs) == {"demux.audio", "demux.media_info", "glossary.glossary",
                            "subtitles.subtitles", "mux.video", "slowcopy.audio_copy"}
    assert outputs == published(job_dir(reference))
    assert not (job_dir(crashed) / ".scratch").exists()


def test_a_second_concurrent_run_exits_1_with_a_lock_message(
        media: dict[str, MediaCase], tmp_path: Path) -> None:
    job_file = make_job(media["mp4_aac"], tmp_path, 8.0)
    first = start_run(job_file)
    try:
        wait_until_running(job_dir(tmp_path), "slowcopy")
        second = bolly("run", job_file, cwd=tmp_path, plugins=True)
        assert_one_line_error(second, 1, f"job film is already being run by pid {first.pid}")
    finally:
        first.wait(timeout=60)
    assert first.returncode == 0
    assert read_manifest(job_dir(tmp_path))["status"] == "succeeded"


def test_rerun_of_an_unchanged_job_executes_no_stage(media: dict[str, MediaCase],
                                                     tmp_path: Path) -> None:
    job_file = make_job(media["webm"], tmp_path, 0.0)
    first = bolly("run", job_file, cwd=tmp_path, plugins=True)
    assert first.returncode == 0, first.stderr
    before = read_manifest(job_dir(tmp_path))
    # the job brings its transcript: the speech stages that would make it do not run at all
    statuses = {name: r["status"] for name, r in before["stages"].items()}
    assert statuses == {"demux": "succeeded", "glossary": "succeeded", "subtitles": "succeeded",
                        "mux": "succeeded", "slowcopy": "succeeded", **UNAVAILABLE_HERE}
    second = bolly("run", job_file, "--json", cwd=tmp_path, plugins=True)
    after = read_manifest(job_dir(tmp_path))
    for stage, record in after["stages"].items():
        if stage in UNAVAILABLE_HERE:
            continue
        assert record["status"] == "cached"
        assert record["ended_at"] == before["stages"][stage]["ended_at"]
        assert record["attempts"] == before["stages"][stage]["attempts"]
    summary = json.loads(second.stdout)
    assert summary["jobs"][0]["status"] == "succeeded"
    assert set(summary["jobs"][0]["stages"].values()) == {"cached", "skipped"}


def test_ctrl_c_stops_cleanly_and_the_same_command_resumes(
        media: dict[str, MediaCase], tmp_path: Path) -> None:
    # a long pause: on a loaded CI machine the signal may come seconds after the poll saw
    # slowcopy running, and the run must still be inside it (the interrupt is immediate)
    job_file = make_job(media["mp4_aac"], tmp_path, 30.0)
    run = start_run(job_file)
    wait_until_running(job_dir(tmp_path), "slowcopy")
    run.send_signal(signal.SIGINT)
    _, stderr = run.communicate(timeout=30)
    assert run.returncode == 130
    assert "interrupted; rerun the same command to resume" in stderr
    assert "Traceback" not in stderr
    manifest = read_manifest(job_dir(tmp_path))
    assert manifest["status"] == "failed"
    assert manifest["stages"]["slowcopy"]["status"] == "pending"
    assert manifest["stages"]["slowcopy"]["error"] == "interrupted"
    assert not (job_dir(tmp_path) / ".scratch").exists()
    done = bolly("run", job_file, "--set", "slowcopy.pause_s=0", cwd=tmp_path, plugins=True)
    assert done.returncode == 0, done.stderr
    assert read_manifest(job_dir(tmp_path))["stages"]["slowcopy"]["status"] == "succeeded"


def test_status_watch_follows_a_run_to_its_end(media: dict[str, MediaCase],
                                               tmp_path: Path) -> None:
    job_file = make_job(media["mp4_aac"], tmp_path, 3.0)
    run = start_run(job_file)
    try:
        wait_until_running(job_dir(tmp_path), "slowcopy")
        watch = bolly("status", job_dir(tmp_path), "--watch", "--interval", "0.2", cwd=tmp_path)
    finally:
        run.wait(timeout=60)
    assert watch.returncode == 0, watch.stderr
    # it began while slowcopy ran, so this final frame means it followed the run to its end
    assert "job film: succeeded" in watch.stdout
    assert "job film: running" not in watch.stdout  # not a terminal: only the last frame
    assert read_manifest(job_dir(tmp_path))["status"] == "succeeded"


def test_status_of_a_run_that_died_says_so_and_watch_stops(media: dict[str, MediaCase],
                                                           tmp_path: Path) -> None:
    job_file = make_job(media["mp4_aac"], tmp_path, 60.0)
    run = start_run(job_file)
    wait_until_running(job_dir(tmp_path), "slowcopy")
    still = bolly("status", job_dir(tmp_path), cwd=tmp_path)
    assert still.returncode == 0 and "no run holds" not in still.stderr
    os.kill(run.pid, signal.SIGKILL)
    run.wait()
    kill_group(run)
    once = bolly("status", job_dir(tmp_path), cwd=tmp_path)
    assert once.returncode == 0
    assert "job film: running" in once.stdout
    assert "no run holds this job any more; rerun it to resume" in once.stderr
    started = time.monotonic()
    watch = bolly("status", job_dir(tmp_path), "--watch", cwd=tmp_path, timeout=30)
    assert watch.returncode == 1
    assert "no run holds this job any more" in watch.stdout
    assert time.monotonic() - started < 15
