"""The compose cluster beside an embedded Ray on the same batch, in one run: node image
size, how long `up` takes until all three nodes are live, and the batch's wall time through
the cluster (`--address auto`, stages spread over three containers) and embedded (the same
jobs in the head container, one Ray on one node), hence the cluster's overhead per job.

Both runs happen in the same head container, from the same node image, on the same films
(tests/test_compose.py's three: two short, one of about a minute), so the difference is
what Ray across containers costs: actors and tasks on other nodes, artifacts through the
object store. The node image is built first (or tagged, when its recipe exists).

Run: `PYTHONPATH=. .venv/bin/python bench/bench_compose.py [--base-image IMG]`
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.machine import machine
from tests.test_compose import LINES, Cluster, make_film, prepare_all

REPO = Path(__file__).resolve().parent.parent


def node_image(base: str) -> tuple[str, float]:
    from bolly_ray.ops.node_image import node_tag

    subprocess.run([str(REPO / ".venv" / "bin" / "bolly-ray"), "images", "build", "--mode",
                    "node", "--extra", "demo", "--base-image", base], check=True)
    size = subprocess.run(["docker", "image", "inspect", "-f", "{{.Size}}", node_tag()],
                          capture_output=True, text=True, check=True).stdout
    return node_tag(), int(size) / 1e6


def timed_batch(cluster: Cluster, files: list[str], *flags: str) -> float:
    started = time.monotonic()
    done = cluster.on_head("bolly-ray", "run", *files, "--json", *flags, timeout=900)
    if done.returncode != 0:
        raise SystemExit(f"batch failed: {done.stderr[-2000:]}")
    statuses = [job["status"] for job in json.loads(done.stdout)["jobs"]]
    assert statuses == ["succeeded"] * len(files), statuses
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-image", default="bolly-ray/base-ffmpeg:bookworm")
    args = parser.parse_args()
    tag, size_mb = node_image(args.base_image)
    with tempfile.TemporaryDirectory(prefix="bench-compose-") as tmp:
        cluster = Cluster(Path(tmp))
        for name, lines in LINES.items():
            make_film(cluster.library / f"{name}.mp4", lines)
        try:
            started = time.monotonic()
            assert cluster.compose("up", "-d").returncode == 0
            cluster.wait_for_nodes(3)
            up_s = time.monotonic() - started
            cluster_s = timed_batch(cluster, prepare_all(cluster, "/out/cluster"),
                                    "--address", "auto")
            embedded_s = timed_batch(cluster, prepare_all(cluster, "/out/embedded"))
        finally:
            cluster.compose("down", "--volumes", "--remove-orphans")
    jobs = len(LINES)
    print(json.dumps({"machine": machine(), "node_image": tag, "node_image_mb": round(size_mb),
                      "up_s": round(up_s, 1), "jobs": jobs, "cluster_s": round(cluster_s, 1),
                      "embedded_s": round(embedded_s, 1),
                      "overhead_per_job_s": round((cluster_s - embedded_s) / jobs, 1),
                      "ratio": round(cluster_s / embedded_s, 2)}, indent=2))


if __name__ == "__main__":
    main()
