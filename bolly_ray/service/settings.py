"""How `bolly-ray serve` runs, validated once when it starts.

The port defaults to 9000, the port Bazarr's Whisper provider and whisper-asr-webservice
use. A service reachable from other machines needs a bearer token (`BOLLY_RAY_API_TOKEN`):
without one it binds to loopback only. Paths a client names (a film to subtitle) must lie
under an allowed root; watch folders are allowed roots of their own.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from bolly_ray.core.job import ExecutorKind

TOKEN_ENV = "BOLLY_RAY_API_TOKEN"
LOOPBACK_NAMES = {"localhost"}


class ServiceSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=9000, ge=0, le=65535)
    address: str | None = None
    """A Ray cluster to join; none: an embedded Ray on this machine."""
    executor: ExecutorKind = ExecutorKind.RAY
    state_dir: Path = Path("bolly-ray-service")
    """The queue database, stored uploads and job folders."""
    watch: tuple[Path, ...] = ()
    roots: tuple[Path, ...] = ()
    token: SecretStr | None = None
    max_active: int = Field(default=32, gt=0)
    """Jobs handed to the scheduler at once; the rest wait in the queue."""
    max_upload_mb: int = Field(default=4096, gt=0)
    request_timeout_s: float = Field(default=6 * 3600.0, gt=0)
    """How long `/asr` waits for its job before answering 504 (the job goes on; asking again
    joins it)."""
    source_language: str = "hi"
    """The language of films from watch folders, webhooks and the jobs API that name none
    (an `/asr` request without `language` has Whisper identify it, as the protocol says)."""
    overrides: tuple[str, ...] = ()
    """`STAGE.KEY=VALUE` settings for every job the service runs."""
    offline: bool = False
    path_map: tuple[tuple[str, str], ...] = ()
    """(media server's prefix, this machine's prefix) pairs: a webhook's path as the media
    server sees it (`/media/films/...` in its container) becomes the path here."""
    jellyfin_url: str | None = None
    """Jellyfin's address, to find the file of an item its webhook names (JELLYFIN_TOKEN)."""
    plex_url: str | None = None
    """Plex's address, to find the file of an item its webhook names (with PLEX_TOKEN)."""

    @model_validator(mode="after")
    def _token_off_loopback(self) -> ServiceSettings:
        if self.token is None and not is_loopback(self.host):
            raise ValueError(f"serving on {self.host} needs a bearer token: set {TOKEN_ENV} "
                             "(or bind to 127.0.0.1)")
        return self

    def local_path(self, path: str) -> str:
        """A media server's path as this machine sees it, through the first matching map."""
        for theirs, ours in self.path_map:
            if path == theirs or path.startswith(theirs.rstrip("/") + "/"):
                return ours.rstrip("/") + path[len(theirs.rstrip("/")):]
        return path

    @property
    def allowed_roots(self) -> tuple[Path, ...]:
        return tuple(p.resolve() for p in (*self.roots, *self.watch))

    @property
    def jobs_root(self) -> Path:
        return self.state_dir / "jobs"

    @property
    def uploads(self) -> Path:
        return self.state_dir / "uploads"

    @property
    def database(self) -> Path:
        return self.state_dir / "queue.db"

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def token_from_env() -> SecretStr | None:
    value = os.environ.get(TOKEN_ENV, "").strip()
    return SecretStr(value) if value else None
