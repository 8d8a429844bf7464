"""A small client for The Movie Database's v3 API: search, details with credits, disk cache.

Authentication is a v4 read token (sent as a Bearer header) or a v3 API key (a query
parameter, as TMDB requires). Neither is ever part of a cache file name, a cache file or an
error message: errors name the status or the exception type only, because `requests` puts
the full URL, key included, in its exception texts. 429 answers are retried after their
Retry-After, 5xx answers and connection errors with exponential backoff; 401 and 404 fail at
once. Responses are cached on disk by path and parameters (without credentials).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from bolly_ray.core.secrets import Secrets

MAX_RETRY_AFTER_S = 30.0


class TmdbError(Exception):
    """TMDB answered, and the answer means giving up (bad credentials, not found)."""


class TmdbUnavailable(Exception):
    """TMDB could not be reached, or kept failing, after every retry."""


class TmdbClient:
    def __init__(self, base_url: str, secrets: Secrets, cache_dir: Path | None,
                 cache_ttl_s: float, max_attempts: int = 4, backoff_s: float = 1.0,
                 timeout_s: float = 10.0, sleep: Callable[[float], None] = time.sleep) -> None:
        if secrets.tmdb_read_token is None and secrets.tmdb_api_key is None:
            raise TmdbError("no TMDB_READ_TOKEN or TMDB_API_KEY in the environment")
        self.base_url = base_url.rstrip("/")
        self.secrets = secrets
        self.cache_dir = cache_dir
        self.cache_ttl_s = cache_ttl_s
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self.sleep = sleep
        import requests  # imported here: every stage image loads this module

        self.session = requests.Session()
        self.network_errors = (requests.RequestException,)
        self.requests_made = 0

    def get(self, path: str, params: Mapping[str, Any]) -> dict[str, Any]:
        cached = self._cached(path, params)
        if cached is not None:
            return cached
        data = self._fetch(path, params)
        self._store(path, params, data)
        return data

    def _fetch(self, path: str, params: Mapping[str, Any]) -> dict[str, Any]:
        headers, query = {"Accept": "application/json"}, dict(params)
        if self.secrets.tmdb_read_token is not None:
            headers["Authorization"] = f"Bearer {self.secrets.tmdb_read_token.get_secret_value()}"
        else:
            assert self.secrets.tmdb_api_key is not None
            query["api_key"] = self.secrets.tmdb_api_key.get_secret_value()
        problem = "no attempt made"
        for attempt in range(self.max_attempts):
            self.requests_made += 1
            try:
                answer = self.session.get(f"{self.base_url}{path}", params=query,
                                          headers=headers, timeout=self.timeout_s)
            except self.network_errors as err:  # its text holds the URL: not shown
                problem = type(err).__name__
                self._pause(attempt, None)
                continue
            if answer.status_code == 200:
                try:
                    return dict(answer.json())
                except ValueError:
                    problem = "a reply that is not JSON"
            elif answer.status_code in (401, 403):
                raise TmdbError(f"TMDB refused the credentials (HTTP {answer.status_code})")
            elif answer.status_code == 404:
                raise TmdbError(f"TMDB has no {path} (HTTP 404)")
            else:
                problem = f"HTTP {answer.status_code}"
            self._pause(attempt, answer.headers.get("Retry-After")
                        if answer.status_code == 429 else None)
        raise TmdbUnavailable(f"TMDB unavailable after {self.max_attempts} attempts "
                              f"({problem})")

    def _pause(self, attempt: int, retry_after: str | None) -> None:
        if attempt + 1 >= self.max_attempts:
            return
        try:
            wait = float(retry_after) if retry_after else self.backoff_s * 2 ** attempt
        except ValueError:
            wait = self.backoff_s * 2 ** attempt
        self.sleep(min(max(wait, 0.0), MAX_RETRY_AFTER_S))

    def _cache_file(self, path: str, params: Mapping[str, Any]) -> Path | None:
        if self.cache_dir is None:
            return None
        key = json.dumps({"base": self.base_url, "path": path, "params": dict(params)},
                         sort_keys=True)
        return self.cache_dir / f"{hashlib.sha256(key.encode()).hexdigest()}.json"

    def _cached(self, path: str, params: Mapping[str, Any]) -> dict[str, Any] | None:
        file = self._cache_file(path, params)
        try:
            if file is None or time.time() - file.stat().st_mtime > self.cache_ttl_s:
                return None
            return dict(json.loads(file.read_text(encoding="utf-8")))
        except (OSError, ValueError):  # absent, unreadable or corrupt: ask TMDB again
            return None

    def _store(self, path: str, params: Mapping[str, Any], data: dict[str, Any]) -> None:
        file = self._cache_file(path, params)
        if file is None:
            return
        try:
            file.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile("w", dir=file.parent, delete=False,
                                             encoding="utf-8", suffix=".tmp") as out:
                json.dump(data, out)
            os.replace(out.name, file)
        except OSError:  # a read-only cache (a container) only costs a refetch next time
            return
