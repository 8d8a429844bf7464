"""The job: one film to subtitle, validated once at the boundary.

`JobBase` holds what every job has; `job_model(specs)` adds a `stages` section with one
field per registered stage, typed by that stage's settings model, so a job file is checked
field by field (unknown keys are errors) and `bolly-ray schema` shows every setting.
Relative paths in a job file are relative to the file. Secrets are never part of a job:
they come from the environment (see `bolly_ray.core.secrets`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import getpass
import glob
import json
import re
from collections.abc import Iterable, Mapping
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
)

from bolly_ray.core.languages import canonical_tag
from bolly_ray.core.roots import check_paths
from bolly_ray.errors import UsageError
from bolly_ray.spec import StageSpec

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
LANGUAGE_PATTERN = r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$"
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


def _name(value: str) -> str:
    """A name that becomes a folder or file name: no separators, no `..`, no leading `-`."""
    if not re.match(NAME_PATTERN, value):
        raise ValueError(f"{value!r} is not a usable name: 1-128 letters, digits, '.', '_' or "
                         "'-', starting with a letter or digit")
    return value


def _path(value: Path) -> Path:
    if CONTROL_CHARACTERS.search(str(value)):
        raise ValueError(f"{str(value)!r}: control characters (such as NUL or a newline) are "
                         "not allowed in paths")
    return value


Name = Annotated[str, AfterValidator(_name), Field(json_schema_extra={"pattern": NAME_PATTERN})]
SafePath = Annotated[Path, AfterValidator(_path)]


class ExecutorKind(StrEnum):
    """What drives the stages: a Ray cluster, or this process alone."""

    RAY = "ray"
    LOCAL = "local"


class RunnerKind(StrEnum):
    """What an attempt of a stage runs in: the worker itself, or a stage container."""

    NATIVE = "native"
    DOCKER = "docker"


class ExecutionSettings(BaseModel):
    """How the job runs."""

    model_config = ConfigDict(extra="forbid")

    executor: ExecutorKind = Field(
        default=ExecutorKind.RAY,
        description="ray: a Ray cluster (embedded when no address is given); "
        "local: every stage in this process, one after another")
    cpu_stages: RunnerKind = Field(
        default=RunnerKind.NATIVE,
        description="native: CPU stages run in Ray workers (or in-process); "
        "docker: each CPU stage runs in its own hardened container")
    gpu_stages: RunnerKind = Field(
        default=RunnerKind.NATIVE,
        description="native: GPU stages run as Ray actors that keep their "
        "models loaded across jobs; docker: each attempt runs in its stage's GPU image "
        "(`images build --mode full`) with the GPUs it was granted, loading its model anew")
    address: str | None = Field(
        default=None, description="Ray cluster to join: auto or HOST:PORT (else RAY_ADDRESS, "
        "else an embedded Ray on this machine)")
    shared_paths: list[SafePath] = Field(
        default_factory=list,
        description="Folders every node can read at the same path: media there runs anywhere")
    offline: bool = Field(
        default=False, description="Never reach a model hub: HF_HUB_OFFLINE=1 and "
        "TRANSFORMERS_OFFLINE=1 for the driver and every Ray worker of the run")


class JobBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = 1
    id: Name = Field(description="Job id: the job folder's name")
    media: SafePath = Field(description="The source video or audio file")
    title: str | None = None
    year: int | None = Field(default=None, ge=1888, le=2100)
    name: Name | None = Field(default=None,
                              description="Base name of the output files (default: the job id)")
    source_language: str = Field(default="hi", pattern=LANGUAGE_PATTERN)
    target_languages: list[str] = Field(default_factory=lambda: ["en"])
    created: dt.date = Field(default_factory=dt.date.today,
                             description="Fixes the job folder's date, so reruns find it")
    user: Name = Field(default_factory=lambda: getpass.getuser())
    out_root: SafePath = Path("out")
    artifacts: dict[str, SafePath] = Field(
        default_factory=dict,
        description="Artifacts you provide instead of a stage (e.g. transcript: my.json)",
    )
    execution: ExecutionSettings = Field(default_factory=ExecutionSettings)
    if TYPE_CHECKING:  # the field `job_model` adds, one settings model per registered stage
        @property
        def stages(self) -> BaseModel: ...

    @field_validator("target_languages")
    @classmethod
    def _languages(cls, value: list[str]) -> list[str]:
        bad = [v for v in value if not re.match(LANGUAGE_PATTERN, v)]
        if bad:
            raise ValueError(f"not language codes: {', '.join(bad)}")
        return list(dict.fromkeys(canonical_tag(v) for v in value))  # hi-latn is hi-Latn

    @field_validator("source_language")
    @classmethod
    def _language(cls, value: str) -> str:
        return canonical_tag(value)

    @property
    def output_name(self) -> str:
        return self.name or self.id

    def job_dir(self) -> Path:
        d = self.created
        return self.out_root / f"{d:%Y}" / f"{d:%m}" / f"{d:%d}" / self.user / self.id

    def named_paths(self) -> dict[str, Path]:
        """Every path the job names, by its field."""
        return {"media": self.media, "out_root": self.out_root,
                **{f"artifacts.{k}": v for k, v in self.artifacts.items()},
                **{f"execution.shared_paths.{i}": p
                   for i, p in enumerate(self.execution.shared_paths)}}

    def stage_settings(self, stage: str) -> BaseModel:
        settings: BaseModel = getattr(self.stages, stage)
        return settings

    def resolved(self, base: Path) -> JobBase:
        """A copy whose relative paths are anchored at `base` (the job file's folder)."""
        def anchor(p: Path) -> Path:
            return p if p.is_absolute() else (base / p).resolve()
        return self.model_copy(update={
            "media": anchor(self.media),
            "out_root": anchor(self.out_root),
            "artifacts": {k: anchor(v) for k, v in self.artifacts.items()},
            "execution": self.execution.model_copy(update={
                "shared_paths": [anchor(p) for p in self.execution.shared_paths]}),
        })


@cache
def _job_model(settings: tuple[tuple[str, type[BaseModel]], ...]) -> type[JobBase]:
    fields: dict[str, Any] = {
        name: (model, Field(default_factory=model)) for name, model in settings
    }
    stages = create_model("StageSettingsByName", __config__=ConfigDict(extra="forbid"), **fields)
    return create_model("Job", __base__=JobBase,
                        stages=(stages, Field(default_factory=stages)))


def job_model(specs: Iterable[StageSpec]) -> type[JobBase]:
    return _job_model(tuple(sorted((s.name, s.settings_model) for s in specs)))


def format_validation_error(err: ValidationError, source: str) -> str:
    """One line per field: `source: field.path: message`."""
    lines = []
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"]) or "(top level)"
        message = e["msg"].removeprefix("Value error, ")
        lines.append(f"{source}: {where}: {message}")
    return "\n".join(lines)


def validate_job(data: Mapping[str, Any], specs: Iterable[StageSpec], source: str) -> JobBase:
    try:
        return job_model(specs).model_validate(data)
    except ValidationError as err:
        raise UsageError(format_validation_error(err, source)) from None


def read_job_data(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path}: no such job file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"{path}: cannot read job file: {err}") from None
    except json.JSONDecodeError as err:
        raise UsageError(f"{path}: not valid JSON: {err.msg} at line {err.lineno}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: a job file holds one JSON object")
    return data


def load_job(path: Path, specs: Iterable[StageSpec], overrides: Iterable[str] = ()) -> JobBase:
    """Read, override (`--set`), validate and anchor a job file."""
    specs = tuple(specs)
    data = apply_overrides(read_job_data(path), overrides, {s.name for s in specs})
    job = validate_job(data, specs, str(path)).resolved(path.parent.resolve())
    check_paths(job.named_paths(), str(path))
    if "created" not in data:
        job = with_existing_folder(job)
    return job


def with_existing_folder(job: JobBase) -> JobBase:
    """A job file without `created`, run on another day, finds the folder an earlier run
    made for its id (the newest, if several) instead of starting a new one."""
    pattern = f"[0-9][0-9][0-9][0-9]/[0-9][0-9]/[0-9][0-9]/{glob.escape(job.user)}/" \
              f"{glob.escape(job.id)}/manifest.json"
    dates = []
    for manifest in job.out_root.glob(pattern):
        with contextlib.suppress(ValueError):
            year, month, day = manifest.parts[-6:-3]
            dates.append(dt.date(int(year), int(month), int(day)))
    return job.model_copy(update={"created": max(dates)}) if dates else job


def apply_overrides(data: dict[str, Any], overrides: Iterable[str],
                    stage_names: set[str]) -> dict[str, Any]:
    """Apply `STAGE.KEY=VALUE` settings.

    Values stay strings (pydantic turns "5", "0.5", "true" into the field's type) except JSON
    lists, objects and null, which are parsed.
    """
    data = json.loads(json.dumps(data))
    for item in overrides:
        path, value = _split_override(item, stage_names)
        node = data.setdefault("stages", {})
        for key in path[:-1]:
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise UsageError(f"--set {item}: {key} is not a settings group")
            node = child
        node[path[-1]] = value
    return data


def _split_override(item: str, stage_names: set[str]) -> tuple[list[str], Any]:
    key, sep, raw = item.partition("=")
    path = key.strip().split(".")
    if not sep or len(path) < 2 or not all(path):
        raise UsageError(f"--set {item}: expected STAGE.KEY=VALUE")
    if path[0] not in stage_names:
        raise UsageError(f"--set {item}: unknown stage {path[0]!r} "
                         f"(stages: {', '.join(sorted(stage_names))})")
    value: Any = raw
    if raw.strip()[:1] in ("[", "{") or raw.strip() == "null":
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as err:
            raise UsageError(f"--set {item}: not valid JSON: {err.msg}") from None
    return path, value


def job_json_for_disk(job: JobBase) -> str:
    """The resolved job as written into the job folder (it holds no secrets by design)."""
    return job.model_dump_json(indent=2) + "\n"
