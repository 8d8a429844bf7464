"""`bolly-ray doctor`: what this machine lacks for each way of running, and how to fix it.

Three modes are checked: native (stages in Ray workers: ffmpeg, Ray, each stage's Python
libraries, PyTorch with CUDA where a GPU exists), docker (an engine and this version's stage
images, needed only for `--cpu-stages docker` / `--gpu-stages docker`) and cluster (joining
the cluster at an address, and every node's Ray, Python and bolly-ray versions). Every failed
check comes with the command that fixes it. The modes the user runs decide the exit code:
native (and cluster with an address) by default, the others when asked for.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import platform
import shutil
import sys
from collections.abc import Iterable
from dataclasses import asdict

from bolly_ray.core.hardware import detect_gpus
from bolly_ray.engine.libraries import Check, distribution, library_checks
from bolly_ray.engine.registry import Registry
from bolly_ray.errors import BollyRayError, UsageError
from bolly_ray.executors.ray_auth import NothingListensError, TokenWantedError
from bolly_ray.spec import ComputeKind

RAY_VERSION = "2.60.0"
MODES = ("native", "docker", "cluster")


def native_checks(registry: Registry) -> list[Check]:
    checks = [Check("native", "python", sys.version_info >= (3, 11), sys.version.split()[0],
                    "use Python 3.11 or newer")]
    for tool in ("ffmpeg", "ffprobe"):
        found = shutil.which(tool)
        checks.append(Check("native", tool, found is not None, found or "not on PATH",
                            "apt-get install ffmpeg"))
    checks.append(distribution("native", "ray", RAY_VERSION))
    checks += [check for _, _, check in library_checks(registry, registry)]
    return [*checks, _torch()]


def _torch() -> Check:
    """PyTorch serves the ml extra's backends (WhisperX, pyannote); where GPUs exist it must
    see them. faster-whisper needs no PyTorch."""
    gpus = detect_gpus()
    if importlib.util.find_spec("torch") is None:
        return Check("native", "torch", True, "not installed (only the ml extra needs it)",
                     "pip install 'bolly-ray[ml]'")
    import torch

    cuda = bool(torch.cuda.is_available())
    detail = f"{torch.__version__}, CUDA {'available' if cuda else 'unavailable'}, {gpus} GPU(s)"
    return Check("native", "torch", cuda or gpus == 0, detail,
                 "install a CUDA build of PyTorch that matches the driver")


def docker_checks(registry: Registry) -> list[Check]:
    from bolly_ray.runtime.containers import docker_client
    from bolly_ray.runtime.image_names import image_tag

    try:
        client = docker_client()
    except BollyRayError as err:
        return [Check("docker", "engine", False, str(err), "scripts/ensure-docker")]
    checks = [Check("docker", "engine", True, str(client.version().get("Version")))]
    for name, stage in registry.items():
        if stage.spec.compute != ComputeKind.CPU:
            continue
        tag = image_tag(name)
        present = bool(client.images.list(name=tag))
        checks.append(Check("docker", f"image {tag}", present,
                            "present" if present else "missing (only --cpu-stages docker "
                            "needs it)", "bolly-ray images build"))
    return checks


def cluster_checks(address: str) -> list[Check]:
    import ray

    from bolly_ray.executors.ray_executor import connect

    try:
        connect(address)
    except (NothingListensError, TokenWantedError) as err:
        return [Check("cluster", "connect", False, str(err), err.fix)]
    except BollyRayError as err:
        return [Check("cluster", "connect", False, f"{address}: {err}",
                      "start the head with `ray start --head` and check the address")]
    try:
        nodes = [n for n in ray.nodes() if n["Alive"]]
        gpus = sum(n["Resources"].get("GPU", 0) for n in nodes)
        return [Check("cluster", "connect", True, f"{len(nodes)} node(s), {gpus:g} GPU(s)"),
                *version_checks()]
    finally:
        ray.shutdown()


def version_checks() -> list[Check]:
    """Every node's Ray, Python and bolly-ray beside the driver's: Ray needs the same Ray
    and Python minor everywhere, and stages must run the driver's code."""
    from bolly_ray.executors.cluster_hardware import node_versions

    here = {"ray": RAY_VERSION, "python": ".".join(platform.python_version_tuple()[:2]),
            "bolly-ray": importlib.metadata.version("bolly-ray")}
    checks = []
    for node, versions, error in node_versions():
        name = f"node {node['NodeManagerAddress']} ({node['NodeID'][:8]})"
        if error is not None:
            checks.append(Check("cluster", name, False, f"cannot run a task there: {error}",
                                "check the node's logs (ray status)"))
            continue
        versions = {**versions, "python": ".".join(versions["python"].split(".")[:2])}
        wrong = [f"{k} {versions[k]} (driver: {v})" for k, v in here.items() if versions[k] != v]
        detail = ", ".join(f"{k} {versions[k]}" for k in here)
        checks.append(Check("cluster", name, not wrong, "; ".join(wrong) or detail,
                            f"install ray=={RAY_VERSION}, Python {here['python']} and this "
                            "bolly-ray on every node"))
    return checks


def run_checks(registry: Registry, address: str | None) -> list[Check]:
    checks = native_checks(registry) + docker_checks(registry)
    return checks + (cluster_checks(address) if address else [])


def required_modes(asked: Iterable[str], address: str | None) -> list[str]:
    """The modes whose failures fail the run: those asked for, else native (and cluster
    with an address)."""
    modes = list(dict.fromkeys(asked)) or ["native", *(["cluster"] if address else [])]
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise UsageError(f"--mode {', '.join(unknown)}: expected native, docker or cluster")
    if "cluster" in modes and not address:
        raise UsageError("--mode cluster needs --address")
    return modes


def readiness(checks: list[Check]) -> dict[str, bool]:
    """Each checked mode: whether every one of its checks passed."""
    ready: dict[str, bool] = {}
    for check in checks:
        ready[check.mode] = ready.get(check.mode, True) and check.ok
    return ready


def as_dicts(checks: list[Check]) -> list[dict[str, object]]:
    return [asdict(c) for c in checks]
