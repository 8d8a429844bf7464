"""The Ray executor on a simulated two-node cluster: a CPU-only head and a worker with a
(fake) GPU. GPU-kind stages run in warm actors on the GPU node, CPU stages spread over both
nodes, and three jobs cause one model load per actor."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import ray
from ray.cluster_utils import Cluster

from bolly_ray.core.job import JobBase, validate_job
from bolly_ray.engine.events import JobEvent, Observers, StageEvent
from bolly_ray.engine.registry import build_registry
from bolly_ray.engine.report import RAY_TIMELINE
from bolly_ray.errors import UsageError
from bolly_ray.executors.ray_executor import RayExecutor
from bolly_ray.spec import Locality
from tests import fakes

pytestmark = pytest.mark.slow


def gpu_graph() -> list[type]:
    """media -> prep (source) -> asr (GPU kind) -> (words, names) -> subs."""
    return [
        fakes.fake("prep", ["media"], ["audio"]),
        fakes.fake("asr", ["audio"], ["text"], gpu=True),
        fakes.fake("words", ["text"], ["timed"]),
        fakes.fake("names", ["text"], ["fixed"]),
        fakes.fake("subs", ["timed", "fixed"], ["srt"]),
    ]


def jobs_for(tmp_path: Path, stages: list[type], count: int, **settings: dict) -> list:
    tmp_path.mkdir(parents=True, exist_ok=True)
    media = tmp_path / "film.txt"
    media.write_text("FILM")
    return [validate_job({"id": f"film-{n}", "media": str(media),
                          "out_root": str(tmp_path / "out"),
                          "execution": {"executor": "ray"}, "stages": settings},
                         [s.spec for s in stages], "test") for n in range(count)]


def manifests(outcomes: list) -> list[dict]:
    return [json.loads((o.job_dir / "manifest.json").read_text()) for o in outcomes]


@pytest.fixture(scope="module")
def two_nodes() -> Iterator[tuple[Cluster, str]]:
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "num_gpus": 0})
    worker = cluster.add_node(num_cpus=2, num_gpus=1, labels={"bolly-ray/role": "gpu"})
    ray.init(address=cluster.address)
    cluster.wait_for_nodes()
    try:
        yield cluster, worker.node_id
    finally:
        ray.shutdown()
        cluster.shutdown()


def test_gpu_stages_on_the_gpu_node_cpu_stages_on_both_one_load_per_actor(
        two_nodes: tuple[Cluster, str], tmp_path: Path) -> None:
    _, gpu_node = two_nodes
    stages = gpu_graph()
    jobs = jobs_for(tmp_path, stages, 3, words={"sleep_s": 0.3}, names={"sleep_s": 0.3})
    outcomes = RayExecutor(build_registry(stages)).run(jobs)
    assert [o.status for o in outcomes] == ["succeeded"] * 3
    records = [m["stages"] for m in manifests(outcomes)]
    head = ray.get_runtime_context().get_node_id()
    assert {r["asr"]["node_id"] for r in records} == {gpu_node}
    assert {r["asr"]["runner"] for r in records} == {"actor"}
    assert sum(r["asr"]["metrics"]["model_loads"] for r in records) == 1
    assert {r["prep"]["node_id"] for r in records} == {head}  # reads the media: driver's node
    spread = {r[s]["node_id"] for r in records for s in ("words", "names", "subs")}
    assert spread == {head, gpu_node}
    assert {r[s]["runner"] for r in records for s in ("prep", "words", "subs")} == {"task"}
    out = outcomes[0].job_dir / records[0]["subs"]["outputs"]["srt"]["path"]
    assert out.read_text() == ("FILM>prep:None>asr:model-1>names:None"
                               "+FILM>prep:None>asr:model-1>words:None>subs:None")


def test_ray_and_local_executors_publish_identical_outputs(
        two_nodes: tuple[Cluster, str], tmp_path: Path) -> None:
    from bolly_ray.executors import LocalExecutor

    stages = gpu_graph()
    [on_ray] = RayExecutor(build_registry(stages)).run(jobs_for(tmp_path / "r", stages, 1))
    fakes.LOADS.clear()
    [local] = LocalExecutor(build_registry(stages)).run(jobs_for(tmp_path / "l", stages, 1))

    def hashes(outcome) -> dict[str, dict[str, str]]:
        [manifest] = manifests([outcome])
        return {stage: {name: out["sha256"] for name, out in record["outputs"].items()}
                for stage, record in manifest["stages"].items()}

    assert hashes(on_ray) == hashes(local)
    assert len(hashes(on_ray)) == 5


def test_a_permanent_failure_on_ray_is_not_retried(
        two_nodes: tuple[Cluster, str], tmp_path: Path) -> None:
    stages = gpu_graph()
    [outcome] = RayExecutor(build_registry(stages)).run(
        jobs_for(tmp_path, stages, 1, names={"fail": "permanent"}))
    [manifest] = manifests([outcome])
    assert outcome.status == "failed" and outcome.failed_stage == "names"
    assert manifest["stages"]["names"]["error"] == "names: bad media on purpose"
    assert manifest["stages"]["names"]["attempts"] == 1


def test_media_on_a_shared_path_lets_source_stages_run_anywhere(
        two_nodes: tuple[Cluster, str], tmp_path: Path) -> None:
    _, gpu_node = two_nodes
    stages = gpu_graph()
    jobs = [job.model_copy(update={"execution": job.execution.model_copy(
                update={"shared_paths": [tmp_path]})})
            for job in jobs_for(tmp_path, stages, 4, prep={"sleep_s": 0.3})]
    outcomes = RayExecutor(build_registry(stages)).run(jobs)
    nodes = {m["stages"]["prep"]["node_id"] for m in manifests(outcomes)}
    assert nodes == {ray.get_runtime_context().get_node_id(), gpu_node}


def test_node_labels_in_a_spec_pin_a_cpu_stage_to_matching_nodes(
        two_nodes: tuple[Cluster, str], tmp_path: Path) -> None:
    _, gpu_node = two_nodes
    pinned = fakes.fake("pinned", ["media"], ["x"])
    pinned.spec = dataclasses.replace(pinned.spec, node_labels={"bolly-ray/role": "gpu"},
                                      locality=Locality.ANY)
    stages = [fakes.fake("plain", ["media"], ["y"]), pinned]
    jobs = [job.model_copy(update={"execution": job.execution.model_copy(
                update={"shared_paths": [tmp_path]})})
            for job in jobs_for(tmp_path, stages, 3)]
    outcomes = RayExecutor(build_registry(stages)).run(jobs)
    assert {m["stages"]["pinned"]["node_id"] for m in manifests(outcomes)} == {gpu_node}


class Recorder:
    """Every event, in the order the scheduler emitted them."""

    def __init__(self) -> None:
        self.events: list[JobEvent | StageEvent] = []

    def on_job(self, event: JobEvent) -> None:
        self.events.append(event)

    def on_stage(self, event: StageEvent) -> None:
        self.events.append(event)

    def saw(self, job_id: str, stage: str, status: str) -> bool:
        return any(isinstance(e, StageEvent) and (e.job_id, e.stage, e.status) ==
                   (job_id, stage, status) for e in list(self.events))

    def ended(self) -> list[str]:
        return [e.job_id for e in list(self.events)
                if isinstance(e, JobEvent) and e.status != "running"]


def one_job(tmp_path: Path, stages: list[type], job_id: str, **settings: dict) -> JobBase:
    media = tmp_path / f"{job_id}.txt"
    media.write_text("FILM")
    return validate_job({"id": job_id, "media": str(media), "out_root": str(tmp_path / "out"),
                         "execution": {"executor": "ray"}, "stages": settings},
                        [s.spec for s in stages], "test")


def wait_until(check: Callable[[], bool], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_job_submitted_while_another_runs_uses_the_warm_actor_and_ends_first(
        two_nodes: tuple[Cluster, str], tmp_path: Path) -> None:
    stages, seen = gpu_graph(), Recorder()
    executor = RayExecutor(build_registry(stages), Observers([seen]))
    intake = executor.intake()
    try:
        intake.submit(one_job(tmp_path, stages, "slow", words={"sleep_s": 4.0}))
        wait_until(lambda: seen.saw("slow", "words", "running"))
        assert intake.outcome("slow") is None
        with pytest.raises(UsageError, match=r"^job slow is running already$"):
            intake.submit(one_job(tmp_path, stages, "slow"))
        intake.submit(one_job(tmp_path, stages, "quick"))
        wait_until(lambda: intake.outcome("quick") is not None)
        assert seen.ended() == ["quick"]  # the slow one is still in its words stage
        assert intake.outcome("quick").status == "succeeded"
        # the ended job's artifacts left the object store; the running one's are held
        held = executor._shipments.held()
        assert held and all(path.is_relative_to(tmp_path / "out") and "slow" in path.parts
                            for path in held), held
    finally:
        outcomes = intake.close()
    assert [(o.job_id, o.status) for o in outcomes] == [("slow", "succeeded"),
                                                        ("quick", "succeeded")]
    records = [m["stages"] for m in manifests(outcomes)]
    assert sum(r["asr"]["metrics"]["model_loads"] for r in records) == 1  # kept warm


def test_each_job_keeps_rays_timeline_from_its_own_admission_on(
        two_nodes: tuple[Cluster, str], tmp_path: Path) -> None:
    """A service's Ray keeps months of events: a job's logs get those of its own time."""
    stages = gpu_graph()
    intake = RayExecutor(build_registry(stages)).intake()
    try:
        intake.submit(one_job(tmp_path, stages, "first"))
        wait_until(lambda: intake.outcome("first") is not None)
        between_us = time.time() * 1e6
        intake.submit(one_job(tmp_path, stages, "second"))
        wait_until(lambda: intake.outcome("second") is not None)
    finally:
        outcomes = intake.close()  # waits for the timelines being written
    first, second = ([e for e in json.loads((o.job_dir / "logs" / RAY_TIMELINE).read_text())
                      if "ts" in e] for o in outcomes)
    assert any(e["ts"] + e.get("dur", 0) < between_us for e in first)
    assert second and all(e["ts"] + e.get("dur", 0) >= between_us for e in second)
    assert any(e["name"].endswith("task_attempt") for e in second)  # its own stages


def test_a_cancelled_job_starts_nothing_more_and_ends_failed(
        two_nodes: tuple[Cluster, str], tmp_path: Path) -> None:
    stages, seen = gpu_graph(), Recorder()
    intake = RayExecutor(build_registry(stages), Observers([seen])).intake()
    try:
        intake.submit(one_job(tmp_path, stages, "doomed", words={"sleep_s": 2.0}))
        wait_until(lambda: seen.saw("doomed", "words", "running"))
        intake.cancel("doomed")
    finally:
        [outcome] = intake.close()
    assert (outcome.status, outcome.error, outcome.failed_stage) == ("failed", "cancelled", None)
    [manifest] = manifests([outcome])
    assert manifest["stages"]["words"]["status"] == "succeeded"  # it was running: it finished
    assert manifest["stages"]["subs"]["status"] == "pending"
    assert not seen.saw("doomed", "subs", "running")
    with pytest.raises(UsageError, match=r"^the job intake is closed$"):
        intake.submit(one_job(tmp_path, stages, "late"))
