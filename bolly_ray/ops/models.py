"""`bolly-ray models pull`: fetch the models jobs need into the shared cache, before a run.

Arguments are job files (every enabled stage of the job fetches what its settings name:
Whisper weights, the wav2vec2 aligner for the job's language, the pyannote pipeline) or
bare Whisper model names. Everything lands in the Hugging Face / torch caches (HF_HOME,
TORCH_HOME), which a cluster points at a shared folder so that every node finds them. A
setting left `auto` (asr.model) is fitted to this machine, as a run here would fit it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

from bolly_ray.core.hardware import profile_here
from bolly_ray.core.job import load_job
from bolly_ray.engine.registry import Registry
from bolly_ray.engine.session import job_facts
from bolly_ray.errors import StageError
from bolly_ray.spec import OptionalStageSettings


def pull(targets: list[str], registry: Registry) -> Iterator[str]:
    """Fetch each target's models, yielding one line per model fetched; then, if any could
    not be fetched, raise one error listing them all."""
    failures: list[str] = []
    for target in targets:
        if target.endswith(".json") or Path(target).is_file():
            fetches = _job_fetches(Path(target), registry)
        else:
            fetches = [(f"Whisper model {target!r}", partial(_whisper, target))]
        for what, call in fetches:
            try:
                yield from call()
            except Exception as err:  # the hubs raise many types; the user needs the reason
                detail = str(err).splitlines()[0] if str(err) else "no detail"
                failures.append(f"cannot fetch {what}: {type(err).__name__}: {detail}")
    if failures:
        raise StageError("\n".join(failures))


def _job_fetches(path: Path, registry: Registry) -> list[tuple[str, Callable[[], list[str]]]]:
    job = load_job(path, registry.specs)
    facts = job_facts(job)
    profile = profile_here(job.out_root)
    fetches: list[tuple[str, Callable[[], list[str]]]] = []
    for name, stage in registry.items():
        settings = stage.fit_settings(job.stage_settings(name), profile)
        if not (isinstance(settings, OptionalStageSettings) and not settings.enabled):
            fetches.append((f"{name} models for {path.name}",
                            partial(stage.pull_models, settings, facts)))
    return fetches


def _whisper(name: str) -> list[str]:
    from faster_whisper.utils import download_model

    return [f"{name}: {download_model(name)}"]
