"""Film-like soundtracks made from real recordings, with songs at known times.

Each mix is: the pyannote.audio call (dialogue), a song (a real music track from
`immich-memories-music`, 25 s from its 3rd second, past any fade-in), the nine LibriSpeech
clips with another track's music 12 dB under them (dialogue over the film's score: not a
song), a second song, and the rest of the call. Every piece is brought to the same loudness
first and cut in hard, so the truth is exact: the songs are where the tracks were put.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.recordings import SAMPLE_RATE, conversation, librispeech_clips, package_folder, write_wav

SONG_S = 25.0
SONG_OFFSET_S = 3.0
LEVEL_DBFS = -23.0


@dataclass(frozen=True)
class SongMix:
    name: str
    audio: Path
    songs: tuple[tuple[float, float], ...]
    score_db: float  # the score under the middle dialogue, relative to it


def music_tracks() -> list[Path]:
    folder = package_folder("immich_memories_music", "tracks")
    return sorted(folder.rglob("*.opus")) if folder else []


def decode(path: Path) -> np.ndarray:
    """Any audio file as 16 kHz mono float32, by ffmpeg."""
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-ac", "1", "-ar",
                          str(SAMPLE_RATE), "-f", "s16le", "-"], capture_output=True,
                         check=True).stdout
    return np.frombuffer(raw, "<i2").astype(np.float32) / 32768


def at_level(audio: np.ndarray, dbfs: float) -> np.ndarray:
    rms = float(np.sqrt(np.mean(audio**2))) or 1.0
    return audio * (10 ** (dbfs / 20) / rms)


def available() -> bool:
    return len(music_tracks()) >= 3 and conversation() is not None and bool(librispeech_clips())


def song_mix(index: int, work: Path, score_db: float = -12.0) -> SongMix:
    """Mix number `index` (tracks index, index+1, index+2 of the 28, in turn)."""
    tracks = music_tracks()
    pick = [tracks[(index + k) % len(tracks)] for k in range(3)]
    call = at_level(decode(conversation().audio), LEVEL_DBFS)  # type: ignore[union-attr]
    dialogue = at_level(np.concatenate([decode(c.audio) for c in librispeech_clips()]),
                        LEVEL_DBFS)
    score = decode(pick[1])
    score = np.resize(score, len(dialogue))  # a short track loops under long dialogue
    under = dialogue + at_level(score, LEVEL_DBFS + score_db)
    songs_audio = [at_level(song_piece(decode(p)), LEVEL_DBFS) for p in (pick[0], pick[2])]
    pieces = [call[:20 * SAMPLE_RATE], songs_audio[0], under, songs_audio[1],
              call[20 * SAMPLE_RATE:]]
    starts = np.cumsum([0] + [len(p) for p in pieces]) / SAMPLE_RATE
    path = work / f"song_mix_{index}_{abs(score_db):g}dB.wav"
    write_wav(path, np.concatenate(pieces))
    songs = ((float(starts[1]), float(starts[2])), (float(starts[3]), float(starts[4])))
    return SongMix(path.stem, path, songs, score_db)


def song_piece(track: np.ndarray) -> np.ndarray:
    first = int(SONG_OFFSET_S * SAMPLE_RATE)
    return track[first:first + int(SONG_S * SAMPLE_RATE)]
