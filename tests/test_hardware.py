"""`bolly-ray hardware`: the profile, its recommendation, its one-hour cache, and `prepare`
leaving the settings that depend on it auto. No GPU exists here, so a stand-in `nvidia-smi`
on PATH answers the driver's query the way the real tool does; everything from parsing
onwards is the real code."""

from __future__ import annotations

import importlib.util
import json
import os
import time
from pathlib import Path

import pytest

from bolly_ray.core.hardware import CACHE_NAME, HardwareProfile, cached_profile
from tests.conftest import bolly
from tests.media.make_media import MediaCase

H200 = "NVIDIA H200, 143771, 9.0, 570.86.15"
SMALL = "NVIDIA GeForce GTX 1650, 4096, 7.5, 535.54.03"


def fake_smi(tmp_path: Path, line: str) -> dict[str, str]:
    folder = tmp_path / "fakebin"
    folder.mkdir(exist_ok=True)
    smi = folder / "nvidia-smi"
    smi.write_text(f"#!/bin/sh\necho '{line}'\n")
    smi.chmod(0o755)
    return {"PATH": f"{folder}{os.pathsep}{os.environ['PATH']}"}


def profile_json(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> dict:
    done = bolly("hardware", "--json", "--out-root", tmp_path / "out", *args, cwd=tmp_path,
                 env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_this_cpu_only_machine_gets_a_cpu_recommendation(tmp_path: Path) -> None:
    profile = profile_json(tmp_path)
    assert profile["gpus"] == [] and profile["cpus"] >= 1 and profile["ram_mb"] > 0
    assert profile["recommendation"] == {"device": "cpu", "backend": "faster-whisper",
                                         "model": "base", "compute_type": "int8",
                                         "batch_size": 1, "max_speakers": 8}


@pytest.mark.parametrize("line, model, batch, speakers",
                         [(H200, "large-v3", 16, 20), (SMALL, "medium", 4, 12)])
def test_gpus_from_the_driver_pick_the_model_that_fits(tmp_path: Path, line: str, model: str,
                                                       batch: int, speakers: int) -> None:
    profile = profile_json(tmp_path, env=fake_smi(tmp_path, line))
    [gpu] = profile["gpus"]
    name, vram, capability, driver = (p.strip() for p in line.split(","))
    assert gpu == {"name": name, "vram_mb": int(vram), "compute_capability": capability,
                   "driver": driver}
    backend = "whisperx" if importlib.util.find_spec("whisperx") else "faster-whisper"
    assert profile["recommendation"] == {"device": "cuda", "backend": backend, "model": model,
                                         "compute_type": "float16", "batch_size": batch,
                                         "max_speakers": speakers}


def test_the_cache_lasts_an_hour_and_refresh_or_corruption_redetects(tmp_path: Path) -> None:
    first = profile_json(tmp_path)
    again = profile_json(tmp_path, env=fake_smi(tmp_path, H200))
    assert again == first  # cached: the new GPU is not seen yet
    refreshed = profile_json(tmp_path, "--refresh", env=fake_smi(tmp_path, H200))
    assert refreshed["gpus"] and refreshed["detected_at"] > first["detected_at"]
    cache = tmp_path / "out" / CACHE_NAME
    cache.write_text("{ not json")
    assert profile_json(tmp_path)["gpus"] == []
    stale = json.loads(cache.read_text()) | {"detected_at": time.time() - 3601}
    cache.write_text(json.dumps(stale))
    assert profile_json(tmp_path)["detected_at"] > stale["detected_at"]
    future = json.loads(cache.read_text()) | {"detected_at": time.time() + 86400}
    cache.write_text(json.dumps(future))
    assert profile_json(tmp_path)["detected_at"] < future["detected_at"]  # detected again


def test_the_profile_is_printed_on_stdout(tmp_path: Path) -> None:
    done = bolly("hardware", "--out-root", tmp_path / "out", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "recommended:" in done.stdout and "recommended:" not in done.stderr


def test_prepare_leaves_hardware_settings_auto_even_on_a_gpu_machine(
        media: dict[str, MediaCase], tmp_path: Path) -> None:
    """The job may run elsewhere (a CPU-only head sends ASR to GPU workers): the run fits
    auto to the hardware that hosts each stage, so prepare pins nothing; --set still wins."""
    done = bolly("prepare", media["wav_only"].path, "-o", tmp_path / "gpu.json", "--out-root",
                 tmp_path / "out", "--set", "asr.batch_size=8", cwd=tmp_path,
                 env=fake_smi(tmp_path, H200))
    assert done.returncode == 0, done.stderr
    stages = json.loads((tmp_path / "gpu.json").read_text())["stages"]
    asr = stages["asr"]
    assert [asr[k] for k in ("backend", "model", "device", "compute_type", "batch_size")] == [
        "auto", "auto", "auto", "auto", 8]
    assert (stages["diarize"]["device"], stages["diarize"]["max_speakers"]) == ("auto", "auto")
    assert not (tmp_path / "out" / CACHE_NAME).exists()  # the hardware was not even asked
    done = bolly("prepare", media["wav_only"].path, "-o", tmp_path / "set.json", "--out-root",
                 tmp_path / "out", "--set", "asr.model=small", cwd=tmp_path)
    assert json.loads((tmp_path / "set.json").read_text())["stages"]["asr"]["model"] == "small"


def test_a_profile_round_trips_through_the_cache(tmp_path: Path) -> None:
    profile = cached_profile(tmp_path, refresh=True)
    assert isinstance(profile, HardwareProfile)
    assert cached_profile(tmp_path) == profile
