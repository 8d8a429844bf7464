"""The command line as users meet it: exit codes, one-line errors, JSON output, the demo."""

from __future__ import annotations

import json
from pathlib import Path

import pysubs2
import webvtt

from bolly_ray.ops.demo import conversation_audio
from bolly_ray.ops.synth import make_speech_wav
from bolly_ray.runtime.image_names import image_tag
from tests.conftest import assert_one_line_error, bolly, read_manifest, stage_output
from tests.media.make_media import MediaCase


def test_schema_is_valid_json_with_every_stage(tmp_path: Path) -> None:
    done = bolly("schema", cwd=tmp_path)
    assert done.returncode == 0
    schema = json.loads(done.stdout)
    stages = schema["$defs"]["StageSettingsByName"]["properties"]
    assert set(stages) == {"demux", "tmdb", "glossary", "vad", "asr", "diarize", "align",
                           "speakers", "filter", "ner", "lyrics", "translate", "subtitles",
                           "mux"}


def test_prepare_writes_a_job_with_defaults(media: dict[str, MediaCase], tmp_path: Path) -> None:
    done = bolly("prepare", media["mp4_aac"].path, "--title", "Sholay", "--year", "1975",
                 "--target-language", "en", "--target-language", "hi", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    [job_file] = tmp_path.glob("*.job.json")
    job = json.loads(job_file.read_text())
    assert job["id"].startswith("mp4_aac-") and job["media"] == str(media["mp4_aac"].path)
    assert (job["title"], job["year"], job["target_languages"]) == ("Sholay", 1975, ["en", "hi"])
    assert job["stages"]["subtitles"]["max_chars_per_line"] == 42
    again = bolly("prepare", media["mp4_aac"].path, "-o", tmp_path / "again.json", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert json.loads((tmp_path / "again.json").read_text())["id"] == job["id"]


def test_invalid_job_file_exits_2_with_one_line_per_problem(tmp_path: Path) -> None:
    job_file = tmp_path / "job.json"
    job_file.write_text(json.dumps({"id": "x", "media": "f.mkv", "year": 1200,
                                    "stages": {"subtitles": {"max_lines": 0, "colour": 1}}}))
    done = bolly("run", job_file, cwd=tmp_path)
    assert_one_line_error(done, 2, "year: Input should be greater than or equal to 1888",
                          "stages.subtitles.max_lines: Input should be greater than or equal",
                          "stages.subtitles.colour: Extra inputs are not permitted")
    assert not (tmp_path / "out").exists()


def test_missing_job_file_and_bad_flags_exit_2(tmp_path: Path) -> None:
    assert_one_line_error(bolly("run", tmp_path / "nope.json", cwd=tmp_path), 2,
                          "nope.json: no such job file")
    job_file = tmp_path / "job.json"
    job_file.write_text(json.dumps({"id": "x", "media": "f.mkv"}))
    assert_one_line_error(bolly("run", job_file, "--only", "asrr", cwd=tmp_path), 2,
                          "unknown stages: asrr (stages: demux, tmdb, glossary, vad, asr, "
                          "diarize, align, speakers, filter, ner, lyrics, translate, subtitles, "
                          "mux)")
    assert_one_line_error(bolly("run", job_file, "--set", "subtitles.max_cps=fast",
                                cwd=tmp_path), 2, "stages.subtitles.max_cps: Input should be")
    assert not (tmp_path / "out").exists()


def test_a_broken_transcript_the_job_brings_is_refused_before_anything_runs(
        media: dict[str, MediaCase], tmp_path: Path) -> None:
    transcript = tmp_path / "film.transcript.json"
    transcript.write_text(json.dumps({"language": "hi", "segments": [
        {"start": 1.0, "end": 2.0, "text": "Palat."}, {"start": 9.0, "end": 3.0, "text": "x"}]}))
    job_file = tmp_path / "job.json"
    job_file.write_text(json.dumps({"id": "x", "media": str(media["mp4_aac"].path),
                                    "artifacts": {"transcript": str(transcript)}}))
    done = bolly("run", job_file, cwd=tmp_path)
    assert_one_line_error(done, 2, f"job x: artifacts.transcript: {transcript}: not a valid "
                          "transcript: segments.1: Value error, segment ends (3.0) before it "
                          "starts (9.0)")
    assert not (tmp_path / "out").exists()


def test_status_reads_the_manifest_as_table_and_json(tmp_path: Path) -> None:
    demo = bolly("demo", "--out", tmp_path / "demo", "--json", cwd=tmp_path)
    job_dir = Path(json.loads(demo.stdout)["jobs"][0]["job_dir"])
    table = bolly("status", job_dir, cwd=tmp_path)
    assert table.returncode == 0
    assert "job demo: succeeded" in table.stdout and "subtitles" in table.stdout
    as_json = json.loads(bolly("status", tmp_path / "demo" / "demo.job.json", "--json",
                               cwd=tmp_path).stdout)
    assert as_json["stages"]["mux"]["status"] == "succeeded"
    assert_one_line_error(bolly("status", tmp_path, cwd=tmp_path), 2, "no manifest")


DEMO_STAGES = ("demux", "glossary", "vad", "asr", "diarize", "align", "speakers", "filter",
               "ner", "lyrics", "subtitles", "mux")
# no TMDB key and nothing to translate (English to English); diarize runs from the ml
# extra's packaged weights
DEMO_SKIPPED = {"tmdb": "skipped", "translate": "skipped"}


def test_demo_runs_end_to_end_offline(tmp_path: Path) -> None:
    done = bolly("demo", "--out", tmp_path / "demo", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    [job] = json.loads(done.stdout)["jobs"]
    assert job["status"] == "succeeded"
    assert job["stages"] == {**dict.fromkeys(DEMO_STAGES, "succeeded"), **DEMO_SKIPPED}
    job_dir = Path(job["job_dir"])
    srt = pysubs2.load(str(job_dir / "subtitles" / "demo.en.srt"))
    text = " ".join(e.plaintext for e in srt).replace("\n", " ")
    assert "the train to Mumbai" in text and "wait for you" in text  # Whisper heard espeak
    assert len(webvtt.read(str(job_dir / "subtitles" / "demo.en.vtt"))) == len(srt)
    assert (job_dir / "demo.subtitled.mp4").stat().st_size > 0
    again = bolly("demo", "--out", tmp_path / "demo", "--json", cwd=tmp_path)
    stages = json.loads(again.stdout)["jobs"][0]["stages"]
    assert set(stages.values()) == {"cached", "skipped"}  # the clip is rebuilt byte-identical
    diarization = json.loads((job_dir / "06_diarize" / "diarization.json").read_text())
    assert len(diarization["speakers"]) == 1  # espeak has one voice: the reason for --conversation


def test_the_conversation_demo_names_both_speakers_of_a_real_call(
        conversation_demo: Path) -> None:
    call = conversation_audio()
    assert call is not None, "scripts/test installs the ml extra, which ships the call"
    job_dir = conversation_demo
    stages = read_manifest(job_dir)["stages"]
    assert stages["diarize"]["status"] == stages["speakers"]["status"] == "succeeded"
    srt = (job_dir / "subtitles" / "call.en.srt").read_text(encoding="utf-8")
    assert "[Diane]" in srt and "[Sheila]" in srt  # "This is Diane", "And I'm Sheila"
    reference = [line.split(maxsplit=5)
                 for line in call.with_suffix(".stm").read_text().splitlines()]
    segments = json.loads((job_dir / "08_speakers" / "transcript.json").read_text())["segments"]

    def said_by(segment: dict) -> str:  # the reference speaker overlapping it most
        return max(reference, key=lambda r: min(segment["end"], float(r[4]))
                   - max(segment["start"], float(r[3])))[2]

    right = sum(segment["speaker"] == said_by(segment) for segment in segments)
    assert right >= 0.9 * len(segments), [(s["speaker"], s["text"]) for s in segments]


def test_a_hand_written_job_names_the_packaged_model(tmp_path: Path) -> None:
    """`asr.model: tiny.en` finds the demo extra's copy; no site-packages path needed."""
    wav = tmp_path / "line.wav"
    make_speech_wav(wav, ["Raj, the train to Mumbai leaves at nine."], lead_s=0.5, tail_s=0.5)
    job = tmp_path / "hand.job.json"
    job.write_text(json.dumps({"id": "hand", "media": "line.wav", "source_language": "en",
                               "stages": {"asr": {"model": "tiny.en", "beam_size": 1}}}))
    done = bolly("run", job, "--only", "demux,vad,asr", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    [result] = json.loads(done.stdout)["jobs"]
    manifest = {**read_manifest(Path(result["job_dir"])), "dir": Path(result["job_dir"])}
    transcript = stage_output(manifest, "asr", "raw_transcript")
    assert "Mumbai" in " ".join(s["text"] for s in transcript["segments"])


def test_images_build_names_why_a_gpu_stage_has_no_native_image(tmp_path: Path) -> None:
    done = bolly("images", "build", "--stage", "asr", "--dry-run", cwd=tmp_path)
    assert_one_line_error(done, 2, "asr is a GPU stage: in native mode it runs natively "
                          "and has no image; --mode full builds it")
    table = bolly("images", "build", "--stage", "asr", "--mode", "cpu", "--dry-run",
                  cwd=tmp_path, env={"COLUMNS": "200"})
    assert table.returncode == 0, table.stderr
    assert image_tag("asr") in table.stdout and "(estimate)" in table.stdout  # a result: stdout
    bad = bolly("images", "build", "--dry-run", cwd=tmp_path,
                env={"BOLLY_RAY_IMAGE_PREFIX": "My Images/"})
    assert_one_line_error(bad, 2, "BOLLY_RAY_IMAGE_PREFIX='My Images/': not the start of an "
                          "image name")


def test_messages_keep_brackets_and_unwritable_outputs_fail_cleanly(
        media: dict[str, MediaCase], tmp_path: Path) -> None:
    odd = tmp_path / "[bold]film[red] [1080p].mp4"
    odd.write_bytes(b"not media at all")
    done = bolly("prepare", odd, cwd=tmp_path)
    assert_one_line_error(done, 2, f"{odd}: cannot read media")
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    done = bolly("prepare", media["wav_only"].path, "-o", blocker / "job.json", cwd=tmp_path)
    assert_one_line_error(done, 1, f"{blocker}: File exists")


def test_demo_on_the_default_executor_starts_an_embedded_ray(tmp_path: Path) -> None:
    # as users run it: token auth on (a token written into this test's own HOME), and -q
    done = bolly("demo", "--out", tmp_path / "demo", "-q", cwd=tmp_path,
                 env={"BOLLY_RAY_EXECUTOR": "", "RAY_AUTH_MODE": "token",
                      "HOME": str(tmp_path / "home")})
    assert done.returncode == 0, done.stderr
    assert (done.stdout, done.stderr) == ("", "")  # -q: nothing, not even Ray's token line
    assert (tmp_path / "home" / ".ray" / "auth_token").is_file()
    [job_dir] = (tmp_path / "demo" / "out").glob("*/*/*/*/demo")
    manifest = json.loads((job_dir / "manifest.json").read_text())
    runners = {stage: r["runner"] for stage, r in manifest["stages"].items()}
    gpu_kind = {"asr", "diarize", "align"}
    assert runners == {**{s: "actor" if s in gpu_kind else "task" for s in DEMO_STAGES},
                       **dict.fromkeys(DEMO_SKIPPED, None)}
    assert manifest["stages"]["asr"]["metrics"]["model_loads"] == 1
    assert all(r["node_id"] for s, r in manifest["stages"].items() if s not in DEMO_SKIPPED)
