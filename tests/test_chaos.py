"""Chaos: a batch of six jobs on a simulated three-node Ray cluster (a CPU head, two fake-GPU
workers) while a seeded killer crashes worker nodes like a power cut and adds fresh ones.
Every job must finish with outputs byte-identical to an undisturbed run, each output
published exactly once, no scratch or half-replaced folders left.

CI runs a small number of rounds; `BOLLY_RAY_CHAOS_ROUNDS=N` and `BOLLY_RAY_CHAOS_SEED=S`
scale it up (docs/RELIABILITY.md has the figures of a longer run)."""

from __future__ import annotations

import os
import random
import threading
import time
from pathlib import Path

import pytest
import ray
from ray.cluster_utils import Cluster

from bolly_ray.core.hashing import sha256_artifact
from bolly_ray.engine.registry import build_registry
from bolly_ray.executors import LocalExecutor
from bolly_ray.executors.ray_executor import RayExecutor
from tests import fakes
from tests.test_ray_executor import gpu_graph, jobs_for, manifests
from tests.test_ray_faults import crash, output_hashes

pytestmark = pytest.mark.slow
ROUNDS = int(os.environ.get("BOLLY_RAY_CHAOS_ROUNDS", "2"))
SEED = int(os.environ.get("BOLLY_RAY_CHAOS_SEED", "20261129"))
SETTINGS = {"prep": {"sleep_s": 0.3}, "asr": {"sleep_s": 1.5}, "words": {"sleep_s": 0.3},
            "names": {"sleep_s": 0.3}}


def killer(cluster: Cluster, workers: list, rng: random.Random, runner: threading.Thread,
           log: list[str]) -> None:
    """Up to ROUNDS times, while the batch runs: crash a random worker node, add a new one."""
    for _ in range(ROUNDS):
        time.sleep(rng.uniform(0.8, 2.5))
        if not runner.is_alive():
            return
        victim = workers.pop(rng.randrange(len(workers)))
        crash(cluster, victim)
        log.append(f"crashed {victim.node_id[:8]}")  # type: ignore[attr-defined]
        workers.append(cluster.add_node(num_cpus=1, num_gpus=1))
        log.append("added a node")


def published_once(job_dir: Path, manifest: dict) -> None:
    """One folder per stage, holding exactly what the manifest recorded, nothing stale."""
    folders = sorted(p.name for p in job_dir.iterdir() if p.is_dir() and p.name[:2].isdigit())
    assert folders == sorted(f"{n:02d}_{s}" for n, s in enumerate(manifest["stages"], 1))
    leftovers = [p for p in job_dir.rglob("*") if ".old-" in p.name or ".scratch" in p.parts
                 or p.name.endswith(".tmp")]
    assert leftovers == []
    for record in manifest["stages"].values():
        for output in record["outputs"].values():
            assert sha256_artifact(job_dir / output["path"]) == (output["sha256"],
                                                                 output["bytes"])


def test_six_jobs_survive_nodes_crashing_and_joining(tmp_path: Path) -> None:
    stages = gpu_graph()
    rng = random.Random(SEED)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "num_gpus": 0})
    workers = [cluster.add_node(num_cpus=1, num_gpus=1) for _ in range(2)]
    ray.init(address=cluster.address)
    cluster.wait_for_nodes()
    log: list[str] = []
    outcomes: list = []
    try:
        jobs = jobs_for(tmp_path / "chaos", stages, 6, **SETTINGS)
        runner = threading.Thread(
            target=lambda: outcomes.extend(RayExecutor(build_registry(stages)).run(jobs)))
        runner.start()
        killer(cluster, workers, rng, runner, log)
        runner.join(timeout=600)
        assert not runner.is_alive()
    finally:
        ray.shutdown()
        cluster.shutdown()
    assert log and log[0].startswith("crashed")  # the chaos happened while jobs ran
    assert [o.status for o in outcomes] == ["succeeded"] * 6, [o.error for o in outcomes]
    for outcome, manifest in zip(outcomes, manifests(outcomes), strict=True):
        published_once(outcome.job_dir, manifest)
    fakes.LOADS.clear()
    calm = LocalExecutor(build_registry(stages)).run(
        jobs_for(tmp_path / "calm", stages, 6, **SETTINGS))
    assert output_hashes(outcomes) == output_hashes(calm)
    attempts = sum(r["attempts"] for m in manifests(outcomes) for r in m["stages"].values())
    print(f"chaos seed {SEED}: {len(log) // 2} node crashes, {attempts} attempts for "
          f"{6 * len(stages)} stage runs")
