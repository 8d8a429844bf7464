"""What a stage with nothing to do costs: align on a machine without a wav2vec2 model.

A fresh Python process (as a Ray worker or a stage container is) imports the align stage and
runs one attempt on 60 s of audio with a 20-segment transcript, with empty model caches, so
the stage finds no aligner and keeps the recogniser's timings. Reported: the process's wall
time, the import and the attempt apart, and whether PyTorch was imported. Before the
aligner's name was read from WhisperX's source the attempt imported PyTorch and WhisperX's
alignment module to learn that nothing was there (5.8 s on an idle 2-core machine).
Run: `.venv/bin/python bench/bench_idle_stage.py`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.machine import machine

ATTEMPT = """
import json, logging, sys, time, wave
from pathlib import Path
started = time.monotonic()
from bolly_ray.spec import StageContext
from bolly_ray.stages.align import AlignSettings, AlignStage
from bolly_ray.stages.formats.transcript import Segment, Transcript
imported = time.monotonic()
work = Path(sys.argv[1])
with wave.open(str(work / "audio.wav"), "wb") as wav:
    wav.setnchannels(1); wav.setsampwidth(2); wav.setframerate(16000)
    wav.writeframes(bytes(2 * 16000 * 60))
Transcript(language="en", segments=[Segment(start=3 * i, end=3 * i + 2.5, text="so we meet again")
                                    for i in range(20)]).write(work / "raw.json")
(work / "out").mkdir()
settings = AlignSettings()
ctx = StageContext("align", settings, {"raw_transcript": work / "raw.json",
                   "audio": work / "audio.wav"}, work / "out", {}, time.monotonic() + 60,
                   logging.getLogger("align"))
begun = time.monotonic()
stage = AlignStage()
stage.run(ctx, stage.load_model(settings))
print(json.dumps({"import_s": imported - started, "attempt_s": time.monotonic() - begun,
                  "torch": "torch" in sys.modules}))
"""


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench-idle-") as tmp:
        caches = {"HF_HUB_CACHE": f"{tmp}/hub", "TORCH_HOME": f"{tmp}/torch",
                  "HF_HUB_OFFLINE": "1"}
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-c", ATTEMPT, tmp], capture_output=True,
                              text=True, check=True, env={**os.environ, **caches})
        wall = time.monotonic() - started
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"Machine: {machine()}")
    print(f"align with no wav2vec2 model, 60 s of audio: process {wall:.2f} s "
          f"(imports {figures['import_s']:.2f} s, attempt {figures['attempt_s']:.2f} s); "
          f"PyTorch imported: {figures['torch']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
