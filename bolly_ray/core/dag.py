"""The stage graph, derived from artifact names.

An edge runs from the stage that outputs an artifact to every stage that reads it; nobody
declares edges. Building the graph rejects, all at once, unknown stage names, cycles,
artifacts with two producers, required inputs nothing produces, and hard dependencies on
optional stages. Artifacts the job provides itself (the source media, or a transcript you
bring) stand in for the stage that would produce them.
"""

from __future__ import annotations

import graphlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from bolly_ray.errors import UsageError
from bolly_ray.spec import StageSpec


@dataclass(frozen=True)
class Pipeline:
    specs: Mapping[str, StageSpec]
    """Stages in topological order (ties broken by name), replaced stages left out."""
    producers: Mapping[str, str]
    """Artifact -> the stage producing it."""
    provided: frozenset[str]
    """Artifacts the job provides itself."""
    replaced: frozenset[str]
    """Stages whose outputs the job provides, so they never run."""
    unsatisfied: Mapping[str, tuple[str, ...]]
    """Stage -> required inputs that nothing produces; such a stage cannot be selected."""
    unneeded: frozenset[str] = frozenset()
    """Stages that only feed replaced stages: they run only when selected by name."""

    @property
    def order(self) -> tuple[str, ...]:
        return tuple(self.specs)

    def number(self, stage: str) -> int:
        return self.order.index(stage) + 1

    def upstream(self, stage: str) -> list[str]:
        """Stages whose outputs `stage` reads (directly)."""
        spec = self.specs[stage]
        return sorted({self.producers[a] for a in spec.all_inputs if a in self.producers})

    def descendants(self, stage: str) -> set[str]:
        out: set[str] = set()
        frontier = [stage]
        while frontier:
            current = frontier.pop()
            for name, spec in self.specs.items():
                if name not in out and set(spec.all_inputs) & set(self.specs[current].outputs):
                    out.add(name)
                    frontier.append(name)
        return out

    def select(self, only: Iterable[str] = (), start: str | None = None) -> list[str]:
        """Stages to run for `--only` / `--from`, in order; unknown names are errors."""
        only = [s for s in only if s]
        unknown = sorted({*only, *([start] if start else [])} - set(self.specs))
        if unknown:
            raise UsageError(f"unknown stages: {', '.join(unknown)} "
                             f"(stages: {', '.join(self.order)})")
        chosen = set(only) if only else set(self.specs) - self.unneeded
        if start:
            chosen &= {start} | self.descendants(start)
        problems = [f"{stage}: input {artifact!r} is produced by no stage and not provided "
                    "by the job" for stage in self.order if stage in chosen
                    for artifact in self.unsatisfied.get(stage, ())]
        if problems:
            raise UsageError("invalid pipeline:\n  " + "\n  ".join(problems))
        return [s for s in self.order if s in chosen]


def build_pipeline(specs: Iterable[StageSpec], provided: Iterable[str] = ()) -> Pipeline:
    specs = list(specs)
    provided_set = frozenset(provided)
    problems, replaced = _replacements(specs, provided_set)
    active = [s for s in specs if s.name not in replaced]
    producers, dup_problems = _producers(active)
    problems += dup_problems
    problems += _optional_dependencies(active, producers)
    order, cycle_problems = _topological(active, producers)
    problems += cycle_problems
    if problems:
        raise UsageError("invalid pipeline:\n  " + "\n  ".join(problems))
    by_name = {s.name: s for s in active}
    return Pipeline({n: by_name[n] for n in order}, producers, provided_set, frozenset(replaced),
                    _unsatisfied(active, producers, provided_set),
                    frozenset(_unneeded(specs, replaced)))


def _replacements(specs: list[StageSpec], provided: frozenset[str]) -> tuple[list[str], set[str]]:
    """Stages the job replaces: it provides every output of theirs that some stage reads
    (a side report nobody reads, like the filter's list of removals, need not be given)."""
    read = {a for s in specs for a in s.all_inputs}
    problems, replaced = [], set()
    for spec in specs:
        given = provided & set(spec.outputs)
        needed = (set(spec.outputs) & read) or set(spec.outputs)
        if given and not needed <= given:
            missing = sorted(needed - given)
            problems.append(f"{spec.name}: the job provides {sorted(given)} but not {missing}; "
                            "provide all of a stage's outputs or none")
        elif given:
            replaced.add(spec.name)
    return problems, replaced


def _unneeded(specs: list[StageSpec], removed: set[str]) -> set[str]:
    """Stages that only fed removed stages (a provided transcript makes ASR, and what only
    ASR reads, pointless). Stages with exports, or whose outputs nobody reads, stay."""
    unneeded: set[str] = set()
    changed = True
    while changed:
        changed = False
        gone = removed | unneeded
        for spec in specs:
            if spec.name in gone or spec.exports:
                continue
            readers = {s.name for s in specs if set(s.all_inputs) & set(spec.outputs)}
            if readers and readers <= gone:
                unneeded.add(spec.name)
                changed = True
    return unneeded


def _producers(specs: list[StageSpec]) -> tuple[dict[str, str], list[str]]:
    producers: dict[str, str] = {}
    problems = []
    for spec in specs:
        for artifact in spec.outputs:
            if artifact in producers:
                problems.append(f"artifact {artifact!r} is produced by both "
                                f"{producers[artifact]} and {spec.name}")
            else:
                producers[artifact] = spec.name
    return producers, problems


def _unsatisfied(specs: list[StageSpec], producers: Mapping[str, str],
                 provided: frozenset[str]) -> dict[str, tuple[str, ...]]:
    """Required inputs nobody produces, per stage, including those missing upstream."""
    direct = {s.name: tuple(a for a in s.inputs if a not in producers and a not in provided)
              for s in specs}
    return {name: missing for name, missing in direct.items() if missing}


def _optional_dependencies(specs: list[StageSpec], producers: Mapping[str, str]) -> list[str]:
    by_name = {s.name: s for s in specs}
    return [f"{spec.name}: requires {artifact!r} from optional stage {producers[artifact]}; "
            "declare it in optional_inputs"
            for spec in specs for artifact in spec.inputs
            if artifact in producers and not by_name[producers[artifact]].critical]


def _topological(specs: list[StageSpec], producers: Mapping[str, str]
                 ) -> tuple[list[str], list[str]]:
    graph = {s.name: {producers[a] for a in s.all_inputs if a in producers} for s in specs}
    sorter = graphlib.TopologicalSorter(graph)
    try:
        sorter.prepare()
    except graphlib.CycleError as err:
        return [], [f"cycle between stages: {' -> '.join(err.args[1])}"]
    order: list[str] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready())
        order += ready
        sorter.done(*ready)
    return order, []
