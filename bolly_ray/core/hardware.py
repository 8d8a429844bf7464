"""What this machine has (CPU, memory, GPUs) and what it should run, cached for an hour.

GPUs are read through PyTorch when it is installed, else through `nvidia-smi` (the driver's
own tool); no GPU is reported as an empty list, never as an error. From the largest GPU the
profile recommends the Whisper model, compute type and batch size that fit (large-v3 in
float16 from 6 GB of VRAM, medium from 4 GB, else base; int8 on CPU). The profile is cached
in `<out_root>/hardware_cache.json` for an hour; a corrupt or foreign cache is ignored. A run
fits a job's `auto` settings to these recommendations (bolly_ray/core/fitting.py).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import socket
import subprocess
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from bolly_ray.core.modules import installed

log = logging.getLogger(__name__)

CACHE_NAME = "hardware_cache.json"
CACHE_TTL_S = 3600.0


@dataclass(frozen=True)
class GpuInfo:
    name: str
    vram_mb: int
    compute_capability: str
    driver: str


@dataclass(frozen=True)
class HardwareProfile:
    host: str
    cpu_model: str
    cpus: int
    ram_mb: int
    gpus: list[GpuInfo] = field(default_factory=list)
    detected_at: float = 0.0

    def recommendation(self) -> dict[str, object]:
        """ASR and diarization settings that fit this machine's largest GPU, or its CPU.

        `max_speakers` bounds diarization's clustering, whose time and memory grow with it.
        """
        if not self.gpus:
            return {"device": "cpu", "backend": "faster-whisper", "model": "base",
                    "compute_type": "int8", "batch_size": 1, "max_speakers": 8}
        vram = max(g.vram_mb for g in self.gpus)
        backend = "whisperx" if installed("whisperx") else "faster-whisper"
        if vram >= 6 * 1024:
            return {"device": "cuda", "backend": backend, "model": "large-v3",
                    "compute_type": "float16", "batch_size": 16 if vram >= 16 * 1024 else 8,
                    "max_speakers": 20}
        model = "medium" if vram >= 4 * 1024 else "base"
        return {"device": "cuda", "backend": backend, "model": model,
                "compute_type": "float16", "batch_size": 4, "max_speakers": 12}

    def recommendation_for(self, device: str) -> dict[str, object]:
        """The recommendation for running on `device`: on cpu, as if there were no GPU."""
        return (self if device == "cuda" else replace(self, gpus=[])).recommendation()

    def to_json(self) -> dict[str, object]:
        return asdict(self) | {"recommendation": self.recommendation()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> HardwareProfile:
        """The profile `to_json` wrote (its recommendation is computed again, not read)."""
        fields = {k: v for k, v in data.items() if k != "recommendation"}
        return cls(**{**fields, "gpus": [GpuInfo(**g) for g in fields["gpus"]]})


def detect_gpus() -> int:
    return len(_gpus())


def local_gpus() -> list[str] | None:
    """The GPUs this process may hand to a container: CUDA_VISIBLE_DEVICES when it is set
    (ids or UUIDs), else None (every GPU of the machine)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return None
    return [device.strip() for device in visible.split(",") if device.strip()]


def detect_profile() -> HardwareProfile:
    return HardwareProfile(host=socket.gethostname(), cpu_model=_cpu_model(),
                           cpus=os.cpu_count() or 1, ram_mb=_ram_mb(), gpus=_gpus(),
                           detected_at=time.time())


def cached_profile(out_root: Path, refresh: bool = False) -> HardwareProfile:
    """The profile from the cache when it is this host's and under an hour old."""
    cache = out_root / CACHE_NAME
    if not refresh:
        profile = _read_cache(cache)
        if profile is not None:
            return profile
    profile = detect_profile()
    from bolly_ray.core.files import write_atomic

    write_atomic(cache, json.dumps(profile.to_json(), indent=2) + "\n")
    return profile


def profile_here(out_root: Path) -> HardwareProfile:
    """This machine's profile, from the cache when it is fresh; a new detection is cached
    only where `out_root` already exists, so a run whose preflight fails writes nothing."""
    if out_root.is_dir():
        return cached_profile(out_root)
    return _read_cache(out_root / CACHE_NAME) or detect_profile()


def _read_cache(cache: Path) -> HardwareProfile | None:
    try:
        profile = HardwareProfile.from_json(json.loads(cache.read_text()))
    except FileNotFoundError:
        return None
    except (ValueError, TypeError, KeyError, OSError) as err:
        log.warning("ignoring the hardware cache %s (%s)", cache, type(err).__name__)
        return None
    age = time.time() - profile.detected_at
    fresh = 0 <= age < CACHE_TTL_S  # a time in the future (clock moved back) is not fresh
    return profile if fresh and profile.host == socket.gethostname() else None


def _gpus() -> list[GpuInfo]:
    if installed("torch"):
        import torch

        if torch.cuda.is_available():
            return [_torch_gpu(torch, i) for i in range(torch.cuda.device_count())]
    return _smi_gpus()


def _torch_gpu(torch: object, index: int) -> GpuInfo:
    props = torch.cuda.get_device_properties(index)  # type: ignore[attr-defined]
    return GpuInfo(props.name, props.total_memory // (1024 * 1024),
                   f"{props.major}.{props.minor}", str(torch.version.cuda))  # type: ignore[attr-defined]


def _smi_gpus() -> list[GpuInfo]:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    query = ["--query-gpu=name,memory.total,compute_cap,driver_version",
             "--format=csv,noheader,nounits"]
    try:
        listing = subprocess.run([smi, *query], capture_output=True, text=True, timeout=10,
                                 check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = []
    for line in listing.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 4 and parts[1].isdigit():
            gpus.append(GpuInfo(parts[0], int(parts[1]), parts[2], parts[3]))
    return gpus


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_mb() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024)
    except (ValueError, OSError):
        return 0
