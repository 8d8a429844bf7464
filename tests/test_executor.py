"""The local executor against small fake graphs: caching, resume, failure policy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bolly_ray.core.job import JobBase, validate_job
from bolly_ray.core.wire import Selection
from bolly_ray.engine.registry import build_registry
from bolly_ray.errors import UsageError
from bolly_ray.executors import LocalExecutor
from bolly_ray.executors.preflight import Preflight
from tests import fakes


@pytest.fixture(autouse=True)
def _reset_fakes() -> None:
    fakes.CALLS.clear()
    fakes.LOADS.clear()


def make_job(tmp_path: Path, stages: list, job_id: str = "film-1", **settings: dict) -> JobBase:
    media = tmp_path / "film.txt"
    if not media.exists():
        media.write_text("FILM")
    data = {"id": job_id, "media": str(media), "out_root": str(tmp_path / "out"),
            "stages": settings}
    return validate_job(data, [s.spec for s in stages], "test")


def run(tmp_path: Path, stages: list, selection: Selection | None = None, job_id: str = "film-1",
        **settings: dict):
    job = make_job(tmp_path, stages, job_id, **settings)
    [outcome] = LocalExecutor(build_registry(stages)).run([job], selection)
    manifest = json.loads((outcome.job_dir / "manifest.json").read_text())
    return outcome, manifest


def statuses(manifest: dict) -> dict[str, str]:
    return {name: s["status"] for name, s in manifest["stages"].items()}


def test_first_run_executes_every_stage_in_dependency_order(tmp_path: Path) -> None:
    outcome, manifest = run(tmp_path, fakes.fan_out_fan_in())
    assert outcome.status == "succeeded"
    assert fakes.CALLS == ["a", "b", "c", "d", "e"]
    assert set(statuses(manifest).values()) == {"succeeded"}
    assert fakes.read_output(outcome.job_dir, manifest, "d", "w") == (
        "FILM>a:None>b:None+FILM>a:None>c:None>d:None")
    record = manifest["stages"]["b"]
    assert record["outputs"]["y"]["path"] == "02_b/y.txt"
    assert record["attempts"] == 1 and record["runner"] == "local" and len(record["key"]) == 64


def test_rerun_of_unchanged_job_executes_nothing(tmp_path: Path) -> None:
    run(tmp_path, fakes.fan_out_fan_in())
    fakes.CALLS.clear()
    outcome, manifest = run(tmp_path, fakes.fan_out_fan_in())
    assert fakes.CALLS == []
    assert set(statuses(manifest).values()) == {"cached"}
    assert outcome.status == "succeeded"


def test_changed_setting_reruns_that_stage_and_its_dependants_only(tmp_path: Path) -> None:
    run(tmp_path, fakes.fan_out_fan_in())
    fakes.CALLS.clear()
    _, manifest = run(tmp_path, fakes.fan_out_fan_in(), b={"suffix": "!"})
    assert fakes.CALLS == ["b", "d", "e"]
    assert statuses(manifest) == {"a": "cached", "b": "succeeded", "c": "cached",
                                  "d": "succeeded", "e": "succeeded"}


def test_corrupted_output_is_detected_and_rebuilt(tmp_path: Path) -> None:
    outcome, manifest = run(tmp_path, fakes.fan_out_fan_in())
    target = outcome.job_dir / manifest["stages"]["c"]["outputs"]["z"]["path"]
    original = target.read_text()
    target.write_text("tampered")
    fakes.CALLS.clear()
    _, manifest = run(tmp_path, fakes.fan_out_fan_in())
    assert fakes.CALLS == ["c"]  # d's input hash is unchanged once c is rebuilt identically
    assert target.read_text() == original
    assert statuses(manifest)["d"] == "cached"


def test_optional_failure_lets_dependants_use_their_fallback(tmp_path: Path) -> None:
    outcome, manifest = run(tmp_path, fakes.fan_out_fan_in(), c={"fail": "permanent"})
    assert outcome.status == "succeeded"
    assert statuses(manifest) == {"a": "succeeded", "b": "succeeded", "c": "failed",
                                  "d": "succeeded", "e": "succeeded"}
    assert manifest["stages"]["c"]["error"] == "c: bad media on purpose"
    assert manifest["stages"]["c"]["outputs"] == {}
    assert fakes.read_output(outcome.job_dir, manifest, "d", "w").endswith(">b:None>d:None")


def test_disabled_optional_stage_is_skipped(tmp_path: Path) -> None:
    _, manifest = run(tmp_path, fakes.fan_out_fan_in(), c={"enabled": False})
    assert statuses(manifest)["c"] == "skipped"
    assert "c" not in fakes.CALLS


def test_the_preflight_plans_the_run_with_its_skips_and_starts_nothing(tmp_path: Path) -> None:
    stages = fakes.fan_out_fan_in()
    job = make_job(tmp_path, stages, c={"enabled": False})
    executor = LocalExecutor(build_registry(stages))
    plan = Preflight(executor.registry, frozenset(), executor._hardware).check(
        [job], Selection())
    assert [s.job.id for s in plan.sessions] == ["film-1"]
    assert plan.skips() == {"film-1": {"c": "disabled in the job settings"}}
    assert not (tmp_path / "out").exists() and fakes.CALLS == []


def test_critical_failure_fails_the_job_and_leaves_the_rest_pending(tmp_path: Path) -> None:
    outcome, manifest = run(tmp_path, fakes.fan_out_fan_in(), b={"fail": "permanent"})
    assert outcome.status == "failed" and outcome.failed_stage == "b"
    assert manifest["status"] == "failed"
    assert statuses(manifest) == {"a": "succeeded", "b": "failed", "c": "pending",
                                  "d": "pending", "e": "pending"}
    assert manifest["stages"]["b"]["attempts"] == 1  # permanent errors are not retried


def test_transient_errors_are_retried_then_succeed(tmp_path: Path) -> None:
    _, manifest = run(tmp_path, fakes.fan_out_fan_in(), b={"fail": "transient", "fail_times": 2})
    assert manifest["stages"]["b"]["status"] == "succeeded"
    assert manifest["stages"]["b"]["attempts"] == 3
    assert fakes.CALLS.count("b") == 3


def test_transient_errors_stop_after_max_attempts(tmp_path: Path) -> None:
    outcome, manifest = run(tmp_path, fakes.fan_out_fan_in(), b={"fail": "transient"})
    assert outcome.status == "failed"
    assert manifest["stages"]["b"]["attempts"] == 3
    assert manifest["stages"]["b"]["error"] == "b: lost a worker on purpose"


def test_a_crashing_stage_fails_with_one_line_and_the_traceback_goes_to_the_log(
        tmp_path: Path) -> None:
    outcome, manifest = run(tmp_path, fakes.fan_out_fan_in(), a={"fail": "crash"})
    assert manifest["stages"]["a"]["error"] == "a crashed: ZeroDivisionError: a bug on purpose"
    assert "Traceback" in (outcome.job_dir / "logs" / "run.log").read_text()


def test_timeout_stops_a_hung_stage_and_nothing_it_writes_is_published(tmp_path: Path) -> None:
    stages = [fakes.fake("a", ["media"], ["x"], timeout_s=0.3)]
    outcome, manifest = run(tmp_path, stages, a={"sleep_s": 1.5})
    assert outcome.status == "failed"
    assert manifest["stages"]["a"]["error"] == "a: ran past its timeout of 0.3 s"
    assert manifest["stages"]["a"]["attempts"] == 1
    assert not (outcome.job_dir / "01_a").exists()


def test_recovery_after_a_failure_reruns_only_what_is_missing(tmp_path: Path) -> None:
    run(tmp_path, fakes.fan_out_fan_in(), b={"fail": "permanent"})
    fakes.CALLS.clear()
    _, manifest = run(tmp_path, fakes.fan_out_fan_in())
    assert fakes.CALLS == ["b", "c", "d", "e"]
    assert statuses(manifest)["a"] == "cached"


def test_only_runs_selected_stages_when_upstream_outputs_exist(tmp_path: Path) -> None:
    run(tmp_path, fakes.fan_out_fan_in())
    fakes.CALLS.clear()
    _, manifest = run(tmp_path, fakes.fan_out_fan_in(), Selection(only=("d",), force=True))
    assert fakes.CALLS == ["d"]
    assert statuses(manifest)["d"] == "succeeded"


def test_only_without_upstream_outputs_names_what_is_missing(tmp_path: Path) -> None:
    outcome, _ = run(tmp_path, fakes.fan_out_fan_in(), Selection(only=("d",)))
    assert outcome.status == "failed"
    assert "d needs 'y' from b, which has no published output yet" in outcome.error
    assert fakes.CALLS == []


def test_from_forces_a_stage_and_everything_after_it(tmp_path: Path) -> None:
    run(tmp_path, fakes.fan_out_fan_in())
    fakes.CALLS.clear()
    _, manifest = run(tmp_path, fakes.fan_out_fan_in(), Selection(start="b"))
    assert fakes.CALLS == ["b", "d", "e"]
    assert statuses(manifest)["a"] == "succeeded"  # not selected: its record is untouched


def test_unknown_stage_names_in_a_selection_are_all_listed(tmp_path: Path) -> None:
    job = make_job(tmp_path, fakes.fan_out_fan_in())
    executor = LocalExecutor(build_registry(fakes.fan_out_fan_in()))
    with pytest.raises(UsageError, match=r"unknown stages: nope, zzz \(stages: a, b, c, d, e\)"):
        executor.run([job], Selection(only=("zzz", "a"), start="nope"))


def test_gpu_kind_models_load_once_per_run_and_serve_every_job(tmp_path: Path) -> None:
    stages = [fakes.fake("asr", ["media"], ["text"], gpu=True)]
    jobs = [make_job(tmp_path, stages, f"film-{n}") for n in range(3)]
    outcomes = LocalExecutor(build_registry(stages)).run(jobs)
    loads = [json.loads((o.job_dir / "manifest.json").read_text())
             ["stages"]["asr"]["metrics"]["model_loads"] for o in outcomes]
    assert fakes.LOADS == ["asr"] and loads == [1, 0, 0]


def test_a_second_job_goes_on_when_the_first_fails(tmp_path: Path) -> None:
    stages = fakes.fan_out_fan_in()
    bad = make_job(tmp_path, stages, "bad", b={"fail": "permanent"})
    good = make_job(tmp_path, stages, "good")
    outcomes = LocalExecutor(build_registry(stages)).run([bad, good])
    assert [o.status for o in outcomes] == ["failed", "succeeded"]


def test_job_provided_artifact_replaces_its_producer(tmp_path: Path) -> None:
    given = tmp_path / "y.txt"
    given.write_text("MINE")
    stages = fakes.fan_out_fan_in()
    media = tmp_path / "film.txt"
    media.write_text("FILM")
    job = validate_job({"id": "j", "media": str(media), "out_root": str(tmp_path / "out"),
                        "artifacts": {"y": str(given)}}, [s.spec for s in stages], "t")
    [outcome] = LocalExecutor(build_registry(stages)).run([job])
    manifest = json.loads((outcome.job_dir / "manifest.json").read_text())
    assert "b" not in fakes.CALLS and "b" not in manifest["stages"]
    assert fakes.read_output(outcome.job_dir, manifest, "e", "v") == "MINE>e:None"


def test_no_scratch_or_temp_files_are_left_behind(tmp_path: Path) -> None:
    outcome, _ = run(tmp_path, fakes.fan_out_fan_in(), c={"fail": "crash"})
    leftovers = [p for p in outcome.job_dir.rglob("*")
                 if ".scratch" in p.parts or p.name.endswith(".tmp")]
    assert leftovers == []
