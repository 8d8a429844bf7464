"""The asr stage inside bolly-ray against faster-whisper called directly, on the same audio.

Speech (espeak-ng, about a minute) is demuxed and VAD'd by bolly-ray; then, in one run:
  raw:  WhisperModel.transcribe on the same samples, the same VAD regions and options;
  ours: the asr stage of one job on the embedded Ray (actor call, audio through the object
        store, transcript JSON, publication), its model loaded beforehand, during preflight.
Reported: speed ratio raw_seconds / ours_seconds (target >= 0.9), model load times apart,
and the model loads of four jobs run together (target: one per actor).
Run: `.venv/bin/python bench/bench_asr.py` (needs the demo extra's tiny.en model).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from pathlib import Path

import ray

from bolly_ray.audio import read_wav
from bolly_ray.demo import bundled_model
from bolly_ray.driver import Selection
from bolly_ray.executors.ray_executor import RayExecutor
from bolly_ray.job import validate_job
from bolly_ray.registry import default_registry
from bolly_ray.stages.asr import AsrSettings, clip_timestamps, load_whisper
from bolly_ray.synth import make_speech_wav

SENTENCES = ["The train to Mumbai leaves at nine in the morning.",
             "Raj and Simran meet again at the station in Punjab.",
             "Her father says that the wedding will not happen.",
             "The music is loud and everybody is dancing in the street."] * 3


def jobs(root: Path, wav: Path, count: int, model: Path) -> list:
    registry = default_registry()
    return [validate_job({"id": f"asr-{n}", "media": str(wav), "source_language": "en",
                          "out_root": str(root / "out"),
                          "stages": {"asr": {"model": str(model), "device": "cpu"}}},
                         registry.specs, "bench") for n in range(count)]


def main() -> None:
    model = bundled_model()
    if model is None:
        raise SystemExit("install the demo extra: pip install 'bolly-ray[demo]'")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(address="local", include_dashboard=False, logging_level=logging.WARNING,
             log_to_driver=False)
    registry = default_registry()
    only = Selection(only=("demux", "vad", "asr"))
    with tempfile.TemporaryDirectory(prefix="bench-asr-") as tmp:
        root = Path(tmp)
        wav = root / "speech.wav"
        make_speech_wav(wav, SENTENCES, gap_s=1.0)
        [single] = RayExecutor(registry).run(jobs(root / "one", wav, 1, model), only)
        manifest = json.loads((single.job_dir / "manifest.json").read_text())
        ours = manifest["stages"]["asr"]["duration_s"]
        speech = single.job_dir / manifest["stages"]["vad"]["outputs"]["speech"]["path"]
        settings = AsrSettings(model=str(model), device="cpu")
        started = time.perf_counter()
        whisper = load_whisper(settings)
        load_s = time.perf_counter() - started
        audio = read_wav(single.job_dir / manifest["stages"]["demux"]["outputs"]["audio"]["path"])
        started = time.perf_counter()
        pieces, _ = whisper.transcribe(
            audio, language="en", task="transcribe", beam_size=settings.beam_size,
            temperature=settings.temperatures, word_timestamps=True, vad_filter=False,
            clip_timestamps=clip_timestamps(speech), condition_on_previous_text=False)
        words = sum(len(p.words or []) for p in pieces)
        raw = time.perf_counter() - started
        batch = RayExecutor(registry).run(jobs(root / "four", wav, 4, model), only)
        loads = [json.loads((o.job_dir / "manifest.json").read_text())["stages"]["asr"]
                 ["metrics"]["model_loads"] for o in batch]
    ray.shutdown()
    print(json.dumps({"audio_s": round(len(audio) / 16000, 1), "words": words,
                      "raw_transcribe_s": round(raw, 2), "stage_s": ours,
                      "speed_ratio_raw_over_stage": round(raw / ours, 3),
                      "raw_model_load_s": round(load_s, 2),
                      "four_jobs_model_loads": loads, "cpus": os.cpu_count()}, indent=2))


if __name__ == "__main__":
    main()
