"""GPU stages in containers (`--gpu-stages docker`), through the real CLI, a real Docker
engine and real Ray: asr in its image gives the native run's transcript; on a node with
(fake) GPUs the container asks Docker for exactly the GPU Ray granted, and an engine without
NVIDIA's toolkit, or an image without CUDA, fails with a one-line message. No CUDA device
exists here, so the GPU runs stop at Docker's refusal: everything up to it is real."""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import docker.errors
import pytest

from bolly_ray.runtime.image_names import image_tag
from tests.conftest import bolly, read_manifest
from tests.test_containers import BASE, demo_job, docker_client, folder_label, job_dir_of
from tests.test_ray_cli import free_port, start_raylet, stop, wait_for_nodes

pytestmark = pytest.mark.slow
__all__ = ["docker_client"]  # a fixture, shared with the CPU container tests


def asr_tag() -> str:
    """asr's image name under this session's image prefix (set per test, so not at import)."""
    return image_tag("asr")


@pytest.fixture(scope="module")
def asr_image(docker_client: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """asr's CPU image (`--mode cpu`), built as users build it, removed afterwards."""
    work = tmp_path_factory.mktemp("asr-image")
    done = bolly("images", "build", "--mode", "cpu", "--stage", "asr", "--base-image", BASE,
                 cwd=work, timeout=600)
    assert done.returncode == 0, done.stderr
    image = docker_client.images.get(asr_tag())  # type: ignore[attr-defined]
    assert image.labels["bolly-ray.cuda"] == "0"
    yield image.id
    for name in (asr_tag(), image.id):  # the tag (maybe relabelled by a test), then the image
        with contextlib.suppress(docker.errors.ImageNotFound):
            docker_client.images.remove(name, force=True)  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A demo job run natively once: its job file, and its asr record as the reference."""
    job = demo_job(tmp_path_factory.mktemp("gpu-demo") / "demo")
    return job, asr_record(job)


@pytest.fixture
def demo(demo_run: tuple[Path, dict]) -> Path:
    return demo_run[0]


def asr_record(job: Path) -> dict:
    [manifest] = job_dir_of(job).rglob("manifest.json")
    return read_manifest(manifest.parent)["stages"]["asr"]


def test_without_the_image_the_run_names_the_command_that_builds_it(
        docker_client: object, demo: Path, tmp_path: Path) -> None:
    with contextlib.suppress(docker.errors.ImageNotFound):  # left by an interrupted run
        docker_client.images.remove(asr_tag(), force=True)  # type: ignore[attr-defined]
    before = asr_record(demo)
    done = bolly("run", demo, "--only", "asr", "--gpu-stages", "docker", cwd=tmp_path)
    assert done.returncode == 2
    assert (f"no image for {asr_tag()}: run `bolly-ray images build --mode full` (or `--mode cpu` "
            "where there is no GPU)") in done.stderr
    assert "Traceback" not in done.stderr
    assert asr_record(demo) == before


@pytest.mark.parametrize("executor", ["local", "ray"])
def test_asr_in_its_container_writes_the_native_transcript(
        asr_image: str, demo_run: tuple[Path, dict], tmp_path: Path, executor: str) -> None:
    demo, native = demo_run
    assert native["runner"] in ("local", "actor")  # the demo ran it natively
    done = bolly("run", demo, "--only", "asr", "--gpu-stages", "docker", "--executor", executor,
                 "--force", cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    record = asr_record(demo)
    assert (record["runner"], record["image"]) == ("docker", asr_image)
    assert record["key"] != native["key"]  # the image is part of the cache key
    assert record["metrics"]["audio_s"] == native["metrics"]["audio_s"]
    assert record["outputs"]["raw_transcript"]["sha256"] == \
        native["outputs"]["raw_transcript"]["sha256"]


@pytest.fixture(scope="module")
def gpu_head(ray_tmpdir: Path) -> Iterator[str]:
    """A `ray start --head` node with two fake GPUs (Ray hands out their ids, 0 and 1)."""
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    port = free_port()
    address = f"{socket.gethostbyname(socket.gethostname())}:{port}"
    head = start_raylet(["--head", f"--port={port}", "--num-cpus=2", "--num-gpus=2",
                         "--include-dashboard=false", f"--temp-dir={ray_tmpdir}",
                         f"--ray-client-server-port={free_port()}"], env)
    try:
        wait_for_nodes(address, 1, env)
        yield address
    finally:
        stop(head)


def run_on_gpu_node(job: Path, address: str, cwd: Path) -> tuple[int, str]:
    done = bolly("run", job, "--only", "asr", "--gpu-stages", "docker", "--executor", "ray",
                 "--address", address, "--set", "asr.device=cuda", cwd=cwd, timeout=300,
                 env={"BOLLY_RAY_KEEP_CONTAINERS": "1"})
    return done.returncode, done.stderr


def test_a_gpu_attempt_in_a_cpu_image_fails_naming_the_gpu_build(
        asr_image: str, demo: Path, gpu_head: str, tmp_path: Path) -> None:
    code, stderr = run_on_gpu_node(demo, gpu_head, tmp_path)
    assert code == 1
    assert ("asr: its image has no CUDA libraries: build the GPU image with "
            "`bolly-ray images build --mode full --stage asr`") in stderr
    assert "Traceback" not in stderr
    assert asr_record(demo)["status"] == "failed"


def test_a_gpu_container_asks_docker_for_the_gpu_ray_granted(
        asr_image: str, docker_client: object, demo: Path, gpu_head: str,
        tmp_path: Path) -> None:
    # The CPU image relabelled as a GPU one: Docker refuses before its contents matter.
    relabel = tmp_path / "relabel"
    relabel.mkdir()
    (relabel / "Dockerfile").write_text(f"FROM {asr_image}\nLABEL bolly-ray.cuda=1\n")
    docker_client.images.build(path=str(relabel), tag=asr_tag(), rm=True)  # type: ignore[attr-defined]
    code, stderr = run_on_gpu_node(demo, gpu_head, tmp_path)
    assert code == 1
    assert "asr: this node's Docker engine cannot give a container GPUs (" in stderr
    assert "install the NVIDIA Container Toolkit there, or run GPU stages natively " \
           "(--gpu-stages native)" in stderr
    assert "Traceback" not in stderr
    [container] = docker_client.containers.list(  # type: ignore[attr-defined]
        all=True, filters={"label": [folder_label(demo), "bolly-ray.stage=asr"]})
    try:
        host = container.attrs["HostConfig"]
        [request] = host["DeviceRequests"]
        assert request["Capabilities"] == [["gpu"]]
        assert request["DeviceIDs"] in (["0"], ["1"])  # one of the node's two, as granted
        model = asr_model_folder(demo)
        mounts = {m["Destination"]: m for m in container.attrs["Mounts"]}
        assert mounts[model]["Source"] == model and mounts[model]["RW"] is False
        assert host["ReadonlyRootfs"] is True and host["CapDrop"] == ["ALL"]
    finally:
        container.remove(force=True)
    assert asr_record(demo)["status"] == "failed"


def asr_model_folder(job: Path) -> str:
    """The local model folder the demo job's asr reads (tiny.en: the demo extra's copy)."""
    from bolly_ray.stages.asr import model_source

    return model_source(json.loads(job.read_text())["stages"]["asr"]["model"])
