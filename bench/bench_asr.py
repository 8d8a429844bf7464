"""The asr stage inside bolly-ray against the same backend called directly, on the same audio.

Speech (espeak-ng, about a minute) is demuxed and VAD'd by bolly-ray; then, in one run and
for each backend installed (faster-whisper; WhisperX with the ml extra):
  raw:  the library's own transcribe on the same samples, VAD regions and options;
  ours: the asr stage of one job on the embedded Ray, as its actor timed it (audio out of the
        object store, the stage, transcript JSON packed); its model loads during preflight,
        and the stage's wall time (which includes any wait for that load) is shown apart.
Reported per backend: speed ratio raw_seconds / ours_seconds (target >= 0.9) for a first
call (a fresh process or actor) and warm (the median of later calls; for the stage, the jobs
a warm actor served in a batch of four, run with `--only asr` after their demux and vad so
that nothing else competes for the CPUs), model load times apart, and the model loads of the
four jobs (target: one per actor).
Run: `.venv/bin/python bench/bench_asr.py` (needs the demo extra's tiny.en model).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import ray

from bolly_ray.core.job import validate_job
from bolly_ray.core.wire import Selection
from bolly_ray.engine.registry import default_registry
from bolly_ray.executors.ray_executor import RayExecutor
from bolly_ray.ops.demo import bundled_model
from bolly_ray.ops.synth import make_speech_wav
from bolly_ray.stages.asr import AsrSettings
from bolly_ray.stages.formats.regions import read_speech
from bolly_ray.stages.support.audio import read_wav
from bolly_ray.stages.whisper_backends import decoding_options, given_regions, windows

SENTENCES = ["The train to Mumbai leaves at nine in the morning.",
             "Raj and Simran meet again at the station in Punjab.",
             "Her father says that the wedding will not happen.",
             "The music is loud and everybody is dancing in the street."] * 3
ONLY = Selection(only=("demux", "vad", "asr"))


def jobs(root: Path, wav: Path, count: int, asr: dict[str, Any]) -> list:
    registry = default_registry()
    return [validate_job({"id": f"asr-{n}", "media": str(wav), "source_language": "en",
                          "out_root": str(root / "out"), "stages": {"asr": asr}},
                         registry.specs, "bench") for n in range(count)]


def raw_faster_whisper(settings: AsrSettings, audio: Any, regions: list
                       ) -> tuple[float, float, float]:
    from faster_whisper import WhisperModel

    started = time.perf_counter()
    model = WhisperModel(settings.model, device="cpu", compute_type="int8",
                         cpu_threads=os.cpu_count() or 1)
    load_s = time.perf_counter() - started

    def once() -> None:
        pieces, _ = model.transcribe(
            audio, language="en", task="transcribe", temperature=settings.temperatures,
            word_timestamps=True, vad_filter=False,
            clip_timestamps=[t for r in regions for t in r], **decoding_options(settings))
        list(pieces)  # faster-whisper decodes lazily

    return load_s, *first_and_warm(once)


def raw_whisperx(settings: AsrSettings, audio: Any, regions: list
                 ) -> tuple[float, float, float]:
    import whisperx

    options = dict(decoding_options(settings), temperatures=settings.temperatures)
    started = time.perf_counter()
    pipeline = whisperx.load_model(settings.model, "cpu", compute_type="int8",
                                   asr_options=options, threads=os.cpu_count() or 1)
    load_s = time.perf_counter() - started
    pipeline.vad_model = given_regions(windows(regions))
    return load_s, *first_and_warm(
        lambda: pipeline.transcribe(audio, batch_size=settings.batch_size, language="en"))


def first_and_warm(call: Any, warm_runs: int = 3) -> tuple[float, float]:
    """Seconds of the first call, and the median of the next `warm_runs`."""
    times = []
    for _ in range(1 + warm_runs):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return times[0], statistics.median(times[1:])


def compare(root: Path, wav: Path, asr: dict[str, Any]) -> dict[str, Any]:
    registry = default_registry()
    [single] = RayExecutor(registry).run(jobs(root / "one", wav, 1, asr), ONLY)
    manifest = json.loads((single.job_dir / "manifest.json").read_text())
    record = manifest["stages"]["asr"]
    regions = read_speech(single.job_dir / manifest["stages"]["vad"]["outputs"]["speech"]
                             ["path"])
    audio = read_wav(single.job_dir / manifest["stages"]["demux"]["outputs"]["audio"]["path"])
    settings = AsrSettings(**asr)
    raw = raw_whisperx if settings.backend == "whisperx" else raw_faster_whisper
    load_s, raw_first, raw_warm = raw(settings, audio, regions or [])
    four = jobs(root / "four", wav, 4, asr)  # their asr runs alone: nothing else on the CPUs
    RayExecutor(registry).run(four, Selection(only=("demux", "vad")))
    batch = RayExecutor(registry).run(four, Selection(only=("asr",)))
    records = [json.loads((o.job_dir / "manifest.json").read_text())["stages"]["asr"]
               for o in batch]
    warm = statistics.median(r["metrics"]["worker_s"] for r in records
                             if not r["metrics"]["model_loads"])
    first = record["metrics"]["worker_s"]  # excludes waiting for the actor's model load
    return {"backend": settings.backend, "batch_size": settings.batch_size,
            "audio_s": round(len(audio) / 16000, 1),
            "raw_first_s": round(raw_first, 2), "stage_first_s": first,
            "raw_warm_s": round(raw_warm, 2), "stage_warm_s": warm,
            "speed_ratio_first": round(raw_first / first, 3),
            "speed_ratio_warm": round(raw_warm / warm, 3),
            "stage_wall_s": record["duration_s"], "raw_model_load_s": round(load_s, 2),
            "actor_model_load_s": record["metrics"].get("model_load_s"),
            "four_jobs_model_loads": [r["metrics"]["model_loads"] for r in records]}


def main() -> None:
    model = bundled_model()
    if model is None:
        raise SystemExit("install the demo extra: pip install 'bolly-ray[demo]'")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(address="local", include_dashboard=False, logging_level=logging.WARNING,
             log_to_driver=False)
    backends = [{"backend": "faster-whisper", "batch_size": 1}]
    if importlib.util.find_spec("whisperx") is not None:
        backends.append({"backend": "whisperx", "batch_size": 8})
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-asr-") as tmp:
        root = Path(tmp)
        wav = root / "speech.wav"
        make_speech_wav(wav, SENTENCES, gap_s=1.0)
        for n, backend in enumerate(backends):
            results.append(compare(root / str(n), wav, {"model": str(model), "device": "cpu",
                                                        **backend}))
    ray.shutdown()
    print(json.dumps({"cpus": os.cpu_count(), "results": results}, indent=2))


if __name__ == "__main__":
    main()
