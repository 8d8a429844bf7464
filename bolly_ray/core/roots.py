"""Where jobs may read and write: the operator's allowed roots.

On a machine or cluster shared by a team, whoever runs bolly-ray as a service sets
`BOLLY_RAY_ALLOWED_ROOTS` (folders separated by `:`); every path a job names (its media,
out_root, provided artifacts and shared paths) must then lie under one of them once `..`
and symbolic links are resolved, so a job file cannot read `/etc/shadow` as its "film" or
write its outputs over someone else's. A job file cannot widen the list: it comes only from
the environment of the driver. Unset, every path is allowed (a personal machine).
"""

from __future__ import annotations

import os
from pathlib import Path

from bolly_ray.errors import UsageError

ALLOWED_ROOTS_ENV = "BOLLY_RAY_ALLOWED_ROOTS"


def allowed_roots() -> list[Path]:
    raw = os.environ.get(ALLOWED_ROOTS_ENV, "")
    return [Path(part).resolve() for part in raw.split(os.pathsep) if part.strip()]


def check_paths(paths: dict[str, Path], source: str, roots: list[Path] | None = None) -> None:
    """Refuse, one line per field, every path outside the allowed roots."""
    roots = allowed_roots() if roots is None else roots
    if not roots:
        return
    outside = [f"{source}: {field}: {path} is outside the allowed roots "
               f"({', '.join(map(str, roots))})"
               for field, path in paths.items() if not _inside(path.resolve(), roots)]
    if outside:
        raise UsageError("\n".join(outside))


def _inside(path: Path, roots: list[Path]) -> bool:
    return any(path == root or path.is_relative_to(root) for root in roots)
