"""Subtitles written next to the film, named the way media servers look for them.

Jellyfin, Plex, Emby and Kodi find `Film.hi.srt`, `Film.hi-Latn.srt` and `Film.en.srt` beside
`Film.mkv`. Each file is written atomically (a half-written subtitle is never seen), and
a film's existing subtitles of another origin are never overwritten: only files this
service wrote before (marked by a sidecar list) are replaced.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from bolly_ray.core.files import write_atomic

log = logging.getLogger(__name__)

DELIVERED = ".bolly-ray-subtitles.json"
"""Beside the films: which subtitle files this service wrote, so it may replace them."""
FORMATS = ("srt",)


def sidecar_names(film: Path, job_dir: Path) -> dict[Path, Path]:
    """Each subtitle of the job -> where it goes beside the film (`<stem>.<lang>.<ext>`)."""
    found = {}
    for path in sorted((job_dir / "subtitles").glob("*.*.*")):
        _, language, extension = path.name.rsplit(".", 2)
        if extension in FORMATS:
            found[path] = film.with_name(f"{film.stem}.{language}.{extension}")
    return found


def deliver(film: Path, job_dir: Path) -> list[Path]:
    """Copy the job's subtitles beside the film; the paths written."""
    ours = _delivered(film.parent)
    written = []
    for source, target in sidecar_names(film, job_dir).items():
        if target.exists() and target.name not in ours:
            log.warning("%s exists and was not written by bolly-ray: left as it is", target)
            continue
        write_atomic(target, source.read_text(encoding="utf-8"))
        written.append(target)
    if written:
        names = sorted(ours | {p.name for p in written})
        write_atomic(film.parent / DELIVERED, json.dumps(names, indent=1) + "\n")
    return written


def has_subtitles(film: Path, language: str) -> bool:
    return film.with_name(f"{film.stem}.{language}.srt").exists()


def _delivered(folder: Path) -> set[str]:
    try:
        return set(json.loads((folder / DELIVERED).read_text(encoding="utf-8")))
    except (FileNotFoundError, ValueError):
        return set()
