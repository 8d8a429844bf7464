"""Running one stage attempt inside its container, hardened, through the Docker SDK.

The container gets its inputs mounted read-only, one writable output folder, a non-root
user, a read-only root filesystem, no network unless the stage declares it needs one, no
capabilities, no new privileges, and memory, CPU and process limits from the stage's
resources. A stage that needs a GPU gets the GPUs it was granted (Docker's `--gpus`), and
a stage with a model its model folders, read-only. Every container carries labels (job,
stage, attempt) so that containers a crash left behind can be found and removed. Exit
codes become errors the executor understands: killed or out of memory is transient
(retried), a stage error is permanent.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import docker.errors
from docker.client import DockerClient, from_env
from docker.types import DeviceRequest, Mount
from requests.exceptions import ConnectionError as RequestsConnectionError
from requests.exceptions import ReadTimeout

from bolly_ray import errors
from bolly_ray.core.model_cache import cache_environment
from bolly_ray.core.wire import AttemptOutcome, AttemptPlan
from bolly_ray.errors import (
    StageError,
    StageTimeoutError,
    TransientStageError,
    UsageError,
    WorkerLostError,
)
from bolly_ray.spec import Stage

LABEL = "bolly-ray"
SECRETS_FILE = "/run/bolly-ray/secrets.json"
NOBODY = "65534:65534"
KILLED = 137


GpuGrant = Sequence[str] | None
"""The GPUs an attempt may use: these device ids, None for every GPU here, empty for none."""


@dataclass(frozen=True)
class StageContainers:
    """How stages run in docker mode: stage -> image id, and whether to keep containers."""

    images: dict[str, str]
    keep: bool = False

    def __call__(self, stage: Stage[Any], plan: AttemptPlan, scratch: Path, gpus: GpuGrant = ()
                 ) -> AttemptOutcome:
        local = replace(plan, settings=stage.settings_here(plan.settings))
        return run_in_container(local, self.images[plan.stage], scratch, gpus,
                                stage.model_folders(plan.settings), keep=self.keep)


def docker_client() -> DockerClient:
    try:
        client = from_env()
        client.ping()
    except (docker.errors.DockerException, RequestsConnectionError) as err:
        raise UsageError(f"cannot reach the Docker engine ({err.__class__.__name__}): start "
                         "dockerd, or run CPU stages natively (--cpu-stages native)") from None
    return client


def labels_for(plan: AttemptPlan, attempt_dir: Path) -> dict[str, str]:
    return {LABEL: "stage", f"{LABEL}.job": plan.job_id, f"{LABEL}.stage": plan.stage,
            f"{LABEL}.attempt": attempt_dir.name, f"{LABEL}.job-folder": plan.job_folder}


def reap(client: DockerClient, job_folders: set[str]) -> int:
    """Remove containers that earlier runs of these job folders (`folder_id`) left behind;
    returns how many. Another folder's job with the same id (another output root, another
    user's run on this engine) is left alone."""
    removed = 0
    for container in client.containers.list(all=True,
                                            filters={"label": f"{LABEL}.job-folder"}):
        if container.labels.get(f"{LABEL}.job-folder") in job_folders:
            container.remove(force=True)
            removed += 1
    return removed


def run_in_container(plan: AttemptPlan, image: str, scratch: Path, gpus: GpuGrant = (),
                     model_folders: Sequence[Path] = (), *, keep: bool = False
                     ) -> AttemptOutcome:
    """One attempt in `image`; `model_folders` are where its model is read from on this
    node, mounted read-only at the same paths."""
    client = docker_client()
    requests = device_requests(gpus)
    if requests and client.images.get(image).labels.get(f"{LABEL}.cuda") != "1":
        raise StageError(f"{plan.stage}: its image has no CUDA libraries: build the GPU image "
                         f"with `bolly-ray images build --mode full --stage {plan.stage}`")
    io_dir, out_dir = scratch / "io", scratch / "out"
    io_dir.mkdir(parents=True)
    out_dir.mkdir()
    out_dir.chmod(0o777)  # the container's user is not ours
    # Mount objects, not "host:container" strings: a film's name may hold a colon.
    mounts = [Mount("/io", str(io_dir), type="bind", read_only=True),
              Mount("/out", str(out_dir), type="bind", read_only=False)]
    inputs = {}
    for name, path in plan.inputs.items():
        inside = f"/in/{name}/{path.name}"
        mounts.append(Mount(inside, str(path.resolve()), type="bind", read_only=True))
        inputs[name] = inside
    mounts += [Mount(str(f), str(f), type="bind", read_only=True) for f in model_folders]
    request = {"job_id": plan.job_id, "stage": plan.stage, "inputs": inputs,
               "settings": plan.settings.model_dump(mode="json"),
               "job_facts": dict(plan.job_facts)}
    with secrets_mount(plan) as secret_mounts:
        if secret_mounts:
            mounts += secret_mounts
            request["secrets_file"] = SECRETS_FILE
        (io_dir / "request.json").write_text(json.dumps(request))
        options = hardening(plan)
        if model_folders:
            options["environment"].update(cache_environment())
        container = client.containers.create(image, ["/io/request.json"], mounts=mounts,
                                             labels=labels_for(plan, scratch),
                                             device_requests=requests, **options)
        try:
            _start(container, plan, requests)
            code = _wait(container, plan)
            return _outcome(container, plan, code, image, out_dir, scratch)
        finally:
            if not keep:
                container.remove(force=True)


@contextlib.contextmanager
def secrets_mount(plan: AttemptPlan) -> Iterator[list[Mount]]:
    """The stage's secrets as a read-only file, outside the job folder, for the attempt's
    length: never in the container's environment, arguments or labels."""
    values = plan.secrets.reveal()
    if not values:
        yield []
        return
    folder = Path(tempfile.mkdtemp(prefix="bolly-ray-secrets-"))
    try:
        folder.chmod(0o711)  # the container's user may enter, not list
        path = folder / Path(SECRETS_FILE).name
        path.write_text(json.dumps(values))
        path.chmod(0o444)
        yield [Mount(SECRETS_FILE, str(path), type="bind", read_only=True)]
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def hardening(plan: AttemptPlan) -> dict[str, Any]:
    resources = plan.resources
    uid = os.getuid()
    return {
        "user": f"{uid}:{os.getgid()}" if uid != 0 else NOBODY,
        "read_only": True, "tmpfs": {"/tmp": "rw,size=512m"},
        "network_mode": "bridge" if plan.spec.needs_network else "none",
        "cap_drop": ["ALL"], "security_opt": ["no-new-privileges"],
        "mem_limit": f"{resources.memory_mb}m", "memswap_limit": f"{resources.memory_mb}m",
        "nano_cpus": int(resources.cpus * 1e9), "pids_limit": 256,
        "environment": {"HOME": "/tmp", "HF_HUB_OFFLINE": "1", "PYTHONDONTWRITEBYTECODE": "1"},
    }


def device_requests(gpus: GpuGrant) -> list[DeviceRequest]:
    """Docker's `--gpus` for a grant: its devices, every GPU, or nothing."""
    if gpus is None:
        return [DeviceRequest(count=-1, capabilities=[["gpu"]])]
    return [DeviceRequest(device_ids=list(gpus), capabilities=[["gpu"]])] if gpus else []


def _start(container: Any, plan: AttemptPlan, requests: list[DeviceRequest]) -> None:
    try:
        container.start()
    except docker.errors.APIError as err:
        if not requests:
            raise
        raise StageError(f"{plan.stage}: this node's Docker engine cannot give a container "
                         f"GPUs ({err.explanation}): install the NVIDIA Container Toolkit "
                         "there, or run GPU stages natively (--gpu-stages native)") from None


def _wait(container: Any, plan: AttemptPlan) -> int:
    try:
        return int(container.wait(timeout=plan.spec.timeout_s)["StatusCode"])
    except (ReadTimeout, RequestsConnectionError):
        container.kill()
        raise StageTimeoutError(f"{plan.stage}: ran past its timeout of "
                                f"{plan.spec.timeout_s:g} s in its container") from None


def _outcome(container: Any, plan: AttemptPlan, code: int, image: str, out_dir: Path,
             scratch: Path) -> AttemptOutcome:
    container.reload()
    if container.attrs["State"].get("OOMKilled"):
        raise TransientStageError(f"{plan.stage}: out of memory in its container (limit "
                                  f"{plan.resources.memory_mb} MB)")
    if code == 0 and (out_dir / "result.json").is_file():
        result = json.loads((out_dir / "result.json").read_text())
        files = scratch / "files"
        shutil.move(str(out_dir / "files"), files)
        return AttemptOutcome(scratch=files, outputs=result["outputs"],
                              metrics=result["metrics"], runner="docker", image=image)
    raise _error(out_dir, code, plan, container)


def _error(out_dir: Path, code: int, plan: AttemptPlan, container: Any) -> Exception:
    report = out_dir / "error.json"
    if report.is_file():
        data = json.loads(report.read_text())
        kind = getattr(errors, data["type"], None)
        if isinstance(kind, type) and issubclass(kind, errors.BollyRayError):
            return kind(data["message"])
        return StageError(f"{plan.stage} crashed in its container: {data['message']}")
    if code == KILLED:
        return WorkerLostError(f"{plan.stage}: its container was killed")
    tail = container.logs(tail=5).decode("utf-8", "replace").strip().splitlines()
    last = tail[-1] if tail else "no output"
    return StageError(f"{plan.stage}: container exited with code {code}: {last}")
