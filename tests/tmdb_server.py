"""A real local HTTP server answering like TMDB's v3 API (search, details with credits,
401, 404, 429, 500), for the tmdb stage's tests. Responses follow TMDB's documented shapes;
the film is Om Shanti Om (2007). Every request is recorded, credentials included, so tests
can check what was sent."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

API_KEY = "canary-tmdb-key-7f3a9c"
READ_TOKEN = "canary-tmdb-token-51d2e8"
MOVIE_ID = 8079
SEARCH = {"page": 1, "total_results": 1, "total_pages": 1, "results": [{
    "id": MOVIE_ID, "title": "Om Shanti Om", "original_title": "ओम शांति ओम",
    "original_language": "hi", "release_date": "2007-11-09", "popularity": 12.3}]}
DETAILS = {
    "id": MOVIE_ID, "title": "Om Shanti Om", "original_title": "ओम शांति ओम",
    "original_language": "hi", "release_date": "2007-11-09", "runtime": 162,
    "credits": {
        "cast": [
            {"id": 35742, "name": "Shah Rukh Khan", "character": "Om Prakash Makhija / Om Kapoor",
             "order": 0},
            {"id": 53377, "name": "Deepika Padukone", "character": "Shantipriya / Sandhya",
             "order": 1},
            {"id": 52763, "name": "Arjun Rampal", "character": "Mukesh Mehra", "order": 2},
            {"id": 85881, "name": "Shreyas Talpade", "character": "Pappu Master", "order": 3},
            {"id": 86014, "name": "Kirron Kher", "character": "Bela Makhija", "order": 4}],
        "crew": [{"id": 86010, "name": "Farah Khan", "job": "Director"}]}}


@dataclass
class FakeTmdb:
    url: str
    requests: list[dict] = field(default_factory=list)
    failures: list[int] = field(default_factory=list)
    """Status codes to answer with, in order, before answering normally."""


@contextmanager
def tmdb_server(bind: str = "127.0.0.1", advertise: str | None = None) -> Iterator[FakeTmdb]:
    """The server on `bind`; its URL names `advertise` (an address a container can reach)."""
    state = FakeTmdb(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlparse(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            state.requests.append({"path": url.path, "query": query,
                                   "authorization": self.headers.get("Authorization")})
            if state.failures:
                code = state.failures.pop(0)
                extra = {"Retry-After": "0"} if code == 429 else {}
                return self._send(code, {"status_code": 25 if code == 429 else 11,
                                         "status_message": "failure"}, extra)
            authorised = (query.get("api_key") == API_KEY
                          or self.headers.get("Authorization") == f"Bearer {READ_TOKEN}")
            if not authorised:
                return self._send(401, {"status_code": 7,
                                        "status_message": "Invalid API key"})
            if url.path == "/3/search/movie":
                found = "om shanti om" in query.get("query", "").lower()
                return self._send(200, SEARCH if found else {"page": 1, "results": []})
            if url.path == f"/3/movie/{MOVIE_ID}":
                return self._send(200, DETAILS)
            return self._send(404, {"status_code": 34, "status_message": "not found"})

        def _send(self, code: int, body: dict, headers: dict | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer((bind, 0), Handler)
    state.url = f"http://{advertise or bind}:{server.server_address[1]}/3"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
