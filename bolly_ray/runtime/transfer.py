"""Moving artifacts between nodes that share no filesystem.

An artifact (a file or a folder of files) is packed into bytes on one side and unpacked
into a scratch folder on the other; Ray's object store carries the packed form. Packing
keeps relative paths only, and unpacking refuses any path that would leave its folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from bolly_ray.errors import StageError


@dataclass(frozen=True)
class PackedArtifact:
    name: str
    """The file's or folder's name."""
    is_dir: bool
    files: tuple[tuple[str, bytes], ...]
    """(path relative to the folder, bytes); for a single file, one entry with path ''."""

    @property
    def size(self) -> int:
        return sum(len(data) for _, data in self.files)


def pack(path: Path) -> PackedArtifact:
    if path.is_dir():
        files = tuple((p.relative_to(path).as_posix(), p.read_bytes())
                      for p in sorted(path.rglob("*")) if p.is_file())
        return PackedArtifact(path.name, True, files)
    return PackedArtifact(path.name, False, (("", path.read_bytes()),))


def unpack(packed: PackedArtifact, folder: Path) -> Path:
    """Write `packed` under `folder`; returns the artifact's path."""
    target = folder / _safe(packed.name)
    if not packed.is_dir:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(packed.files[0][1])
        return target
    target.mkdir(parents=True, exist_ok=True)
    for rel, data in packed.files:
        file = target / _safe(rel)
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_bytes(data)
    return target


def _safe(rel: str) -> str:
    parts = PurePosixPath(rel).parts
    if not parts or PurePosixPath(rel).is_absolute() or ".." in parts:
        raise StageError(f"refusing to unpack artifact path {rel!r}")
    return rel
