"""Linking speakers across a long film: diarize's packaged backend clustering all its
embeddings at once beside its two-stage clustering (chunks, then the chunks' clusters), on
the same embeddings, each in a process of its own: peak memory, time, speakers found and
how far the two partitions agree.

The embeddings are synthetic (a GE2E-sized 256 dimensions, `--speakers` voices with the
spread resemblyzer shows between windows of one voice), because no package ships hours of
real multi-speaker speech; what is measured is memory and time, which depend on the count
alone. The quality of the two-stage linking on real voices is tested on the nine
LibriSpeech speakers (tests/test_diarize_packaged.py).

Run: `.venv/bin/python bench/bench_clustering.py [--embeddings 16000] [--speakers 20]
[--spread 0.02]`
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.machine import machine

SPREAD = 0.02  # per dimension: same-voice cosine distances about 0.1, as resemblyzer's


def embeddings(count: int, speakers: int, spread: float) -> object:
    import numpy as np

    rng = np.random.default_rng(0)
    voices = rng.normal(size=(speakers, 256))
    voices /= np.linalg.norm(voices, axis=1, keepdims=True)
    who = rng.integers(0, speakers, size=count)
    return voices[who] + rng.normal(scale=spread, size=(count, 256)), who


def measure(count: int, speakers: int, chunk: int, spread: float) -> None:
    """In the child: cluster, print JSON with the peak RSS it added and the labels' stats."""
    import numpy as np

    from bolly_ray.stages.packaged_diarizer import cluster

    vectors, who = embeddings(count, speakers, spread)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    labels = cluster(np.asarray(vectors), 0.175, None, None, chunk=chunk)
    took = time.perf_counter() - started
    added_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    pairs = {(int(a), int(b)) for a, b in zip(who, labels, strict=True)}
    print(json.dumps({"seconds": took, "added_mb": added_mb, "speakers": len(set(labels)),
                      "pairs": len(pairs)}))


def run(count: int, speakers: int, chunk: int, spread: float) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", str(chunk), "--embeddings",
                           str(count), "--speakers", str(speakers), "--spread", str(spread)],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embeddings", type=int, default=16000)
    parser.add_argument("--speakers", type=int, default=20)
    parser.add_argument("--spread", type=float, default=SPREAD, help="noise per dimension "
                        "(0.035: same-voice distances 0.24, above the threshold: a worst case)")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        measure(args.embeddings, args.speakers, args.child, args.spread)
        return 0
    from bolly_ray.stages.packaged_diarizer import CHUNK

    print(f"machine: {machine()}")
    print(f"{args.embeddings} embeddings of {args.speakers} voices (about "
          f"{args.embeddings / 1.5 / 3600:.1f} h of dense dialogue)")
    flat = run(args.embeddings, args.speakers, args.embeddings + 1, args.spread)
    staged = run(args.embeddings, args.speakers, CHUNK, args.spread)
    for name, result in (("all at once", flat), (f"two stages ({CHUNK})", staged)):
        print(f"  {name:20} peak +{result['added_mb']:7.0f} MB  {result['seconds']:6.1f} s  "
              f"speakers {result['speakers']}  (voice, speaker) pairs {result['pairs']}")
    print(f"  memory ratio {staged['added_mb'] / max(flat['added_mb'], 1):.3f}, "
          f"time ratio {staged['seconds'] / flat['seconds']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
