"""Job files: strict validation at the boundary, `--set` overrides, the schema."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from bolly_ray.core.job import load_job
from bolly_ray.engine.registry import default_registry
from bolly_ray.errors import UsageError


@pytest.fixture
def registry():
    return default_registry()


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "job.json"
    path.write_text(json.dumps(data))
    return path


def test_relative_paths_are_anchored_at_the_job_file(tmp_path: Path, registry) -> None:
    job = load_job(write(tmp_path, {"id": "j1", "media": "film.mkv", "created": "2026-01-02",
                                    "user": "asha"}), registry.specs)
    assert job.media == tmp_path / "film.mkv"
    assert job.job_dir() == tmp_path / "out" / "2026" / "01" / "02" / "asha" / "j1"


def test_a_job_without_created_finds_its_folder_from_another_day(tmp_path: Path,
                                                                 registry) -> None:
    path = write(tmp_path, {"id": "j1", "media": "film.mkv", "user": "asha"})
    assert load_job(path, registry.specs).created == dt.date.today()  # nothing ran yet
    for day in ("2026/01/02", "2026/03/04"):  # two earlier runs, on two other days
        folder = tmp_path / "out" / day / "asha" / "j1"
        folder.mkdir(parents=True)
        (folder / "manifest.json").write_text("{}")
    (tmp_path / "out/2026/05/06/asha/j1").mkdir(parents=True)  # no manifest: not a job
    (tmp_path / "out/2026/07/08/other/j1").mkdir(parents=True)  # someone else's job
    (tmp_path / "out/2026/07/08/other/j1/manifest.json").write_text("{}")
    job = load_job(path, registry.specs)
    assert job.job_dir() == tmp_path / "out" / "2026" / "03" / "04" / "asha" / "j1"
    pinned = write(tmp_path, {"id": "j1", "media": "film.mkv", "user": "asha",
                              "created": "2026-01-02"})
    assert load_job(pinned, registry.specs).created == dt.date(2026, 1, 2)  # written wins


def test_every_invalid_field_is_reported_on_its_own_line(tmp_path: Path, registry) -> None:
    path = write(tmp_path, {"id": "../escape", "media": "f.mkv", "year": "soon",
                            "colour": "red", "stages": {"demux": {"audio_stream": -1}}})
    with pytest.raises(UsageError) as err:
        load_job(path, registry.specs)
    lines = str(err.value).splitlines()
    assert f"{path}: id: '../escape' is not a usable name" in lines[0]
    assert any(line.startswith(f"{path}: year: ") for line in lines)
    assert any(line.startswith(f"{path}: colour: Extra inputs are not permitted")
               for line in lines)
    assert any(line.startswith(f"{path}: stages.demux.audio_stream: ") for line in lines)


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "a job file holds one JSON object"),
])
def test_unreadable_job_files(tmp_path: Path, registry, content: str, message: str) -> None:
    path = tmp_path / "job.json"
    path.write_text(content)
    with pytest.raises(UsageError, match=message):
        load_job(path, registry.specs)


def test_set_overrides_are_validated_like_the_file(tmp_path: Path, registry) -> None:
    path = write(tmp_path, {"id": "j1", "media": "f.mkv"})
    job = load_job(path, registry.specs, ["demux.audio_stream=1", "mux.enabled=false",
                                          "mux.container=mp4"])
    assert job.stage_settings("demux").audio_stream == 1
    assert job.stage_settings("mux").enabled is False
    assert job.stage_settings("mux").container == "mp4"
    with pytest.raises(UsageError, match=r"stages\.mux\.container: Input should be .auto."):
        load_job(path, registry.specs, ["mux.container=avi"])
    with pytest.raises(UsageError, match="unknown stage 'asrr'"):
        load_job(path, registry.specs, ["asrr.model=base"])
    with pytest.raises(UsageError, match=r"expected STAGE\.KEY=VALUE"):
        load_job(path, registry.specs, ["demux"])


def test_schema_lists_every_stage_setting(registry) -> None:
    from bolly_ray.core.job import job_model

    schema = json.dumps(job_model(registry.specs).model_json_schema())
    for name in registry:
        assert f'"{name}"' in schema
    assert "audio_language" in schema and "mkv_subtitle_format" in schema
