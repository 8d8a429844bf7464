"""A three-hour film through demux, vad and asr: wall time and peak memory per stage.

Builds (or reuses, with `--film`) a film of faint room tone with an espeak-ng sentence every
60-90 s and a 64x36, 1 fps video stream (tests/media/long_film.py), then, each in its own
process so that each peak is its own:
  ours:  `bolly-ray run JOB --only STAGE --executor local` for demux, vad and asr (Whisper
         tiny.en, CTranslate2 int8, beam 1, the demo's model);
  naive: the libraries the plain way, on the whole file at once: ffmpeg to WAV; faster-
         whisper's `decode_audio` + `get_speech_timestamps`; `decode_audio` +
         `WhisperModel.transcribe` with the vad stage's regions as clip timestamps.
Peak RSS is the kernel's figure for the process (or the children it waited for, e.g.
ffmpeg) when its work is done, before the interpreter's teardown (tests/peak_rss.py).
Word error rates of both transcripts against the script are printed too.
Run: `.venv/bin/python bench/bench_long_film.py` (about 10 minutes on 2 cores; needs the
demo extra's tiny.en model).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
from pathlib import Path

# the film generator lives with the tests, one folder up
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.machine import machine
from bolly_ray.ops.demo import bundled_model
from tests.media.long_film import make_long_film, sparse_script
from tests.peak_rss import Measured, run_measured

BOLLY_RAY = Path(sys.executable).with_name("bolly-ray")
CEILING_MB = 20_000  # the naive asr needs about 10 GB; leave the machine some air

NAIVE_VAD = """
import sys
from faster_whisper.audio import decode_audio
from faster_whisper.vad import VadOptions, get_speech_timestamps
audio = decode_audio(sys.argv[1])
found = get_speech_timestamps(audio, VadOptions(min_speech_duration_ms=250,
    min_silence_duration_ms=500, speech_pad_ms=200, max_speech_duration_s=30.0))
print(len(found), "regions")
"""
NAIVE_ASR = """
import json, sys
from faster_whisper import WhisperModel
from faster_whisper.audio import decode_audio
regions = json.load(open(sys.argv[2]))["segments"]
model = WhisperModel(sys.argv[3], device="cpu", compute_type="int8", local_files_only=True)
pieces, _ = model.transcribe(decode_audio(sys.argv[1]), language="en", beam_size=1,
    word_timestamps=True, vad_filter=False, condition_on_previous_text=False,
    clip_timestamps=[t for r in regions for t in (r["start"], r["end"])])
print(json.dumps([p.text for p in pieces]))
"""


def words_of(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


def wer(reference: list[str], texts: list[str]) -> float:
    import jiwer

    return jiwer.wer(" ".join(reference), " ".join(words_of(" ".join(texts))))


def ours(job: Path, stage: str, cwd: Path) -> Measured:
    done = run_measured([str(BOLLY_RAY), "run", str(job), "--only", stage, "--executor",
                         "local", "-q"], cwd=cwd, ceiling_mb=CEILING_MB, timeout_s=3600)
    if done.returncode:
        raise SystemExit(f"{stage} failed:\n{done.output[-3000:]}")
    return done


def naive(script: str, *args: str, cwd: Path) -> Measured:
    done = run_measured([sys.executable, "-c", script, *args], cwd=cwd, ceiling_mb=CEILING_MB,
                        timeout_s=3600)
    if done.returncode:
        raise SystemExit(f"naive run failed:\n{done.output[-3000:]}")
    return done


def row(stage: str, mine: Measured, plain: Measured, what: str) -> str:
    return (f"| {stage} | {mine.seconds:.1f} s | {mine.peak_mb:,.0f} MB | {plain.seconds:.1f} s "
            f"| {plain.peak_mb:,.0f} MB | {what} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=float, default=3.0)
    parser.add_argument("--film", type=Path, help="reuse this film (made with --hours)")
    args = parser.parse_args()
    model = bundled_model()
    if model is None:
        raise SystemExit("needs the demo extra's tiny.en model")
    work = Path(tempfile.mkdtemp(prefix="bench-long-", dir="/tmp"))
    try:
        film = args.film or work / "film.mp4"
        if args.film is None:
            make_long_film(film, args.hours * 3600)
        print(film, f"{film.stat().st_size / 2**20:.0f} MB", flush=True)
        run(work, film, args.hours * 3600, model)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(work: Path, film: Path, seconds: float, model: Path) -> None:
    job = work / "job.json"
    job.write_text(json.dumps({"id": "film", "media": str(film), "source_language": "en",
                               "out_root": str(work / "out"), "stages": {"asr": {
                                   "model": str(model), "beam_size": 1}}}))
    mine = {stage: ours(job, stage, work) for stage in ("demux", "vad", "asr")}
    [job_dir] = (work / "out").glob("*/*/*/*/film")
    wav, speech = job_dir / "01_demux" / "audio.wav", next(job_dir.glob("*_vad/speech.json"))
    transcript = json.loads(next(job_dir.glob("*_asr/transcript.json")).read_text())
    plain_wav = work / "plain.wav"
    plain = {"demux": run_measured(["ffmpeg", "-nostdin", "-v", "error", "-i", str(film),
                                    "-vn", "-ac", "1", "-ar", "16000", "-c:a", "pcm_s16le",
                                    str(plain_wav)], cwd=work, ceiling_mb=CEILING_MB),
             "vad": naive(NAIVE_VAD, str(wav), cwd=work),
             "asr": naive(NAIVE_ASR, str(wav), str(speech), str(model), cwd=work)}
    plain_wav.unlink(missing_ok=True)
    reference = words_of(" ".join(text for _, text in sparse_script(seconds)))
    naive_texts = json.loads(plain["asr"].output.strip().splitlines()[-1])
    print(f"\n{machine()}; {seconds / 3600:g} h film, {len(reference)} words spoken\n")
    print("| stage | bolly-ray wall | bolly-ray peak RSS | naive wall | naive peak RSS | naive |")
    print("|---|---|---|---|---|---|")
    print(row("demux", mine["demux"], plain["demux"], "ffmpeg to WAV"))
    print(row("vad", mine["vad"], plain["vad"], "decode_audio + get_speech_timestamps"))
    print(row("asr", mine["asr"], plain["asr"], "decode_audio + WhisperModel.transcribe"))
    print(f"\nWER against the script: bolly-ray "
          f"{wer(reference, [s['text'] for s in transcript['segments']]):.3f}, naive "
          f"{wer(reference, naive_texts):.3f}")


if __name__ == "__main__":
    main()
