"""Preflight on Ray: a GPU stage on a cluster without GPUs fails at once, with a message."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest
import ray

from bolly_ray.engine.registry import build_registry
from bolly_ray.errors import PreflightError
from bolly_ray.executors.gpu_packing import Demand, share_gpus
from bolly_ray.executors.ray_executor import RayExecutor, check_serialisable
from bolly_ray.spec import Resources, Stage, StageSettings, StageSpec
from tests.test_ray_executor import gpu_graph, jobs_for

pytestmark = pytest.mark.slow


def test_a_cluster_without_gpus_fails_fast_with_a_message(tmp_path: Path) -> None:
    ray.init(address="local", num_cpus=1, num_gpus=0, include_dashboard=False)
    try:
        stages = gpu_graph()
        started = time.monotonic()
        with pytest.raises(PreflightError, match=re.escape(
                "asr needs 1 GPU; the cluster has 0: start a GPU node or set asr.device=cpu")):
            RayExecutor(build_registry(stages)).run(jobs_for(tmp_path, stages, 1))
        assert time.monotonic() - started < 5
        assert not (tmp_path / "out").exists()  # nothing started, nothing written
    finally:
        ray.shutdown()


class HoldsALock(Stage):
    spec = StageSpec(name="locked", inputs=("media",), outputs=("x",))

    def __init__(self) -> None:
        self.lock = threading.Lock()  # cannot be pickled, so cannot reach a worker


def test_stages_that_cannot_reach_a_worker_are_named_before_anything_runs() -> None:
    registry = build_registry([HoldsALock, *gpu_graph()])
    with pytest.raises(PreflightError, match=r"locked: the stage cannot be sent to a worker: "
                       r"cannot pickle '_thread.lock' object"):
        check_serialisable({"locked", "asr", "prep"}, registry)


def test_gpu_pools_that_together_ask_for_more_than_the_cluster_has_share_its_gpus() -> None:
    """ASR's whole GPU and alignment's half on a one-GPU machine: both first actors start
    with the run, so asked as declared the second would wait forever."""
    def need(gpus: float) -> Demand:
        return Demand(3, Resources(cpus=1, gpus=gpus), StageSettings(), True)

    shared = share_gpus({("asr", "m"): need(1.0), ("align", "m"): need(0.5)}, [1.0])
    assert {k[0]: d.resources.gpus for k, d in shared.items()} == {"asr": 0.6666,
                                                                  "align": 0.3333}
    assert sum(d.resources.gpus for d in shared.values()) <= 1.0
    roomy = {("asr", "m"): need(1.0), ("align", "m"): need(0.5)}
    assert share_gpus(dict(roomy), [2.0]) == roomy  # two GPUs: as declared
