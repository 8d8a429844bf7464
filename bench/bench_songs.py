"""Songs found in real music/speech mixes: the lyrics stage's YAMNet detector beside its
hand-made spectral features, on the same audio.

Mixes (bench/song_mixes.py): real dialogue (pyannote.audio's call, LibriSpeech), two real
music tracks as songs at exact times, and dialogue over a third track's music 12 dB (and,
harder, 6 dB) under it, which must not be a song. For each detector: per-second precision
and recall of song time, songs found, false songs, and how far each found song's start and
end lie from the truth (the largest over all mixes is what the 1 s target is about). The
audio side alone decides here: no transcript, so no text evidence.

Run: `.venv/bin/python bench/bench_songs.py [--mixes 6] [--check]` (`--check` exits 1 when
YAMNet misses a song, finds a false one, or puts a boundary more than 1 s off).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.machine import machine
from bench.song_mixes import SongMix, available, song_mix
from bolly_ray.stages.lyrics import LyricsSettings, music_seconds, song_spans

DETECTORS = ("yamnet", "features")
SCORE_LEVELS_DB = (-12.0, -6.0)
BOUNDARY_TARGET_S = 1.0


@dataclass
class Score:
    found: float = 0.0  # seconds detected as song
    truth: float = 0.0  # seconds that are song
    hit: float = 0.0  # seconds both
    songs: int = 0
    songs_found: int = 0
    false_songs: int = 0
    worst_boundary_s: float = 0.0
    seconds_of_work: float = 0.0

    def add(self, detected: list[tuple[float, float]], mix: SongMix) -> None:
        self.found += sum(e - s for s, e in detected)
        self.truth += sum(e - s for s, e in mix.songs)
        self.hit += sum(overlap(d, t) for d in detected for t in mix.songs)
        self.false_songs += sum(all(overlap(d, t) == 0 for t in mix.songs) for d in detected)
        for truth in mix.songs:
            self.songs += 1
            matched = [d for d in detected if overlap(d, truth) > 0]
            if not matched:
                self.worst_boundary_s = float("inf")
                continue
            self.songs_found += 1
            best = max(matched, key=lambda d: overlap(d, truth))
            error = max(abs(best[0] - truth[0]), abs(best[1] - truth[1]))
            self.worst_boundary_s = max(self.worst_boundary_s, error)

    def line(self, name: str, audio_s: float) -> str:
        precision = self.hit / self.found if self.found else 0.0
        recall = self.hit / self.truth if self.truth else 0.0
        return (f"{name:9} precision {precision:6.1%}  recall {recall:6.1%}  songs "
                f"{self.songs_found}/{self.songs}  false {self.false_songs}  worst boundary "
                f"{self.worst_boundary_s:5.2f} s  {audio_s / self.seconds_of_work:5.0f}x RT")


def overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


def detected_songs(mix: SongMix, detector: str) -> tuple[list[tuple[float, float]], float]:
    settings = LyricsSettings(detector=detector)  # type: ignore[arg-type]
    started = time.perf_counter()
    music = music_seconds(mix.audio, settings, detector)
    spans = song_spans(music, [], settings)
    return [(s["start"], s["end"]) for s in spans], time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mixes", type=int, default=6, help="mixes per score level")
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    if not available():
        raise SystemExit("needs immich-memories-music, voxint 0.51.0 and pyannote.audio")
    print(f"machine: {machine()}")
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        for level in SCORE_LEVELS_DB:
            mixes = [song_mix(n * 3, Path(tmp), level) for n in range(args.mixes)]
            audio_s = sum(m.songs[-1][1] + 10 for m in mixes)
            print(f"\n{len(mixes)} mixes, 2 songs each, dialogue over music {-level:g} dB "
                  "under it:")
            for detector in DETECTORS:
                score = Score()
                for mix in mixes:
                    spans, took = detected_songs(mix, detector)
                    score.seconds_of_work += took
                    score.add(spans, mix)
                print("  " + score.line(detector, audio_s))
                if detector == "yamnet":
                    failed |= (score.songs_found < score.songs or score.false_songs > 0
                               or score.worst_boundary_s > BOUNDARY_TARGET_S)
    return 1 if args.check and failed else 0


if __name__ == "__main__":
    sys.exit(main())
