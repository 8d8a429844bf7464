"""A job folder on a disk that fills up: the run fails with a clear message, nothing is
half-published or left as a temp file, and the same command resumes once space returns.
The disk is a real tmpfs of a few MiB (mounting needs root, as on the CI machine)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bolly_ray.core.files import write_atomic
from tests.conftest import assert_one_line_error, bolly, read_manifest


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def grow(mount: Path, size: str) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(mount)], check=True)


def leftovers(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                  if p.name.endswith(".tmp") or ".scratch" in p.parts)


def test_a_full_disk_fails_the_stage_cleanly_and_the_rerun_resumes(small_disk: Path,
                                                                   tmp_path: Path) -> None:
    film = tmp_path / "film.wav"  # 150 s of 16 kHz audio: 4.8 MB of WAV, more than the disk
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=f=300:sample_rate=16000",
                    "-t", "150", str(film)], check=True)
    job_file = tmp_path / "job.json"
    job_file.write_text(json.dumps({"id": "film", "media": str(film), "source_language": "en",
                                    "out_root": str(small_disk / "out")}))
    done = bolly("run", job_file, "--only", "demux", cwd=tmp_path)
    assert_one_line_error(done, 1, "job film failed at demux: ", "No space left on device",
                          "resume with: bolly-ray run")
    job_dir = next((small_disk / "out").glob("*/*/*/*/film"))
    manifest = read_manifest(job_dir)
    assert manifest["status"] == "failed"
    assert manifest["stages"]["demux"]["status"] == "failed"
    assert manifest["stages"]["demux"]["outputs"] == {}
    assert not (job_dir / "01_demux").exists()  # nothing half-published
    assert leftovers(job_dir) == []  # the failed attempt's scratch was freed, no temp files

    grow(small_disk, "50m")
    again = bolly("run", job_file, "--only", "demux", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    record = read_manifest(job_dir)["stages"]["demux"]
    assert record["status"] == "succeeded" and record["attempts"] == 1
    assert record["metrics"]["audio_s"] == pytest.approx(150.0, abs=0.01)


def test_a_manifest_that_cannot_be_written_leaves_the_old_one_and_no_temp_file(
        small_disk: Path) -> None:
    manifest = small_disk / "manifest.json"
    write_atomic(manifest, '{"old": true}')
    (small_disk / "filler").write_bytes(b"\0" * (3 * 1024 * 1024 - 8192))
    with pytest.raises(OSError) as caught:
        write_atomic(manifest, "x" * 100_000)
    assert caught.value.filename == str(manifest) and caught.value.errno == 28
    assert manifest.read_text() == '{"old": true}'
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler", "manifest.json"]
