"""CPU stages in their containers, through the real CLI and a real Docker engine: the same
outputs as native runs, hardened containers, retries after a killed container, orphans of a
crashed driver removed by the next run, and images without PyTorch or Ray."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import random
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import docker.errors
import pytest

from bolly_ray.core.job import load_job
from bolly_ray.core.wire import folder_id
from bolly_ray.engine.registry import default_registry
from bolly_ray.errors import UsageError
from bolly_ray.ops.synth import make_speech_wav
from bolly_ray.runtime.image_names import image_prefix, image_tag, resolve_images
from tests.conftest import BOLLY_RAY, bolly, read_manifest
from tests.tmdb_server import API_KEY, tmdb_server

pytestmark = pytest.mark.slow
BASE, FFMPEG_BASE = "bolly-ray/base:bookworm", "bolly-ray/base-ffmpeg:bookworm"
STAGES = ("demux", "tmdb", "glossary", "vad", "speakers", "filter", "ner", "lyrics",
          "subtitles", "mux")


@pytest.fixture(scope="module")
def docker_client() -> Iterator[object]:
    docker = pytest.importorskip("docker")
    try:
        client = docker.from_env()
        client.ping()
        for base in (BASE, FFMPEG_BASE):
            client.images.get(base)
    except Exception as err:  # no engine or no base image: CI requires them, laptops may not
        if os.environ.get("BOLLY_RAY_REQUIRE_DOCKER") == "1":
            raise
        pytest.skip(f"Docker engine or base images unavailable ({err.__class__.__name__}); "
                    "run scripts/ensure-docker and scripts/build-base-image")
    yield client


@pytest.fixture(scope="module")
def stage_images(docker_client: object, tmp_path_factory: pytest.TempPathFactory) -> dict:
    work = tmp_path_factory.mktemp("images")
    done = bolly("images", "build", "--base-image", BASE, "--ffmpeg-base-image", FFMPEG_BASE,
                 cwd=work, timeout=1200)  # ten images; minutes more on a busy machine
    assert done.returncode == 0, done.stderr
    return resolve_images(docker_client, STAGES)


def folder_label(job_file: Path) -> str:
    """The label of this job folder's containers: a suite beside this one on the same
    engine runs jobs with the same ids, in other folders."""
    job = load_job(job_file, default_registry().specs)
    return f"bolly-ray.job-folder={folder_id(job.job_dir())}"


def demo_job(root: Path) -> Path:
    done = bolly("demo", "--out", root, "--json", cwd=root.parent)
    assert done.returncode == 0, done.stderr
    return root / "demo.job.json"


def job_dir_of(job_file: Path) -> Path:
    return Path(json.loads(job_file.read_text())["out_root"]) / "2026"


def outputs(folder: Path) -> dict[str, str]:
    [manifest_path] = folder.rglob("manifest.json")
    manifest = json.loads(manifest_path.read_text())
    return {f"{stage}.{name}": out["sha256"] for stage, record in manifest["stages"].items()
            for name, out in record["outputs"].items()}


def test_images_hold_no_torch_and_no_ray(stage_images: dict, docker_client: object) -> None:
    registry = default_registry()
    for stage, image in stage_images.items():
        banned = ["torch", "ray"]
        if not any(r.startswith("spacy") for r in registry[stage].spec.image_requirements):
            banned.append("typer")  # bolly-ray's CLI stays out; spaCy's own CLI needs it
        check = ("import importlib.util as u, sys; "
                 f"sys.exit(any(u.find_spec(m) for m in {banned!r}))")
        output = docker_client.containers.run(  # type: ignore[attr-defined]
            image, ["-c", check], entrypoint="/opt/bolly-ray/bin/python", remove=True)
        assert output == b"", stage
        labels = docker_client.images.get(image).labels  # type: ignore[attr-defined]
        assert labels["bolly-ray.stage"] == stage


def test_native_and_docker_runs_publish_identical_outputs(stage_images: dict,
                                                          tmp_path: Path) -> None:
    # vad's image has only faster-whisper's Silero; natively the ml extra would run
    # silero-vad's (other weights, vad.model=auto): the same model on both sides
    same_silero = ("--set", "vad.model=faster-whisper")
    native = demo_job(tmp_path / "native")
    again = bolly("run", native, *same_silero, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    in_docker = demo_job(tmp_path / "docker")
    done = bolly("run", in_docker, "--cpu-stages", "docker", "--force", *same_silero,
                 cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert outputs(tmp_path / "native") == outputs(tmp_path / "docker")
    [manifest_path] = (tmp_path / "docker").rglob("manifest.json")
    records = json.loads(manifest_path.read_text())["stages"]
    for gpu_kind in ("asr", "diarize", "align"):  # GPU-kind stages: native, in this process
        record = records.pop(gpu_kind)
        assert (record["runner"], record["image"]) == ("local", None)
    for unavailable in ("tmdb", "translate"):  # no key, en -> en
        assert records.pop(unavailable)["status"] == "skipped"
    assert {r["runner"] for r in records.values()} == {"docker"}
    assert {s: r["image"] for s, r in records.items()} == {
        s: image for s, image in stage_images.items() if s != "tmdb"}
    del native


def test_stage_containers_are_hardened(stage_images: dict, docker_client: object,
                                       tmp_path: Path) -> None:
    job_file = demo_job(tmp_path / "demo")
    done = bolly("run", job_file, "--cpu-stages", "docker", "--only", "subtitles", "--force",
                 cwd=tmp_path, env={"BOLLY_RAY_KEEP_CONTAINERS": "1"})
    assert done.returncode == 0, done.stderr
    [container] = docker_client.containers.list(  # type: ignore[attr-defined]
        all=True, filters={"label": [folder_label(job_file), "bolly-ray.stage=subtitles"]})
    try:
        host = container.attrs["HostConfig"]
        assert container.attrs["Config"]["User"] not in ("", "0", "root", "0:0")
        assert host["ReadonlyRootfs"] is True
        assert host["NetworkMode"] == "none"
        assert host["CapDrop"] == ["ALL"]
        assert "no-new-privileges" in host["SecurityOpt"]
        assert host["Memory"] == 512 * 1024 * 1024 and host["PidsLimit"] == 256
        mounts = {m["Destination"]: m["RW"] for m in container.attrs["Mounts"]}
        assert mounts["/out"] is True
        assert all(rw is False for dest, rw in mounts.items() if dest != "/out")
    finally:
        container.remove(force=True)


def long_film(folder: Path) -> Path:
    """Twenty minutes of audio: long enough for a container to be caught mid-stage."""
    film = folder / "long.mkv"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                    "anoisesrc=d=1200:r=48000:a=0.05", "-c:a", "pcm_s16le", f"file:{film}"],
                   check=True)
    return film


def running_demux(client: object, job_file: Path, timeout: float = 60) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = client.containers.list(  # type: ignore[attr-defined]
            filters={"label": [folder_label(job_file), "bolly-ray.stage=demux"],
                     "status": "running"})
        if found:
            return found[0]
        time.sleep(0.05)
    raise AssertionError("the demux container never ran")


def long_job(tmp_path: Path, job_id: str) -> Path:
    job_file = tmp_path / "job.json"
    job_file.write_text(json.dumps({"id": job_id, "media": str(long_film(tmp_path)),
                                    "out_root": str(tmp_path / "out")}))
    return job_file


def test_a_killed_container_is_retried_and_the_job_succeeds(
        stage_images: dict, docker_client: object, tmp_path: Path) -> None:
    job_file = long_job(tmp_path, "killed")
    run = subprocess.Popen([str(BOLLY_RAY), "run", str(job_file), "--only", "demux",
                            "--cpu-stages", "docker"], cwd=tmp_path, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    running_demux(docker_client, job_file).kill()  # type: ignore[attr-defined]
    _, stderr = run.communicate(timeout=180)
    assert run.returncode == 0, stderr
    assert "its container was killed" in " ".join(stderr.split())
    [folder] = (tmp_path / "out").glob("*/*/*/*/killed")
    record = read_manifest(folder)["stages"]["demux"]
    assert (record["status"], record["attempts"], record["runner"]) == ("succeeded", 2, "docker")


@pytest.mark.parametrize("executor", ["local", "ray"])
def test_containers_orphaned_by_a_driver_crash_are_removed_by_the_next_run(
        executor: str, stage_images: dict, docker_client: object, tmp_path: Path) -> None:
    job_file = long_job(tmp_path, "orphan")
    env = {**os.environ, "BOLLY_RAY_EXECUTOR": executor}
    run = subprocess.Popen([str(BOLLY_RAY), "run", str(job_file), "--only", "demux",
                            "--cpu-stages", "docker"], cwd=tmp_path, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    orphan = running_demux(docker_client, job_file)
    os.kill(run.pid, signal.SIGKILL)
    run.wait()
    with contextlib.suppress(ProcessLookupError):  # an embedded Ray's helpers, if any
        os.killpg(run.pid, signal.SIGKILL)
    orphan.pause()  # keep it alive whatever its progress: it must be the rerun that removes it
    done = bolly("run", job_file, "--only", "demux", "--cpu-stages", "docker", cwd=tmp_path,
                 env={"BOLLY_RAY_EXECUTOR": executor})
    assert done.returncode == 0, done.stderr
    logged = " ".join(done.stderr.split())  # rich wraps log lines at the console's width
    assert "removed 1 container(s) an earlier run left behind" in logged
    left = docker_client.containers.list(  # type: ignore[attr-defined]
        all=True, filters={"label": folder_label(job_file)})
    assert left == []


def test_the_reaper_leaves_a_same_named_job_of_another_folder_alone(
        docker_client: object) -> None:
    """Two suites (or users) on one engine both run a job called demo: preflight must remove
    only its own folder's leftovers, never the other run's live containers."""
    from bolly_ray.runtime.containers import reap

    labels = {"bolly-ray": "stage", "bolly-ray.job": "demo", "bolly-ray.stage": "demux"}
    mine, theirs = (docker_client.containers.create(  # type: ignore[attr-defined]
        BASE, ["sleep", "60"], labels={**labels, "bolly-ray.job-folder": folder})
        for folder in ("f" * 16, "0" * 16))
    try:
        assert reap(docker_client, {"f" * 16}) == 1  # type: ignore[arg-type]
        with pytest.raises(docker.errors.NotFound):
            mine.reload()
        theirs.reload()  # still there
    finally:
        for container in (mine, theirs):
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)


def test_a_missing_image_is_named_with_the_command_that_builds_it(docker_client: object) -> None:
    with pytest.raises(UsageError, match=rf"no image for {image_tag('nosuchstage')}: run "
                       "`bolly-ray images build`"):
        resolve_images(docker_client, ["nosuchstage"])


def test_images_dry_run_lists_sizes_without_building(docker_client: object,
                                                     tmp_path: Path) -> None:
    before = {i.id for i in docker_client.images.list(all=True)}  # type: ignore[attr-defined]
    done = bolly("images", "build", "--mode", "native", "--dry-run", cwd=tmp_path,
                 env={"COLUMNS": "200"})
    assert done.returncode == 0, done.stderr
    for stage in STAGES:
        assert image_tag(stage) in done.stdout  # the table is the result: stdout
    assert "MB (estimate)" in done.stdout
    after = {i.id for i in docker_client.images.list(all=True)}  # type: ignore[attr-defined]
    assert after == before



def test_images_dry_run_in_full_mode_lists_gpu_stages_with_cuda(docker_client: object,
                                                                 tmp_path: Path) -> None:
    done = bolly("images", "build", "--mode", "full", "--dry-run", cwd=tmp_path,
                 env={"COLUMNS": "200"})
    assert done.returncode == 0, done.stderr
    prefix = image_prefix()
    rows = {line.split("│")[1].strip(): line for line in done.stdout.splitlines()
            if line.count("│") > 4 and prefix in line}
    gpu_stages = {"asr", "align", "diarize", "translate"}
    assert {tag.split(":")[0].removeprefix(prefix) for tag in rows} == set(STAGES) | gpu_stages
    for tag, line in rows.items():
        cuda = line.split("│")[4].strip()
        assert cuda == ("yes" if tag.split(":")[0].removeprefix(prefix) in gpu_stages
                        else ""), line


def test_a_rebuilt_image_replaces_the_old_one_and_leaves_no_intermediates(
        stage_images: dict, docker_client: object) -> None:
    from bolly_ray.ops.images import bolly_ray_wheel, build_image, plan_images, wheels_for

    [plan] = plan_images(default_registry(), "native", "glossary", BASE)
    cache = Path.home() / ".cache" / "bolly-ray" / "wheels"
    wheels = [bolly_ray_wheel(cache), *wheels_for(plan.requirements, cache)]
    old = stage_images["glossary"]
    try:  # another base gives another image under the same tag
        new, _ = build_image(docker_client, replace(plan, base_image=FFMPEG_BASE), wheels,
                             lambda _: None)
        assert new != old
        with pytest.raises(docker.errors.ImageNotFound):
            docker_client.images.get(old)  # type: ignore[attr-defined]
        ours = f"bolly-ray.prefix={image_prefix()}"  # not another suite's, building now
        for label in ("bolly-ray.stage", "bolly-ray.build-stage=install"):
            assert docker_client.images.list(  # type: ignore[attr-defined]
                filters={"dangling": True, "label": [label, ours]}) == []
    finally:
        restored, _ = build_image(docker_client, plan, wheels, lambda _: None)
        stage_images["glossary"] = restored


def bridge_gateway(client: object) -> str:
    """The host's address on Docker's bridge. Docker 20.10 may report only the subnet
    (`{"Subnet": "172.17.0.0/16"}`): the gateway is then the subnet's first address."""
    [config, *_] = client.networks.get("bridge").attrs["IPAM"]["Config"]  # type: ignore[attr-defined]
    if config.get("Gateway"):
        return str(config["Gateway"]).split("/")[0]
    return str(next(ipaddress.ip_network(config["Subnet"]).hosts()))


def test_the_tmdb_key_reaches_its_container_only_through_a_private_file(
        stage_images: dict, docker_client: object, tmp_path: Path) -> None:
    gateway = bridge_gateway(docker_client)
    with tmdb_server(bind="0.0.0.0", advertise=gateway) as tmdb:
        job_file = tmp_path / "job.json"
        media = tmp_path / "Om.Shanti.Om.2007.wav"
        make_speech_wav(media, ["Hello."])
        job_file.write_text(json.dumps({
            "id": "tmdbbox", "media": str(media), "out_root": str(tmp_path / "out"),
            "stages": {"tmdb": {"api_base": tmdb.url, "cache_dir": "/tmp/tmdb-cache"}}}))
        done = bolly("run", job_file, "--cpu-stages", "docker", "--only", "tmdb", cwd=tmp_path,
                     env={"BOLLY_RAY_KEEP_CONTAINERS": "1", "TMDB_API_KEY": API_KEY})
    assert done.returncode == 0, done.stderr
    [container] = docker_client.containers.list(  # type: ignore[attr-defined]
        all=True, filters={"label": [folder_label(job_file), "bolly-ray.stage=tmdb"]})
    try:
        assert API_KEY not in json.dumps(container.attrs)  # env, command, labels, mounts
        [secret] = [m for m in container.attrs["Mounts"]
                    if m["Destination"] == "/run/bolly-ray/secrets.json"]
        assert secret["RW"] is False and not Path(secret["Source"]).exists()  # removed after
        assert container.attrs["HostConfig"]["NetworkMode"] == "bridge"  # it needs TMDB
    finally:
        container.remove(force=True)
    [folder] = (tmp_path / "out").glob("*/*/*/*/tmdbbox")
    record = read_manifest(folder)["stages"]["tmdb"]
    assert (record["status"], record["runner"]) == ("succeeded", "docker"), record
    assert {r["query"].get("api_key") for r in tmdb.requests} == {API_KEY}
    assert API_KEY not in "\n".join(p.read_text(errors="replace") for p in folder.rglob("*")
                                    if p.is_file()) + done.stdout + done.stderr


def test_a_stage_over_its_memory_limit_is_reported_as_out_of_memory(
        stage_images: dict, docker_client: object, tmp_path: Path) -> None:
    glossary = tmp_path / "huge-glossary.tsv"  # 1.5 M names: far past glossary's 256 MB limit
    with glossary.open("w") as out:
        for n in range(1_500_000):
            out.write(f"Name{n}\tName{n}\tNaam{n}|Nam{n}\tan absurdly long film glossary\n")
    film = tmp_path / "film.wav"
    make_speech_wav(film, ["Hello."])
    job_file = tmp_path / "job.json"
    job_file.write_text(json.dumps({"id": "oom", "media": str(film),
                                    "out_root": str(tmp_path / "out"),
                                    "artifacts": {"film_glossary": str(glossary)}}))
    done = bolly("run", job_file, "--only", "glossary", "--cpu-stages", "docker", cwd=tmp_path,
                 timeout=300)
    assert done.returncode == 1
    message = "glossary: out of memory in its container (limit 256 MB)"
    assert message in " ".join(done.stderr.split())
    [folder] = (tmp_path / "out").glob("*/*/*/*/oom")
    record = read_manifest(folder)["stages"]["glossary"]
    assert (record["status"], record["error"], record["outputs"]) == ("failed", message, {})
    assert record["attempts"] == default_registry()["glossary"].spec.retry.max_attempts
    assert docker_client.containers.list(  # type: ignore[attr-defined]
        all=True, filters={"label": folder_label(job_file)}) == []


def test_stage_containers_killed_at_random_during_a_batch_change_no_output(
        stage_images: dict, docker_client: object, tmp_path: Path) -> None:
    demo = json.loads(demo_job(tmp_path / "demo").read_text())
    # greedy decoding only: CTranslate2's sampling for temperature fallback draws from
    # per-thread generators that a warm model never reseeds, so a batch's later jobs would
    # differ from a calm run whatever the containers do (see docs/RELIABILITY.md)
    demo["stages"]["asr"]["temperatures"] = [0.0]

    def batch(name: str) -> list[str]:
        files = []
        for n in range(2):
            job = demo | {"id": f"{name}{n}", "name": "demo",
                          "out_root": str(tmp_path / f"{name}{n}")}
            files.append(str(tmp_path / f"{name}{n}.json"))
            Path(files[-1]).write_text(json.dumps(job))
        return files

    calm = bolly("run", *batch("calm"), "--cpu-stages", "docker", cwd=tmp_path, timeout=600)
    assert calm.returncode == 0, calm.stderr
    chaos = batch("chaos")
    chaos_folders = {folder_label(Path(f)).split("=", 1)[1] for f in chaos}
    run = subprocess.Popen([str(BOLLY_RAY), "run", *chaos, "--cpu-stages", "docker"],
                           cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    rng, killed = random.Random(20261129), []
    while run.poll() is None and len(killed) < 4:  # bounded: within every stage's retry budget
        time.sleep(rng.uniform(0.3, 1.5))
        running = sorted(docker_client.containers.list(  # type: ignore[attr-defined]
            filters={"label": "bolly-ray.stage", "status": "running"}), key=lambda c: c.name)
        ours = [c for c in running if c.labels.get("bolly-ray.job-folder") in chaos_folders]
        if ours:
            victim = rng.choice(ours)
            with contextlib.suppress(Exception):  # it may have finished a moment ago
                victim.kill()
                killed.append(victim.labels["bolly-ray.stage"])
    _, stderr = run.communicate(timeout=600)
    assert run.returncode == 0, stderr
    assert killed, "no container was running to kill"
    for n in range(2):
        assert outputs(tmp_path / f"chaos{n}") == outputs(tmp_path / f"calm{n}")
    assert [c for c in docker_client.containers.list(  # type: ignore[attr-defined]
        all=True, filters={"label": "bolly-ray.stage"})
        if c.labels.get("bolly-ray.job-folder") in chaos_folders] == []
    print(f"killed containers of: {', '.join(killed)}")
