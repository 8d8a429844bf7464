"""diarize's segmentation batch on a CPU: peak memory and time, each batch in its own process.

The packaged backend slides segmentation-3.0 over a stretch of speech, a ten-second window
every second, several windows through the network at once. On a GPU a batch is throughput;
on a CPU its intermediates (SincNet's 80 filters over each window's 160,000 samples, then the
LSTM's) are only memory. This runs diarize's own code (`PackagedDiarizer.diarize_wav`, one
stretch, as a long vad region gives it) on real speech, the nine LibriSpeech speakers of
voxint joined and repeated to `--minutes`, with each batch size, and prints the peak resident
memory of the whole process (the models loaded included; the kernel's figure, up to the end
of its work: tests/peak_rss.py), the seconds the diarization took (loading excluded), each
beside batch 32 (pyannote's default), and whether the turns are the same as batch 32's.
Run: `.venv/bin/python bench/bench_diarize_batch.py [--minutes 5] [--batches 1,4,8,32]`
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.machine import machine
from bench.recordings import joined, librispeech_clips, write_wav
from bolly_ray.stages.support.audio import SAMPLE_RATE, read_wav
from tests.peak_rss import Measured, run_measured

REFERENCE_BATCH = 32
DIARIZE = """
import json, sys, time
from pathlib import Path
from bolly_ray.stages.packaged_diarizer import PackagedDiarizer
from bolly_ray.stages.support.audio import SAMPLE_RATE, wav_samples
wav, batch = Path(sys.argv[1]), int(sys.argv[2])
diarizer = PackagedDiarizer("cpu", 0.175)
diarizer.segmentation_batch_size = batch
started = time.perf_counter()
found = diarizer.diarize_wav(wav, [(0.0, wav_samples(wav) / SAMPLE_RATE)], None, None)
seconds = time.perf_counter() - started
turns = [(round(t.start, 3), round(t.end, 3), label) for t, _, label
         in found.exclusive_speaker_diarization.itertracks(yield_label=True)]
print(json.dumps({"seconds": seconds, "turns": turns}))
"""


def long_speech(minutes: float, work: Path) -> Path:
    clips = librispeech_clips()
    if not clips:
        raise SystemExit("needs voxint's LibriSpeech clips (scripts/test installs them)")
    once = read_wav(joined(clips, work).audio)
    repeats = max(1, round(minutes * 60 * SAMPLE_RATE / len(once)))
    path = work / "speech.wav"
    write_wav(path, np.tile(once, repeats))
    return path


def measure(wav: Path, batch: int, cwd: Path) -> tuple[Measured, dict]:
    done = run_measured([sys.executable, "-c", DIARIZE, str(wav), str(batch)], cwd=cwd,
                        ceiling_mb=8192, timeout_s=3600)
    if done.returncode:
        raise SystemExit(f"batch {batch} failed:\n{done.output[-3000:]}")
    return done, json.loads(done.output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--batches", default="1,2,4,8,16,32")
    args = parser.parse_args()
    batches = sorted({int(b) for b in args.batches.split(",")} | {REFERENCE_BATCH})
    with tempfile.TemporaryDirectory(prefix="bench-diarize-batch-") as tmp:
        work = Path(tmp)
        wav = long_speech(args.minutes, work)
        minutes = len(read_wav(wav)) / SAMPLE_RATE / 60
        results = {batch: measure(wav, batch, work) for batch in batches}
    reference, found = results[REFERENCE_BATCH]
    print(f"\n{machine()}; {minutes:.1f} min of speech in one stretch, "
          f"{len(found['turns'])} turns at batch {REFERENCE_BATCH}\n")
    print("| batch | peak RSS | vs 32 | diarize time | vs 32 | same turns as 32 |")
    print("|---|---|---|---|---|---|")
    for batch, (done, out) in results.items():
        print(f"| {batch} | {done.peak_mb:,.0f} MB | {done.peak_mb / reference.peak_mb:.2f} | "
              f"{out['seconds']:.1f} s | {out['seconds'] / found['seconds']:.2f} | "
              f"{'yes' if out['turns'] == found['turns'] else 'no'} |")


if __name__ == "__main__":
    main()
