"""Whether this Python has the libraries a stage declares, and the command that adds one.

The preflight refuses a run whose natively run stages lack a library (all of them named at
once); `doctor` shows the same checks beside its others.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterable
from dataclasses import dataclass

from packaging.requirements import Requirement

from bolly_ray.engine.registry import Registry


@dataclass(frozen=True)
class Check:
    mode: str
    name: str
    ok: bool
    detail: str
    fix: str = ""


def missing_libraries(registry: Registry, stages: Iterable[str]) -> list[str]:
    """One line per library a natively run stage needs and this Python lacks, with the fix."""
    return [f"{name} needs {requirement} ({check.detail}): {check.fix}"
            for name, requirement, check in library_checks(registry, stages) if not check.ok]


def library_checks(registry: Registry, stages: Iterable[str]
                   ) -> list[tuple[str, str, Check]]:
    """(stage, requirement, check) for every Python library these stages declare."""
    found = []
    for name in sorted(set(stages)):
        for requirement in registry[name].spec.image_requirements:
            check = distribution("native", Requirement(requirement).name)
            found.append((name, requirement, Check(
                "native", f"{name}: {check.name}", check.ok, check.detail,
                f"pip install '{requirement}'")))
    return found


def distribution(mode: str, name: str, exact: str | None = None) -> Check:
    try:
        version = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return Check(mode, name, False, "not installed", f"pip install '{name}'")
    if exact and version != exact:
        return Check(mode, name, False, f"{version}, expected {exact}",
                     f"pip install '{name}=={exact}'")
    return Check(mode, name, True, version)
