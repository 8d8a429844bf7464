"""Watch folders: films that appear in them get subtitles beside them.

Every few seconds each folder is listed (recursively, hidden files and folders skipped).
A film is taken once it has stopped changing: the same size and modification time in two
listings at least `settle_s` apart, so a film still being copied in is left alone. A film
that already has subtitles in the source language beside it is skipped; one whose identical
job has run before gets that job's subtitles without a run.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from bolly_ray.errors import BollyRayError
from bolly_ray.service.context import Service
from bolly_ray.service.delivery import has_subtitles

log = logging.getLogger(__name__)

FILM_SUFFIXES = frozenset({".mkv", ".mp4", ".m4v", ".avi", ".mov", ".webm", ".ts", ".m2ts",
                           ".wmv", ".mpg", ".mpeg", ".flv"})
Seen = tuple[int, int]
"""(size, mtime in ns)."""


class WatchFolders:
    def __init__(self, service: Service, folders: tuple[Path, ...], interval_s: float = 5.0,
                 settle_s: float = 2.0) -> None:
        self.service, self.folders = service, folders
        self.interval_s, self.settle_s = interval_s, settle_s
        self._seen: dict[Path, tuple[Seen, float]] = {}
        self._taken: dict[Path, Seen] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bolly-ray-watch", daemon=True)

    def start(self) -> None:
        if self.folders:
            log.info("watching %s", ", ".join(map(str, self.folders)))
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.scan()
            except Exception:  # a bad listing must not end the watch
                log.exception("watch folders: a scan failed")
            self._stop.wait(self.interval_s)

    def scan(self) -> list[Path]:
        """One listing; the films taken in it."""
        now = time.monotonic()
        taken = []
        for film in self._films():
            seen = self._stat(film)
            if seen is None or self._taken.get(film) == seen:
                continue
            before = self._seen.get(film)
            if before is None or before[0] != seen:
                self._seen[film] = (seen, now)  # new or still changing: look again later
                continue
            if now - before[1] < self.settle_s:
                continue
            self._taken[film] = seen
            if self._take(film):
                taken.append(film)
        return taken

    def _films(self) -> list[Path]:
        found = []
        for folder in self.folders:
            for path in sorted(folder.rglob("*")):
                parts = path.relative_to(folder).parts
                if (path.suffix.lower() in FILM_SUFFIXES and path.is_file()
                        and not any(p.startswith(".") for p in parts)):
                    found.append(path)
        return found

    @staticmethod
    def _stat(path: Path) -> Seen | None:
        try:
            stat = path.stat()
        except OSError:
            return None
        return stat.st_size, stat.st_mtime_ns

    def _take(self, film: Path) -> bool:
        if has_subtitles(film, self.service.settings.source_language):
            log.info("%s has subtitles beside it already: skipped", film.name)
            return False
        try:
            row, fresh = self.service.subtitle_film(film)
        except BollyRayError as err:
            log.warning("%s: not taken: %s", film, err)
            return False
        log.info("%s: job %s %s", film.name, row.id, "queued" if fresh else row.status.value)
        return True
