"""Settings left `auto` are fitted where a stage runs, not where its job was prepared.

A local run on this CPU-only machine picks what its hardware profile recommends, the
manifest says what and why, and the cache key is made of the fitted values. A GPU node's
profile (detected through a stand-in `nvidia-smi`) fits asr and diarize to its GPU. On a
simulated cluster with a CPU-only head and a worker with a fake GPU, asr is fitted to the
worker and its actor goes there; with no CUDA here, loading on cuda is where it stops."""

from __future__ import annotations

import importlib.util
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray
from ray.cluster_utils import Cluster

from bolly_ray.core.fitting import Host, fit
from bolly_ray.core.hardware import detect_profile
from bolly_ray.core.job import JobBase, validate_job
from bolly_ray.core.wire import Selection
from bolly_ray.engine.registry import default_registry
from bolly_ray.errors import PreflightError
from bolly_ray.executors import LocalExecutor
from bolly_ray.executors.ray_executor import RayExecutor
from bolly_ray.ops.synth import make_speech_wav
from bolly_ray.stages.asr import AsrSettings, AsrStage
from bolly_ray.stages.diarize import DiarizeSettings, DiarizeStage
from bolly_ray.stages.support.packaged_models import packaged_model
from tests.conftest import read_manifest
from tests.test_hardware import H200, fake_smi

FITTED = ("backend", "model", "device", "compute_type", "batch_size")
AUTO = dict.fromkeys(FITTED, "auto")


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    wav = tmp_path_factory.mktemp("speech") / "speech.wav"
    make_speech_wav(wav, ["Please open the window."], lead_s=0.5, tail_s=0.5)
    return wav


def speech_job(wav: Path, out: Path, asr: dict) -> JobBase:
    return validate_job({"id": "speech", "media": str(wav), "source_language": "en",
                         "out_root": str(out), "stages": {"asr": {**asr, "beam_size": 1}}},
                        default_registry().specs, "test")


@pytest.mark.skipif(packaged_model("base") is None, reason="needs the dev extra's Whisper base")
def test_a_local_run_fits_auto_to_this_machine_and_the_manifest_says_why(
        speech: Path, tmp_path: Path) -> None:
    registry = default_registry()
    [outcome] = LocalExecutor(registry).run([speech_job(speech, tmp_path, AUTO)],
                                            Selection(only=("demux", "asr")))
    assert outcome.status == "succeeded", outcome.error
    advice = detect_profile().recommendation()
    chosen = read_manifest(outcome.job_dir)["stages"]["asr"]["chosen"]
    assert {k: chosen[f"asr.{k}"] for k in FITTED} == {k: advice[k] for k in FITTED}
    assert chosen["why"].startswith(f"this machine ({socket.gethostname()}): ")
    machine, choices = chosen["why"].split(" → ")
    assert machine.endswith("no GPU")
    assert {"backend=faster-whisper", "model=base", "device=cpu"} <= set(choices.split(", "))
    # the cache key is the fitted settings': naming them outright finds the output
    explicit = speech_job(speech, tmp_path, {k: advice[k] for k in FITTED})
    [again] = LocalExecutor(registry).run([explicit], Selection(only=("asr",)))
    record = read_manifest(again.job_dir)["stages"]["asr"]
    assert record["status"] == "cached" and record["chosen"] == chosen


def test_a_gpu_nodes_profile_fits_asr_and_diarize_to_its_gpu(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", fake_smi(tmp_path, H200)["PATH"])
    node = Host(detect_profile(), "asr runs on the GPU nodes; the smallest is 10.0.0.7")
    settings, chosen = fit(AsrStage(), AsrSettings(**AUTO), node)
    backend = "whisperx" if importlib.util.find_spec("whisperx") else "faster-whisper"
    assert settings.model_dump(include=set(FITTED)) == {
        "backend": backend, "model": "large-v3", "device": "cuda", "compute_type": "float16",
        "batch_size": 16}
    assert chosen["asr.model"] == "large-v3" and "1 x NVIDIA H200 (140 GiB)" in chosen["why"]
    # a device the job names is kept, and the rest is fitted to it
    on_cpu, _ = fit(AsrStage(), AsrSettings(**{**AUTO, "device": "cpu"}), node)
    assert (on_cpu.model, on_cpu.compute_type, on_cpu.batch_size) == ("base", "int8", 1)
    diarize, chosen = fit(DiarizeStage(), DiarizeSettings(device="auto", max_speakers="auto"),
                          node)
    assert (diarize.device, diarize.max_speakers) == ("cuda", 20)
    assert set(chosen) == {"diarize.device", "diarize.max_speakers", "why"}
    crowded = DiarizeSettings(device="cpu", min_speakers=12, max_speakers="auto")
    assert fit(DiarizeStage(), crowded, node)[0].max_speakers == 12  # never under the minimum
    named = AsrSettings(model="small", device="cpu", compute_type="int8")
    assert fit(AsrStage(), named, node) == (named, {})  # nothing auto: nothing chosen


@pytest.fixture(scope="module")
def cpu_head_gpu_worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A CPU-only head (the driver's node) and a worker whose one GPU exists for Ray and,
    through a stand-in nvidia-smi on its PATH, for bolly-ray's detection; its address."""
    smi = fake_smi(tmp_path_factory.mktemp("smi"), H200)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "num_gpus": 0})
    worker = cluster.add_node(num_cpus=2, num_gpus=1, env_vars=smi)
    ray.init(address=cluster.address)
    cluster.wait_for_nodes()
    try:
        yield worker.node_ip_address
    finally:
        ray.shutdown()
        cluster.shutdown()


@pytest.mark.slow
@pytest.mark.skipif(packaged_model("tiny.en") is None, reason="needs the demo extra's model")
def test_on_a_cluster_auto_asr_is_fitted_to_the_gpu_worker_and_goes_there(
        cpu_head_gpu_worker: str, speech: Path, tmp_path: Path) -> None:
    registry = default_registry()
    # fitted on the head, the model would be base; the worker's H200 asks for large-v3
    with pytest.raises(PreflightError, match="asr: Whisper model 'large-v3' is not in the"):
        RayExecutor(registry).run([speech_job(speech, tmp_path / "a", AUTO)],
                                  Selection(only=("demux", "asr")))
    tiny = {**AUTO, "backend": "faster-whisper", "model": str(packaged_model("tiny.en"))}
    [outcome] = RayExecutor(registry).run([speech_job(speech, tmp_path / "b", tiny)],
                                          Selection(only=("demux", "asr")))
    record = read_manifest(outcome.job_dir)["stages"]["asr"]
    assert {k: v for k, v in record["chosen"].items() if k != "why"} == {
        "asr.device": "cuda", "asr.compute_type": "float16", "asr.batch_size": 16}
    assert (f"asr runs on the GPU nodes; the smallest is {cpu_head_gpu_worker}"
            in record["chosen"]["why"]) and "NVIDIA H200" in record["chosen"]["why"]
    # only the worker has a GPU for the actor; there it tried CUDA, which this host lacks
    assert outcome.failed_stage == "asr" and "on cuda: CUDA failed" in record["error"]
