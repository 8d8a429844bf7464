"""mux through the real CLI and ffmpeg: soft tracks, language tags, streams copied as-is."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pysubs2
import pytest

from tests.conftest import bolly, read_manifest
from tests.media.make_media import MediaCase

LINES = {"hi": "नमस्ते, राज", "en": "Hello, Raj", "hi-Latn": "Namaste, Raj"}


def subtitle_folder(root: Path, fmt: str = "srt", languages: tuple[str, ...] = ("hi", "en"),
                    empty: tuple[str, ...] = ()) -> Path:
    """A cue for each language, none for those in `empty` (the subtitles stage then writes
    an empty file)."""
    folder = root / "subs"
    folder.mkdir(parents=True, exist_ok=True)
    for lang, text in ((lang, LINES[lang]) for lang in languages):
        subs = pysubs2.SSAFile()
        if lang not in empty:
            subs.append(pysubs2.SSAEvent(start=500, end=2500, text=text))
        subs.save(str(folder / f"film.{lang}.{fmt}"), format_=fmt)
    return folder


def mux_job(case: MediaCase, root: Path, targets: tuple[str, ...],
            empty: tuple[str, ...] = ()) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    job_file = root / "job.json"
    job_file.write_text(json.dumps({
        "id": "film", "media": str(case.path), "name": "film", "user": "u",
        "created": "2026-11-29", "target_languages": list(targets),
        "out_root": str(root / "out"),
        "artifacts": {"subtitles": str(subtitle_folder(root, languages=targets,
                                                       empty=empty))}}))
    return job_file


def run_mux(case: MediaCase, root: Path, *sets: str,
            targets: tuple[str, ...] = ("en", "hi"), empty: tuple[str, ...] = ()) -> Path:
    flags = [arg for s in sets for arg in ("--set", s)]
    done = bolly("run", mux_job(case, root, targets, empty), "--only", "mux", *flags, cwd=root)
    assert done.returncode == 0, done.stderr
    job_dir = root / "out/2026/11/29/u/film"
    return job_dir / read_manifest(job_dir)["stages"]["mux"]["outputs"]["video"]["path"]


def streams(path: Path) -> list[dict]:
    out = subprocess.run(["ffprobe", "-v", "error", "-print_format", "json", "-show_streams",
                          f"file:{path}"], capture_output=True, check=True, text=True).stdout
    return json.loads(out)["streams"]


def packet_hashes(path: Path, selector: str) -> list[str]:
    """(size, md5) of every packet: equal lists mean the stream was copied, not re-encoded."""
    lines = subprocess.run(["ffmpeg", "-v", "error", "-i", f"file:{path}", "-map", selector,
                            "-c", "copy", "-f", "framemd5", "-"], capture_output=True,
                           check=True, text=True).stdout.splitlines()
    packets = [",".join(field.strip() for field in line.split(",")[-2:])
               for line in lines if line and not line.startswith("#")]
    assert packets
    return packets


def test_mkv_gets_tagged_tracks_and_copied_streams(media: dict[str, MediaCase],
                                                   tmp_path: Path) -> None:
    case = media["mkv_two_audio"]
    out = run_mux(case, tmp_path)
    assert out.name == "film.subtitled.mkv" and out.parent.name == "film"
    found = streams(out)
    subs = [s for s in found if s["codec_type"] == "subtitle"]
    assert [s["codec_name"] for s in subs] == ["subrip", "subrip"]
    assert [(s["tags"]["language"], s["tags"]["title"]) for s in subs] == [
        ("eng", "English"), ("hin", "Hindi")]
    assert [s["disposition"]["default"] for s in subs] == [1, 0]
    assert [s["tags"].get("language") for s in found if s["codec_type"] == "audio"] == [
        "hin", "eng"]
    for selector in ("0:v:0", "0:a:0", "0:a:1"):
        assert packet_hashes(out, selector) == packet_hashes(case.path, selector)


def test_mp4_gets_mov_text_tracks(media: dict[str, MediaCase], tmp_path: Path) -> None:
    case = media["mp4_aac"]
    out = run_mux(case, tmp_path)
    assert out.suffix == ".mp4"
    subs = [s for s in streams(out) if s["codec_type"] == "subtitle"]
    assert [s["codec_name"] for s in subs] == ["mov_text", "mov_text"]
    assert sorted(s["tags"]["language"] for s in subs) == ["eng", "hin"]
    assert packet_hashes(out, "0:v:0") == packet_hashes(case.path, "0:v:0")


@pytest.mark.parametrize("container", ["mkv", "mp4"])
def test_a_second_script_is_told_apart_by_title_and_bcp47_tag(
        container: str, media: dict[str, MediaCase], tmp_path: Path) -> None:
    """hi and hi-Latn share ISO 639-2 "hin": MKV says which is which in the title and a
    LANGUAGE_BCP47 tag, MP4 (no title, no tags through ffmpeg 5.1) in the handler name.
    Tracks follow the job's target order, and the first target is the default even where
    another track has the same language code."""
    out = run_mux(media["mp4_aac"], tmp_path, f"mux.container={container}",
                  targets=("hi-Latn", "hi", "en"))
    subs = [s for s in streams(out) if s["codec_type"] == "subtitle"]
    assert [s["tags"]["language"] for s in subs] == ["hin", "hin", "eng"]
    assert [s["disposition"]["default"] for s in subs] == [1, 0, 0]
    titles = ["Hindi (Latin script)", "Hindi", "English"]
    if container == "mkv":
        assert [s["tags"]["title"] for s in subs] == titles
        assert [s["tags"]["LANGUAGE_BCP47"] for s in subs] == ["hi-Latn", "hi", "en"]
    else:
        assert [s["tags"]["handler_name"] for s in subs] == titles


@pytest.mark.parametrize("container", ["mkv", "mp4"])
def test_a_language_without_cues_gets_no_track(container: str, media: dict[str, MediaCase],
                                               tmp_path: Path) -> None:
    """An SRT with no cue (everything filtered) is a file ffmpeg cannot read: its language
    is left out, the others are muxed, and the manifest counts it."""
    out = run_mux(media["mp4_aac"], tmp_path, f"mux.container={container}",
                  targets=("en", "hi"), empty=("en",))
    subs = [s for s in streams(out) if s["codec_type"] == "subtitle"]
    assert [s["tags"]["language"] for s in subs] == ["hin"]
    metrics = read_manifest(out.parent)["stages"]["mux"]["metrics"]
    assert (metrics["tracks"], metrics["empty_tracks_left_out"]) == (1, 1)


def test_subtitles_without_any_cue_fail_mux_with_a_message_and_no_video(
        media: dict[str, MediaCase], tmp_path: Path) -> None:
    job_file = mux_job(media["mp4_aac"], tmp_path, ("en", "hi"), empty=("en", "hi"))
    done = bolly("run", job_file, "--only", "mux", cwd=tmp_path)
    job_dir = tmp_path / "out/2026/11/29/u/film"
    record = read_manifest(job_dir)["stages"]["mux"]
    # mux is not critical: the job keeps its subtitles and succeeds, and says why mux failed
    assert done.returncode == 0 and record["status"] == "failed", done.stderr
    assert "no cue in any language" in " ".join(done.stderr.split())
    assert record["error"] == ("mux: the subtitles hold no cue in any language (en, hi): no "
                               "track to add (the filter's report says what it removed)")
    assert "Traceback" not in done.stderr
    assert not list(job_dir.rglob("*.subtitled.*"))


def test_a_new_container_replaces_the_earlier_video(media: dict[str, MediaCase],
                                                    tmp_path: Path) -> None:
    mp4 = run_mux(media["mp4_aac"], tmp_path)
    assert mp4.name == "film.subtitled.mp4" and mp4.is_file()
    mkv = run_mux(media["mp4_aac"], tmp_path, "mux.container=mkv")
    assert mkv.name == "film.subtitled.mkv" and mkv.is_file()
    assert not mp4.exists()  # the manifest lists only the mkv: so does the folder
    assert sorted(p.name for p in mkv.parent.glob("*.subtitled.*")) == ["film.subtitled.mkv"]


@pytest.mark.parametrize("container", ["mkv", "mp4"])
def test_mux_output_is_byte_identical_across_runs(container: str, media: dict[str, MediaCase],
                                                  tmp_path: Path) -> None:
    first = run_mux(media["mp4_aac"], tmp_path / "a", f"mux.container={container}")
    second = run_mux(media["mp4_aac"], tmp_path / "b", f"mux.container={container}")
    assert first.read_bytes() == second.read_bytes()


def test_hostile_file_name_runs_through_demux_and_mux_without_side_effects(
        media: dict[str, MediaCase], tmp_path: Path) -> None:
    case = media["hostile_name"]
    work = tmp_path / "work"
    work.mkdir()
    job_file = work / "job.json"
    done = bolly("prepare", case.path, "-o", job_file, "--out-root", work / "out",
                 "--target-language", "en", cwd=work)
    assert done.returncode == 0, done.stderr
    data = json.loads(job_file.read_text())
    assert data["media"] == str(case.path) and data["id"].startswith("it-s-a-film-touch-PWNED")
    data["artifacts"] = {"subtitles": str(subtitle_folder(work))}
    job_file.write_text(json.dumps(data))
    done = bolly("run", job_file, "--only", "demux,mux", cwd=work)
    assert done.returncode == 0, done.stderr
    [out] = (work / "out").rglob("*.subtitled.mkv")
    assert len([s for s in streams(out) if s["codec_type"] == "subtitle"]) == 2
    assert not list(tmp_path.rglob("PWNED")) and not list(case.path.parent.rglob("PWNED"))
    assert not Path("PWNED").exists() and not (Path.home() / "PWNED").exists()
