"""Speech regions: stretches of audio, (start, end) in seconds, as the vad stage writes them
(speech.json) and every stage that decodes or labels only speech reads them.
"""

from __future__ import annotations

import json
from pathlib import Path

Region = tuple[float, float]
"""A stretch of audio, (start, end) in seconds."""


def read_speech(path: Path | None) -> list[Region] | None:
    """The regions this stage wrote to `path` (seconds), or None when there is no file."""
    if path is None:
        return None
    return [(r["start"], r["end"]) for r in json.loads(path.read_text())["segments"]]


def intersect(first: list[Region], second: list[Region]) -> list[Region]:
    """The stretches both region lists cover (both sorted, neither overlapping itself)."""
    out, i, j = [], 0, 0
    while i < len(first) and j < len(second):
        start, end = max(first[i][0], second[j][0]), min(first[i][1], second[j][1])
        if end > start:
            out.append((start, end))
        if first[i][1] < second[j][1]:
            i += 1
        else:
            j += 1
    return out
