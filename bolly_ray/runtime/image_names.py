"""Stage image names and finding them: what `--cpu-stages docker` runs each stage in.

One image per stage, tagged `<prefix><stage>:<version>` so a cluster never runs stale stage
code; the prefix is `bolly-ray-` or `BOLLY_RAY_IMAGE_PREFIX` (a registry, or a second
checkout's own). Building them is ops' work (bolly_ray.ops.images).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

from bolly_ray import __version__
from bolly_ray.errors import UsageError

IMAGE_PREFIX = "bolly-ray-"
PREFIX_PATTERN = re.compile(r"[a-z0-9][a-z0-9._/:-]*")


def image_prefix() -> str:
    """What stage image names start with: `BOLLY_RAY_IMAGE_PREFIX` (say a registry,
    `registry.example:5000/bolly-ray-`, or a name of its own for a second checkout's test
    suite on the same engine), else `bolly-ray-`."""
    prefix = os.environ.get("BOLLY_RAY_IMAGE_PREFIX") or IMAGE_PREFIX
    if not PREFIX_PATTERN.fullmatch(prefix):
        raise UsageError(f"BOLLY_RAY_IMAGE_PREFIX={prefix!r}: not the start of an image name "
                         "(lower-case letters, digits and . _ / : -)")
    return prefix


def image_tag(stage: str) -> str:
    return f"{image_prefix()}{stage}:{__version__}"


def resolve_images(client: object, stages: Iterable[str], gpu_stages: Iterable[str] = ()
                   ) -> dict[str, str]:
    """stage -> image id for this version's images (`gpu_stages` are GPU-kind stages, whose
    images another mode builds); every missing one is named at once, with its command."""
    import docker.errors

    found: dict[str, str] = {}
    missing: dict[bool, list[str]] = {False: [], True: []}
    gpu = set(gpu_stages)
    for stage in sorted(set(stages) | gpu):
        try:
            found[stage] = client.images.get(image_tag(stage)).id  # type: ignore[attr-defined]
        except docker.errors.ImageNotFound:
            missing[stage in gpu].append(image_tag(stage))
    commands = {False: "`bolly-ray images build`",
                True: "`bolly-ray images build --mode full` (or `--mode cpu` where there is "
                      "no GPU)"}
    problems = [f"no image for {', '.join(tags)}: run {commands[gpu_kind]}"
                for gpu_kind, tags in missing.items() if tags]
    if problems:
        raise UsageError("\n".join(problems))
    return found
