"""A GPU node dies mid-stage (a real crash, not a graceful exit) and a new one joins: every
job still finishes, attempts are recorded, and the outputs equal an undisturbed run's."""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
import ray
from ray.cluster_utils import Cluster

from bolly_ray.engine.registry import build_registry
from bolly_ray.executors import LocalExecutor
from bolly_ray.executors.ray_executor import RayExecutor
from tests import fakes
from tests.test_ray_executor import gpu_graph, jobs_for, manifests

pytestmark = pytest.mark.slow

SETTINGS = {"asr": {"sleep_s": 2.0}}


def asr_running(out_root: Path) -> bool:
    for path in out_root.rglob("manifest.json"):
        try:
            if json.loads(path.read_text())["stages"]["asr"]["status"] == "running":
                return True
        except (json.JSONDecodeError, KeyError):
            continue
    return False


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, read from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, frontier = [], [pid]
    while frontier:
        kids = children.get(frontier.pop(), [])
        found += kids
        frontier += kids
    return found


def crash(cluster: Cluster, node: object) -> None:
    """Kill a node like a power cut: its workers with SIGKILL, then the node's own processes."""
    raylet = node.all_processes["raylet"][0].process.pid  # type: ignore[attr-defined]
    for pid in descendants(raylet):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    cluster.remove_node(node, allow_graceful=False)


def gcs_actor_deaths() -> str:
    """What the GCS logged about destroying actors: a failure's evidence (an actor destroyed
    because its owner could not be reached reads like one whose handles were all dropped)."""
    node = ray._private.worker._global_node  # the driver's view of the cluster's session
    log = Path(node.get_session_dir_path()) / "logs" / "gcs_server.out"
    lines = log.read_text(errors="replace").splitlines() if log.is_file() else []
    return "\n".join(line for line in lines if "destroying actor" in line.lower()
                     or "failed to" in line.lower())[-4000:]


def output_hashes(outcomes: list) -> list[dict[str, str]]:
    return [{stage: next(iter(r["outputs"].values()))["sha256"]
             for stage, r in m["stages"].items()} for m in manifests(outcomes)]


def crash_and_recover(root: Path) -> tuple[list, str]:
    """Two jobs on a cluster whose GPU node is killed while ASR runs, then replaced; the
    outcomes and what the GCS logged about destroyed actors."""
    stages = gpu_graph()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "num_gpus": 0})
    gpu_node = cluster.add_node(num_cpus=1, num_gpus=1)
    ray.init(address=cluster.address)
    cluster.wait_for_nodes()
    try:
        jobs = jobs_for(root / "chaos", stages, 2, **SETTINGS)
        outcomes: list = []
        runner = threading.Thread(
            target=lambda: outcomes.extend(RayExecutor(build_registry(stages)).run(jobs)))
        runner.start()
        deadline = time.monotonic() + 60
        while not asr_running(root / "chaos") and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        crash(cluster, gpu_node)
        cluster.add_node(num_cpus=1, num_gpus=1)
        runner.join(timeout=180)
        assert not runner.is_alive()
        return outcomes, gcs_actor_deaths()
    finally:
        ray.shutdown()
        cluster.shutdown()


def test_killing_the_gpu_node_mid_stage_then_adding_one(tmp_path: Path) -> None:
    # The driver is a process of its own, as `bolly-ray run` and `serve` are. In this
    # suite's process, after hundreds of tests and Ray sessions, every actor this test
    # created was destroyed at birth ("all references removed", in full-suite runs only);
    # the cluster and the crash are the same either way.
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as driver:
        outcomes, why = driver.submit(crash_and_recover, tmp_path).result(timeout=280)
    stages = gpu_graph()
    assert [o.status for o in outcomes] == ["succeeded", "succeeded"], why
    attempts = [m["stages"]["asr"]["attempts"] for m in manifests(outcomes)]
    assert max(attempts) >= 2  # the attempt on the dead node was retried, and recorded
    fakes.LOADS.clear()
    reference = LocalExecutor(build_registry(stages)).run(
        jobs_for(tmp_path / "calm", stages, 2, **SETTINGS))
    assert output_hashes(outcomes) == output_hashes(reference)
