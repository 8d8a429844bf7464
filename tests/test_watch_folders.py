"""Watch folders decide what to take: films that stopped changing, not files being copied
in, not hidden ones, not films that have subtitles; each film once. The real service parts
(its queue in SQLite, its job factory) with the dispatcher not started, so the queue shows
exactly what was taken."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bolly_ray.engine.registry import default_registry
from bolly_ray.service.context import Service
from bolly_ray.service.delivery import deliver
from bolly_ray.service.server import build_service
from bolly_ray.service.settings import ServiceSettings
from bolly_ray.service.watch import WatchFolders
from tests.conftest import MediaCase


@pytest.fixture
def service(tmp_path: Path) -> Service:
    library = tmp_path / "library"
    library.mkdir()
    settings = ServiceSettings(state_dir=tmp_path / "state", watch=(library,),
                               executor="local", source_language="en")
    return build_service(settings, default_registry())


def queued(service: Service) -> list[str]:
    return sorted(Path(row.job["media"]).name for row in service.queue.recent())


def test_a_film_is_taken_once_it_stopped_changing_and_only_once(
        service: Service, media: dict[str, MediaCase]) -> None:
    library = service.settings.watch[0]
    watch = WatchFolders(service, (library,), settle_s=0.3)
    source = media["mkv_two_audio"].path.read_bytes()
    film = library / "Film (1995).mkv"
    with film.open("wb") as copying:
        copying.write(source[: len(source) // 2])
        copying.flush()
        assert watch.scan() == []  # first sight
        time.sleep(0.4)
        copying.write(source[len(source) // 2:])
        copying.flush()
        assert watch.scan() == []  # it grew: still being copied
    time.sleep(0.1)
    assert watch.scan() == []  # unchanged, but not yet for settle_s
    time.sleep(0.3)
    assert watch.scan() == [film]
    assert queued(service) == [film.name]
    time.sleep(0.4)
    assert watch.scan() == []  # taken already
    assert queued(service) == [film.name]


def test_hidden_files_other_files_and_films_with_subtitles_are_left_alone(
        service: Service, media: dict[str, MediaCase]) -> None:
    library = service.settings.watch[0]
    (library / ".partial").mkdir()
    (library / ".partial" / "Film.mkv").write_bytes(media["mkv_two_audio"].path.read_bytes())
    (library / "notes.txt").write_text("not a film")
    subtitled = library / "Old (1970).mkv"
    subtitled.write_bytes(media["mkv_two_audio"].path.read_bytes())
    subtitled.with_name("Old (1970).en.srt").write_text("1\n00:00:01,000 --> 00:00:02,000\nx\n")
    watch = WatchFolders(service, (library,), settle_s=0.0)
    watch.scan()
    time.sleep(0.05)
    assert watch.scan() == []
    assert queued(service) == []


def test_delivery_replaces_its_own_subtitles_but_never_anyone_elses(tmp_path: Path) -> None:
    job_dir = tmp_path / "job"
    (job_dir / "subtitles").mkdir(parents=True)
    for language in ("hi", "hi-Latn", "en"):
        (job_dir / "subtitles" / f"audio.{language}.srt").write_text(f"new {language}\n")
    (job_dir / "subtitles" / "audio.en.ass").write_text("not delivered\n")
    film = tmp_path / "films" / "Film (1995).mkv"
    film.parent.mkdir()
    film.write_bytes(b"film")
    theirs = film.with_name("Film (1995).hi.srt")
    theirs.write_text("someone else's\n")
    written = deliver(film, job_dir)
    assert sorted(p.name for p in written) == ["Film (1995).en.srt", "Film (1995).hi-Latn.srt"]
    assert theirs.read_text() == "someone else's\n"
    (job_dir / "subtitles" / "audio.en.srt").write_text("newer en\n")
    assert [p.name for p in deliver(film, job_dir)] == ["Film (1995).en.srt",
                                                        "Film (1995).hi-Latn.srt"]
    assert film.with_name("Film (1995).en.srt").read_text() == "newer en\n"
