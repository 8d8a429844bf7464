"""`bolly-ray voices learn`: fold the voices finished jobs named into a library's voice bank.

Each job's speakers stage published `speaker_voices` (found through the job's manifest);
the named ones are averaged into the bank file (`bolly_ray.stages.voice_bank`), which is
written whole or not at all. Jobs that bring the bank as `artifacts.voice_bank` then start
with those names. Only a user's command changes the bank: a running batch never does, so
its results do not depend on which job finished first.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from pydantic import ValidationError

from bolly_ray.core.files import write_atomic
from bolly_ray.engine.manifest import Manifest
from bolly_ray.errors import StageError, UsageError
from bolly_ray.stages.voice_bank import FilmVoices, VoiceBank, learn, read_bank

ARTIFACT = "speaker_voices"


def voice_files(folders: Iterable[Path]) -> list[Path]:
    """The published speaker_voices of every job under these folders (job folders or the
    out roots that hold them)."""
    found = []
    for folder in folders:
        manifests = ([folder / "manifest.json"] if (folder / "manifest.json").is_file()
                     else sorted(folder.rglob("manifest.json")))
        for manifest in manifests:
            for record in Manifest.read(manifest).stages.values():
                if ARTIFACT in record.outputs:
                    found.append(manifest.parent / record.outputs[ARTIFACT].path)
    return found


def learn_voices(folders: list[Path], bank_file: Path) -> list[str]:
    """Fold every job's named voices into the bank; one line per film."""
    files = voice_files(folders)
    if not files:
        raise UsageError(f"no job under {', '.join(map(str, folders))} has published "
                         "speaker voices (the speakers stage, with diarize)")
    try:
        bank: VoiceBank | None = read_bank(bank_file) if bank_file.exists() else None
    except StageError as err:
        raise UsageError(str(err)) from None
    lines = []
    for path in files:
        try:
            film = FilmVoices.model_validate_json(path.read_bytes())
        except (OSError, ValidationError) as err:
            raise UsageError(f"{path}: not speaker voices ({type(err).__name__})") from None
        if not film.voices:
            lines.append(f"{film.film}: no voices (diarize did not give any)")
            continue
        bank, learnt = learn(bank, film)
        lines.append(f"{film.film}: {', '.join(learnt) if learnt else 'nobody named'}")
    if bank is not None:
        write_atomic(bank_file, bank.model_dump_json(indent=2) + "\n")
        lines.append(f"wrote {bank_file}: {len(bank.voices)} voice(s)")
    return lines
