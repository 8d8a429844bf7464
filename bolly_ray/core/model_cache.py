"""Where a stage's model is read from on this machine: its own folder, or the hub caches.

A stage container is given these folders read-only at the same paths, with the same
HF_HUB_CACHE and TORCH_HOME, so a model a native run finds is found inside it too, and
nothing is downloaded there (containers have no network).
"""

from __future__ import annotations

import os
from pathlib import Path


def hub_cache() -> Path:
    """Hugging Face's hub cache (HF_HUB_CACHE, else under HF_HOME)."""
    from huggingface_hub.constants import HF_HUB_CACHE

    return Path(HF_HUB_CACHE)


def torch_home() -> Path:
    """torch.hub's folder, found the way torch finds it, without importing torch."""
    if os.environ.get("TORCH_HOME"):
        return Path(os.environ["TORCH_HOME"])
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "torch"


def folders_for(model: str | None, *caches: Path) -> list[Path]:
    """A model setting that names a folder: that folder; a hub name (or none): the caches
    that exist here."""
    path = Path(model).expanduser() if model else None
    if path is not None and path.is_dir():
        return [path.resolve()]
    return [cache.resolve() for cache in caches if cache.is_dir()]


def cache_environment() -> dict[str, str]:
    """The cache locations as environment variables, for a process that must see ours."""
    return {"HF_HUB_CACHE": str(hub_cache().resolve()), "TORCH_HOME": str(torch_home().resolve())}
