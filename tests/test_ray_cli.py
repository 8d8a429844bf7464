"""`bolly-ray run` against Ray for real: the embedded default, and a cluster of two raylets
started with `ray start --head` and `ray start --address` (a CPU head, a fake-GPU worker)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import PLUGIN_SITE, assert_one_line_error, bolly, read_manifest
from tests.media.make_media import MediaCase

pytestmark = pytest.mark.slow
GPU_PLUGIN_SITE = Path(__file__).resolve().parent / "gpu_plugin_site"
RAY = Path(sys.executable).with_name("ray")


def gpu_env(**extra: str) -> dict[str, str]:
    return {"PYTHONPATH": os.pathsep.join([str(GPU_PLUGIN_SITE), str(PLUGIN_SITE)]),
            "BOLLY_RAY_EXECUTOR": "ray", **extra}


def gpu_job(media: MediaCase, root: Path, job_id: str = "film", **stages: dict) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    job_file = root / f"{job_id}.json"
    job_file.write_text(json.dumps({
        "id": job_id, "media": str(media.path), "user": "u", "created": "2026-11-29",
        "out_root": str(root / "out"), "stages": stages}))
    return job_file


def job_dir(root: Path, job_id: str = "film") -> Path:
    return root / "out" / "2026" / "11" / "29" / "u" / job_id


def test_no_gpu_anywhere_fails_in_seconds_with_the_fix_in_the_message(
        media: dict[str, MediaCase], tmp_path: Path) -> None:
    job_file = gpu_job(media["wav_only"], tmp_path)
    started = time.monotonic()
    done = bolly("run", job_file, "--only", "demux,gpucopy", cwd=tmp_path, env=gpu_env())
    assert_one_line_error(done, 1, "gpucopy needs 1 GPU; the cluster has 0: start a GPU node "
                          "or set gpucopy.device=cpu")
    assert time.monotonic() - started < 60
    assert not job_dir(tmp_path).exists()


def test_a_gpu_stage_set_to_cpu_runs_in_an_actor_without_a_gpu(
        media: dict[str, MediaCase], tmp_path: Path) -> None:
    job_file = gpu_job(media["wav_only"], tmp_path)
    done = bolly("run", job_file, "--only", "demux,gpucopy", "--set", "gpucopy.device=cpu",
                 cwd=tmp_path, env=gpu_env())
    assert done.returncode == 0, done.stderr
    record = read_manifest(job_dir(tmp_path))["stages"]["gpucopy"]
    assert (record["runner"], record["metrics"]["model_loads"]) == ("actor", 1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def start_raylet(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    ports = ["--node-manager-port", "--object-manager-port", "--dashboard-agent-grpc-port",
             "--dashboard-agent-listen-port", "--metrics-export-port", "--runtime-env-agent-port"]
    port_args = [arg for flag in ports for arg in (flag, str(free_port()))]
    return subprocess.Popen([str(RAY), "start", "--block", "--disable-usage-stats", *args,
                             *port_args], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop what we started, by its process group: never `ray stop`."""
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
            process.wait(timeout=wait)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def wait_for_nodes(address: str, count: int, env: dict[str, str]) -> list[dict]:
    probe = (f"import json, ray; ray.init(address={address!r}, logging_level='ERROR'); "
             "print(json.dumps([{'id': n['NodeID'], 'gpus': n['Resources'].get('GPU', 0)} "
             "for n in ray.nodes() if n['Alive']]))")
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                              text=True, timeout=60, check=False)
        if done.returncode == 0:
            nodes = json.loads(done.stdout.strip().splitlines()[-1])
            if len(nodes) >= count:
                return nodes
        time.sleep(1)
    raise AssertionError(f"the cluster at {address} never had {count} nodes")


@pytest.fixture(scope="module")
def ray_start_cluster(ray_tmpdir: Path) -> Iterator[tuple[str, list[dict]]]:
    env = {**os.environ, **gpu_env(), "RAY_AUTH_MODE": "disabled"}
    port = free_port()
    address = f"{socket.gethostbyname(socket.gethostname())}:{port}"
    head = start_raylet(["--head", f"--port={port}", "--num-cpus=2", "--num-gpus=0",
                         "--include-dashboard=false", f"--temp-dir={ray_tmpdir}",
                         f"--ray-client-server-port={free_port()}"], env)
    worker = None
    try:
        wait_for_nodes(address, 1, env)
        worker = start_raylet([f"--address={address}", "--num-cpus=1", "--num-gpus=1"], env)
        yield address, wait_for_nodes(address, 2, env)
    finally:
        for process in (worker, head):
            if process is not None:
                stop(process)


def test_run_with_address_joins_a_ray_start_cluster(
        ray_start_cluster: tuple[str, list[dict]], media: dict[str, MediaCase],
        tmp_path: Path) -> None:
    address, nodes = ray_start_cluster
    gpu_node = next(n["id"] for n in nodes if n["gpus"] > 0)
    files = [gpu_job(media["mp4_aac"], tmp_path, f"film-{n}") for n in range(3)]
    done = bolly("run", *files, "--only", "demux,gpucopy", "--address", address, "--json",
                 cwd=tmp_path, env=gpu_env(), timeout=240)
    assert done.returncode == 0, done.stderr
    assert [j["status"] for j in json.loads(done.stdout)["jobs"]] == ["succeeded"] * 3
    records = [read_manifest(job_dir(tmp_path, f"film-{n}"))["stages"] for n in range(3)]
    assert {r["gpucopy"]["node_id"] for r in records} == {gpu_node}
    assert sum(r["gpucopy"]["metrics"]["model_loads"] for r in records) == 1
    assert all(r["gpucopy"]["metrics"]["cuda_visible"] == 1 for r in records)


def test_hardware_with_address_profiles_each_node_on_the_node(
        ray_start_cluster: tuple[str, list[dict]], tmp_path: Path) -> None:
    address, nodes = ray_start_cluster
    done = bolly("hardware", "--address", address, "--json", cwd=tmp_path, env=gpu_env(),
                 timeout=120)
    assert done.returncode == 0, done.stderr
    reported = {n["node_id"]: n for n in json.loads(done.stdout)["nodes"]}
    assert set(reported) == {n["id"] for n in nodes}
    for node in nodes:
        entry = reported[node["id"]]
        assert entry["ray_resources"]["GPU" if node["gpus"] else "CPU"] >= 1
        profile = entry["profile"]  # detected by a task on that node: no real GPU here
        assert profile["cpus"] >= 1 and profile["gpus"] == []
        assert profile["recommendation"]["device"] == "cpu"
    text = bolly("hardware", "--address", address, cwd=tmp_path, env=gpu_env(), timeout=120)
    assert text.returncode == 0
    assert text.stdout.count("recommended: device=cpu") == len(nodes), text.stdout


def test_doctor_checks_the_versions_on_every_node_of_the_cluster(
        ray_start_cluster: tuple[str, list[dict]], tmp_path: Path) -> None:
    address, nodes = ray_start_cluster
    done = bolly("doctor", "--address", address, "--json", cwd=tmp_path, env=gpu_env(),
                 timeout=120)
    report = json.loads(done.stdout)
    per_node = [c for c in report["checks"] if c["name"].startswith("node ")]
    assert len(per_node) == len(nodes), per_node
    assert all(c["ok"] and "ray 2.60.0" in c["detail"] for c in per_node), per_node
    assert report["required"] == ["native", "cluster"] and report["ready"]["cluster"] is True
    assert done.returncode == (0 if report["ready"]["native"] else 1)


def test_offline_reaches_every_ray_worker(media: dict[str, MediaCase], tmp_path: Path) -> None:
    def offline_seen(*flags: str) -> float:
        root = tmp_path / ("offline" if flags else "online")
        job_file = gpu_job(media["wav_only"], root)
        done = bolly("run", job_file, "--only", "demux,gpucopy", "--set", "gpucopy.device=cpu",
                     *flags, cwd=root, env=gpu_env(HF_HUB_OFFLINE=""))
        assert done.returncode == 0, done.stderr
        return read_manifest(job_dir(root))["stages"]["gpucopy"]["metrics"]["hf_hub_offline"]

    assert offline_seen() == 0.0
    assert offline_seen("--offline") == 1.0


def test_report_for_a_batch_of_three_jobs_matches_their_manifests(
        media: dict[str, MediaCase], tmp_path: Path) -> None:
    files = [gpu_job(media["wav_only"], tmp_path, f"r{n}", gpucopy={"device": "cpu"})
             for n in range(3)]
    done = bolly("run", *files, "--only", "demux,gpucopy", cwd=tmp_path, env=gpu_env())
    assert done.returncode == 0, done.stderr
    report = bolly("report", tmp_path / "out", "--out", tmp_path / "report", "--json",
                   cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    result = json.loads(report.stdout)
    png = tmp_path / "report" / "report.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image

    height, width, _ = matplotlib.image.imread(png).shape
    assert width > 600 and height > 100
    manifests = [read_manifest(job_dir(tmp_path, f"r{n}"))["stages"] for n in range(3)]
    rows = {row["stage"]: row for row in result["stages"]}
    for stage in ("demux", "gpucopy"):
        records = [m[stage] for m in manifests]
        assert rows[stage]["runs"] == 3 and rows[stage]["cached"] == 0
        assert rows[stage]["seconds"] == pytest.approx(sum(r["duration_s"] for r in records),
                                                       abs=0.002)
        assert rows[stage]["audio_s"] == pytest.approx(
            sum(r["metrics"].get("audio_s", 0.0) for r in records), abs=0.002)
    assert rows["gpucopy"]["model_load_s"] == pytest.approx(
        sum(m["gpucopy"]["metrics"].get("model_load_s", 0.0) for m in manifests), abs=0.002)
    timelines = [f for f in result["files"] if f.endswith(".ray_timeline.json")]
    assert len(timelines) == 3 and json.loads(Path(timelines[0]).read_text())


def test_progress_modes_show_each_stage_with_node_runner_and_audio(
        media: dict[str, MediaCase], tmp_path: Path) -> None:
    job_file = gpu_job(media["wav_only"], tmp_path, gpucopy={"device": "cpu"})
    args = ("run", job_file, "--only", "demux,gpucopy", "--force")
    as_json = bolly(*args, "--progress", "json", cwd=tmp_path, env=gpu_env())
    assert as_json.returncode == 0, as_json.stderr
    events = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert events[0] == {**events[0], "event": "job", "status": "running",
                         "stages": ["demux", "gpucopy"]}
    assert events[-1]["event"] == "job" and events[-1]["status"] == "succeeded"
    ended = {e["stage"]: e for e in events if e["event"] == "stage" and e["status"] != "running"}
    started = {e["stage"]: e for e in events if e["event"] == "stage" and e["status"] == "running"}
    manifest = read_manifest(job_dir(tmp_path))["stages"]
    assert {s: e["runner"] for s, e in started.items()} == {"demux": "task", "gpucopy": "actor"}
    for stage in ("demux", "gpucopy"):
        assert ended[stage]["status"] == "succeeded"
        assert ended[stage]["node"] == manifest[stage]["node_ip"]
        assert ended[stage]["runner"] == manifest[stage]["runner"] == started[stage]["runner"]
    assert ended["demux"]["audio_s"] == manifest["demux"]["metrics"]["audio_s"] > 0

    live = bolly(*args, "--progress", "rich", cwd=tmp_path, env=gpu_env())
    assert live.returncode == 0, live.stderr
    audio = manifest["demux"]["metrics"]["audio_s"]
    assert "✓ film demux succeeded · " in live.stderr
    assert f"{audio:.1f} s of audio" in live.stderr and "job film succeeded" in live.stderr

    quiet = bolly(*args, "-q", cwd=tmp_path, env=gpu_env())
    assert quiet.returncode == 0 and "demux" not in quiet.stderr + quiet.stdout
    bad = bolly(*args, "--progress", "loud", cwd=tmp_path, env=gpu_env())
    assert_one_line_error(bad, 2, "unknown --progress 'loud' (auto, rich, plain, json or none)")


def test_canary_secrets_reach_only_their_stage_and_are_written_nowhere(
        media: dict[str, MediaCase], tmp_path: Path) -> None:
    from tests.tmdb_server import API_KEY, MOVIE_ID, tmdb_server

    hf_canary = "hf_canary_token_0e9b41d7"
    ray_tmp = Path(tempfile.mkdtemp(prefix="br-", dir="/tmp"))  # Ray's socket paths are short
    job_file = gpu_job(media["wav_only"], tmp_path, gpucopy={"device": "cpu"})
    try:
        with tmdb_server() as tmdb:
            job = json.loads(job_file.read_text())
            job["stages"].update(tmdb={"api_base": tmdb.url, "movie_id": MOVIE_ID,
                                       "cache_dir": str(tmp_path / "tmdb-cache"),
                                       "backoff_s": 0.01})
            job_file.write_text(json.dumps(job))
            done = bolly("run", job_file, "--only", "demux,tmdb,gpucopy,slowcopy",
                         "--progress", "json", cwd=tmp_path, env=gpu_env(
                             TMDB_API_KEY=API_KEY, HF_TOKEN=hf_canary, RAY_TMPDIR=str(ray_tmp)))
        assert done.returncode == 0, done.stderr
        assert tmdb.requests and tmdb.requests[0]["query"]["api_key"] == API_KEY  # it was used
        stages = read_manifest(job_dir(tmp_path))["stages"]
        assert stages["tmdb"]["status"] == "succeeded", stages["tmdb"]["error"]
        assert stages["gpucopy"]["metrics"]["secret_env_vars"] == 0  # an actor's environment
        assert stages["slowcopy"]["metrics"]["secret_env_vars"] == 0  # a task's environment
        written = [done.stdout, done.stderr] + [
            p.read_bytes().decode("utf-8", "replace")
            for folder in (tmp_path / "out", ray_tmp) for p in folder.rglob("*")
            if p.is_file() and not p.is_symlink()]
        for canary in (API_KEY, hf_canary):
            assert not [text for text in written if canary in text]
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
