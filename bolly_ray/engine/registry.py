"""Finding stages: the built-in ones plus plugins from the `bolly_ray.stages` entry points.

A plugin package adds a stage by declaring, in its own pyproject.toml,
`[project.entry-points."bolly_ray.stages"] mystage = "mypkg.module:MyStage"`. Every stage is
checked on load (a `Stage` subclass with a well-formed `StageSpec` whose name matches the
entry point) and every problem is reported at once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from bolly_ray.errors import UsageError
from bolly_ray.spec import Stage, StageSettings, StageSpec

ENTRY_POINT_GROUP = "bolly_ray.stages"
STAGE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
ARTIFACT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


@dataclass(frozen=True)
class Registry(Mapping[str, Stage[Any]]):
    """Stage name -> stage implementation (an instance, stateless)."""

    stages: Mapping[str, Stage[Any]]

    def __getitem__(self, name: str) -> Stage[Any]:
        return self.stages[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.stages)

    def __len__(self) -> int:
        return len(self.stages)

    @property
    def specs(self) -> tuple[StageSpec, ...]:
        return tuple(s.spec for s in self.stages.values())


def spec_problems(stage: object, expected_name: str | None = None) -> list[str]:
    """Everything wrong with one stage class or instance, as messages."""
    label = expected_name or getattr(stage, "__name__", repr(stage))
    cls = stage if isinstance(stage, type) else type(stage)
    if not issubclass(cls, Stage):
        return [f"{label}: {cls.__name__} is not a bolly_ray.spec.Stage subclass"]
    spec = getattr(cls, "spec", None)
    if not isinstance(spec, StageSpec):
        return [f"{label}: {cls.__name__}.spec is not a StageSpec"]
    problems = []
    if not STAGE_NAME.match(spec.name):
        problems.append(f"{label}: stage name {spec.name!r} must match {STAGE_NAME.pattern}")
    if expected_name is not None and spec.name != expected_name:
        problems.append(f"{label}: entry point name differs from spec name {spec.name!r}")
    bad = [a for a in spec.all_inputs + spec.outputs if not ARTIFACT_NAME.match(a)]
    if bad:
        problems.append(f"{label}: bad artifact names {bad}")
    if not spec.outputs:
        problems.append(f"{label}: a stage must declare at least one output")
    model = spec.settings_model
    if not (isinstance(model, type) and issubclass(model, StageSettings)):
        problems.append(f"{label}: settings_model must subclass bolly_ray.spec.StageSettings")
    return problems


def build_registry(stage_classes: Iterable[type[Stage[Any]]]) -> Registry:
    """A registry from stage classes; duplicates and malformed specs are all reported."""
    problems: list[str] = []
    stages: dict[str, Stage[Any]] = {}
    for cls in stage_classes:
        found = spec_problems(cls)
        if found:
            problems += found
        elif cls.spec.name in stages:
            first = type(stages[cls.spec.name]).__name__
            problems.append(f"{cls.spec.name}: defined twice ({first} and {cls.__name__})")
        else:
            stages[cls.spec.name] = cls()
    if problems:
        raise UsageError("invalid stages:\n  " + "\n  ".join(problems))
    return Registry(stages)


def load_plugins(eps: Iterable[EntryPoint] | None = None) -> list[type[Stage[Any]]]:
    found: list[type[Stage[Any]]] = []
    problems: list[str] = []
    for ep in entry_points(group=ENTRY_POINT_GROUP) if eps is None else eps:
        try:
            obj = ep.load()
        except Exception as err:  # a broken plugin must not hide the others' problems
            problems.append(f"plugin {ep.name} ({ep.value}): cannot import: {err}")
            continue
        issues = spec_problems(obj, expected_name=ep.name)
        if issues:
            problems += [f"plugin {p}" for p in issues]
        else:
            found.append(obj)
    if problems:
        raise UsageError("invalid stage plugins:\n  " + "\n  ".join(problems))
    return found


def default_registry() -> Registry:
    from bolly_ray.stages import BUILTIN_STAGES

    return build_registry([*BUILTIN_STAGES, *load_plugins()])
