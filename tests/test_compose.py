"""deploy/compose.yaml on the real Docker engine: a head, a GPU worker (logical GPU) and a CPU
worker, each a container with its own filesystem, token auth on, from the node image that
`bolly-ray images build --mode node` makes. A batch of three films prepared and run on the
head; placement, outputs beside an embedded run, worker filesystems, a GPU worker killed
mid-ASR, and `down`."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bolly_ray.engine.registry import default_registry
from bolly_ray.ops.synth import make_speech_wav
from bolly_ray.spec import ComputeKind
from tests.conftest import bolly
from tests.test_containers import docker_client as docker_client  # a fixture used here

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parent.parent
COMPOSE_FILE = REPO / "deploy" / "compose.yaml"
BASE = "bolly-ray/base-ffmpeg:bookworm"
LINES = {
    "monsoon": ["The monsoon came early to Bombay that year.", "Nobody had an umbrella."],
    "station": ["Meet me at the station at six.", "Bring the letters, all of them."],
    # long enough (two minutes) that a GPU worker can be killed while it transcribes; each
    # line its own (ten times one sentence gave Whisper windows whose compression ratio the
    # filter reads as a loop: on an AMD EPYC it removed every line, and mux had no cue)
    "saga": [
        "Chapter one. The family gathered in the old house in Lucknow for the wedding.",
        "Chapter two. Grandmother cooked rice and lentils while the children played cricket.",
        "Chapter three. Her father said the marriage would never happen in his lifetime.",
        "Chapter four. The musicians arrived late, and the drummer had forgotten his drum.",
        "Chapter five. Rain flooded the courtyard, so the guests danced on the wet roof.",
        "Chapter six. A letter from Delhi changed everything for the younger brother.",
        "Chapter seven. The train to Mumbai left at nine, and nobody came to say goodbye.",
        "Chapter eight. Years later the old temple bell still rang every evening at dusk.",
        "Chapter nine. She opened the window and heard the street singers below her.",
        "Chapter ten. In the end the whole town came to the wedding, and they sang all night.",
        "Chapter eleven. The cousins from London brought presents nobody knew how to use.",
        "Chapter twelve. A goat wandered into the kitchen and ate the bridegroom's turban.",
        "Chapter thirteen. The priest insisted on an auspicious hour just after midnight.",
        "Chapter fourteen. Uncle Ramesh told the same story about the war for the tenth time.",
        "Chapter fifteen. The lights failed twice, and the generator coughed black smoke.",
        "Chapter sixteen. Somebody's phone played a ringtone during the quietest prayer.",
        "Chapter seventeen. The bride's sister quietly fixed every broken thing with tape.",
        "Chapter eighteen. By morning the sweets were gone and the dogs were asleep outside.",
        "Chapter nineteen. They took one photograph with everybody in it, even the goat.",
        "Chapter twenty. Nobody in the family ever forgot the year of that long wedding.",
    ],
}
GPU_KIND = {name for name, s in default_registry().items() if s.spec.compute == ComputeKind.GPU}


def compose_command() -> list[str]:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    done = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    if done.returncode == 0:
        return ["docker", "compose"]
    if os.environ.get("BOLLY_RAY_REQUIRE_DOCKER") == "1":
        pytest.fail("neither docker-compose nor `docker compose` is installed")
    pytest.skip("neither docker-compose nor `docker compose` is installed")


class Cluster:
    """One compose project: its own name, token, library, output folder and ports."""

    def __init__(self, root: Path) -> None:
        self.project = f"bolly-ray-test-{uuid.uuid4().hex[:8]}"
        self.library, self.out = root / "library", root / "out"
        self.library.mkdir()
        self.out.mkdir()
        self.env = {**os.environ, "RAY_AUTH_TOKEN": secrets.token_hex(32),
                    "BOLLY_RAY_GPU_VARIANT": "",  # the CPU image, a logical GPU
                    "BOLLY_RAY_LIBRARY": str(self.library), "BOLLY_RAY_OUT": str(self.out),
                    "BOLLY_RAY_UID": str(os.getuid()), "BOLLY_RAY_GID": str(os.getgid()),
                    "BOLLY_RAY_DASHBOARD_PORT": "0"}

    def compose(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*compose_command(), "-p", self.project, "-f", str(COMPOSE_FILE),
                               *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout, check=False)

    def on_head(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return self.compose("exec", "-T", "head", *args, timeout=timeout)

    def container(self, service: str) -> str:
        done = self.compose("ps", "-q", service)
        return done.stdout.strip()

    def ip(self, service: str) -> str:
        done = subprocess.run(["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}"
                               "{{.IPAddress}}{{end}}", self.container(service)],
                              capture_output=True, text=True, check=True)
        return done.stdout.strip()

    def wait_for_nodes(self, count: int, seconds: float = 120) -> None:
        probe = ("import ray; ray.init(address='auto', logging_level='ERROR'); "
                 "print(sum(n['Alive'] for n in ray.nodes()))")
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            done = self.on_head("python", "-c", probe, timeout=60)
            if done.returncode == 0 and done.stdout.strip().splitlines()[-1] == str(count):
                return
            time.sleep(2)
        raise AssertionError(f"the cluster never had {count} live nodes")

    def leftovers(self) -> list[str]:
        label = f"label=com.docker.compose.project={self.project}"
        found = []
        for kind in ("container", "network", "volume"):
            listed = subprocess.run(["docker", kind, "ls", *(["-a"] if kind == "container"
                                                            else []), "-q", "--filter", label],
                                    capture_output=True, text=True, check=True)
            found += [f"{kind} {line}" for line in listed.stdout.split()]
        return found


@pytest.fixture(scope="module")
def node_image(docker_client: object, tmp_path_factory: pytest.TempPathFactory,
               image_prefix: str) -> str:
    done = bolly("images", "build", "--mode", "node", "--extra", "demo", "--base-image", BASE,
                 cwd=tmp_path_factory.mktemp("node-image"), timeout=900)
    assert done.returncode == 0, done.stderr
    tag = f"{image_prefix}node:0.1.0"
    listed = bolly("images", "list", "--json", cwd=tmp_path_factory.mktemp("list"))
    [row] = [r for r in json.loads(listed.stdout)["images"] if r["tag"] == tag]
    assert (row["stage"], row["cuda"]) == ("(node)", False) and row["size_mb"] > 500
    return tag


@pytest.fixture(scope="module")
def cluster(node_image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    compose_command()
    cluster = Cluster(tmp_path_factory.mktemp("compose"))  # its images: BOLLY_RAY_IMAGE_PREFIX
    for name, lines in LINES.items():
        make_film(cluster.library / f"{name}.mp4", lines)
    try:
        up = cluster.compose("up", "-d")
        assert up.returncode == 0, up.stderr
        cluster.wait_for_nodes(3)
        yield cluster
    finally:
        cluster.compose("down", "--volumes", "--remove-orphans")


def make_film(path: Path, lines: list[str]) -> None:
    wav = path.with_suffix(".wav")
    make_speech_wav(wav, lines, gap_s=0.6, lead_s=0.5, tail_s=0.5)
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
                    "color=c=black:s=320x180:r=10", "-i", str(wav), "-shortest", "-c:v",
                    "mpeg4", "-c:a", "aac", "-fflags", "+bitexact", "-map_metadata", "-1",
                    str(path)], check=True, timeout=120)
    wav.unlink()


def prepare_all(cluster: Cluster, out_root: str) -> list[str]:
    """Job files for every film, written by `bolly-ray prepare` on the head."""
    files = []
    for name in LINES:
        job_file = f"{out_root}/{name}.job.json"
        done = cluster.on_head("bolly-ray", "prepare", f"/library/{name}.mp4", "--out-root",
                               out_root, "--source-language", "en", "--target-language", "en",
                               "--set", "asr.model=tiny.en", "--set", "asr.beam_size=1",
                               "-o", job_file)
        assert done.returncode == 0, done.stderr
        files.append(job_file)
    return files


def run_batch(cluster: Cluster, files: list[str], *flags: str) -> dict:
    done = cluster.on_head("bolly-ray", "run", *files, "--json", *flags, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def manifests(cluster: Cluster, result: dict) -> dict[str, dict]:
    """job id -> manifest, read from the host folder the head writes /out into."""
    return {job["job_id"]: json.loads(
        (cluster.out / Path(job["job_dir"]).relative_to("/out") / "manifest.json").read_text())
        for job in result["jobs"]}


def outputs(manifest: dict) -> dict[str, str]:
    return {f"{stage}/{name}": artifact["sha256"]
            for stage, record in manifest["stages"].items()
            for name, artifact in (record.get("outputs") or {}).items()}


def test_a_batch_runs_across_the_nodes_like_an_embedded_run(cluster: Cluster) -> None:
    result = run_batch(cluster, prepare_all(cluster, "/out/cluster"), "--address", "auto")
    assert [job["status"] for job in result["jobs"]] == ["succeeded"] * 3
    head, gpu, cpu = (cluster.ip(s) for s in ("head", "gpu-worker", "cpu-worker"))
    ran = manifests(cluster, result)
    for manifest in ran.values():
        stages = {n: r for n, r in manifest["stages"].items() if r["status"] == "succeeded"}
        assert stages["demux"]["node_ip"] == head and stages["mux"]["node_ip"] == head
        assert {n for n in stages if n in GPU_KIND} >= {"asr"}
        assert {stages[n]["node_ip"] for n in stages if n in GPU_KIND} == {gpu}, stages
    cpu_nodes = {r["node_ip"] for m in ran.values() for n, r in m["stages"].items()
                 if r["status"] == "succeeded" and n not in GPU_KIND}
    assert len(cpu_nodes) > 1 and cpu_nodes <= {head, gpu, cpu}

    embedded = run_batch(cluster, prepare_all(cluster, "/out/embedded"))
    alone = manifests(cluster, embedded)
    for job_id, manifest in ran.items():
        assert outputs(manifest) == outputs(alone[job_id])

    for service in ("gpu-worker", "cpu-worker"):  # nothing of any job on a worker's disk
        changed = subprocess.run(["docker", "diff", cluster.container(service)],
                                 capture_output=True, text=True, check=True).stdout
        for job_id in ran:
            assert job_id not in changed, (service, changed)
        assert not [line for line in changed.splitlines()
                    if line.endswith((".srt", ".vtt", ".ass", ".wav", ".mp4", ".mkv"))]


def test_a_gpu_worker_killed_mid_asr_is_replaced_and_the_batch_succeeds(
        cluster: Cluster) -> None:
    saga_job = "/out/cluster/saga.job.json"  # prepared by the batch above
    batch = subprocess.Popen(
        [*compose_command(), "-p", cluster.project, "-f", str(COMPOSE_FILE), "exec", "-T",
         "head", "bolly-ray", "run", saga_job, "--json", "--address", "auto", "--only", "asr",
         "--force", "--set", "asr.beam_size=5"],  # a slower decode: time to kill its worker
        env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    saga = next(cluster.out.glob("cluster/*/*/*/*/saga-*/manifest.json"))
    deadline = time.monotonic() + 180
    while json.loads(saga.read_text())["stages"]["asr"]["status"] != "running":
        assert time.monotonic() < deadline and batch.poll() is None, "asr never ran"
        time.sleep(0.2)
    time.sleep(2)  # past the actor's model load (tiny.en: under a second); decoding two
    # minutes at beam 5 takes about 9 s (8.6 s on an AMD EPYC's two cores)
    assert batch.poll() is None and json.loads(saga.read_text())["stages"]["asr"]["status"] \
        == "running"
    subprocess.run(["docker", "kill", cluster.container("gpu-worker")], check=True,
                   capture_output=True)
    assert cluster.compose("up", "-d", "--no-deps", "--force-recreate",
                           "gpu-worker").returncode == 0
    _, stderr = batch.communicate(timeout=420)
    assert batch.returncode == 0, stderr[-3000:]
    record = json.loads(saga.read_text())["stages"]["asr"]
    assert record["status"] == "succeeded" and record["attempts"] >= 2, record
    assert record["node_ip"] == cluster.ip("gpu-worker")


def test_down_leaves_no_container_network_or_volume(cluster: Cluster) -> None:
    down = cluster.compose("down", "--volumes", "--remove-orphans")
    assert down.returncode == 0, down.stderr
    assert cluster.leftovers() == []
