"""Debug information out of a wheel's native libraries, before it goes into an image.

Many wheels on PyPI ship their compiled extensions with DWARF debug information (spaCy's
are four times their code). `strip --strip-debug` removes only that: symbols stay, so
nothing that loads or links the library notices. Wheels that auditwheel repaired (those
with a `<name>.libs/` folder of grafted libraries) are left whole: their files were
rewritten by patchelf, and binutils' strip can leave them unloadable ("ELF load command
address/offset not page-aligned", seen with numpy's OpenBLAS). The wheel's RECORD is
rewritten with the new hashes and sizes, so a stripped wheel is still a valid wheel.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

log = logging.getLogger(__name__)
NATIVE = re.compile(r"\.so(\.[\d.]+)?$")


def strip_tool() -> str | None:
    """binutils' strip, when this machine has it (images are then only larger)."""
    return shutil.which("strip")


def strip_wheel(wheel: Path, strip: str) -> int:
    """Strip the wheel's native libraries in place; returns the bytes saved."""
    before = wheel.stat().st_size
    with zipfile.ZipFile(wheel) as source:
        names = source.namelist()
        grafted = any(name.split("/", 1)[0].endswith(".libs") for name in names)
        if grafted or not any(NATIVE.search(name) for name in names):
            return 0
        with tempfile.TemporaryDirectory(prefix="bolly-strip-") as tmp:
            members = _stripped_members(source, Path(tmp), strip)
            rewritten = wheel.with_suffix(".tmp")
            _write(rewritten, source, members)
    rewritten.replace(wheel)
    return before - wheel.stat().st_size


def _stripped_members(source: zipfile.ZipFile, tmp: Path, strip: str) -> dict[str, bytes]:
    """The new bytes of every native library that stripping made smaller."""
    members = {}
    for info in source.infolist():
        if not NATIVE.search(info.filename):
            continue
        path = tmp / "lib"
        path.write_bytes(source.read(info))
        done = subprocess.run([strip, "--strip-debug", str(path)], capture_output=True,
                              check=False)
        if done.returncode == 0 and path.stat().st_size < info.file_size:
            members[info.filename] = path.read_bytes()
        elif done.returncode != 0:
            log.debug("strip left %s as it was: %s", info.filename, done.stderr[-200:])
    return members


def _write(target: Path, source: zipfile.ZipFile, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as out:
        for info in source.infolist():
            data = members.get(info.filename)
            if data is None:
                data = source.read(info)
            if info.filename.endswith(".dist-info/RECORD"):
                data = _record(data, members)
            out.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED)


def _record(record: bytes, members: dict[str, bytes]) -> bytes:
    lines = []
    for line in record.decode().splitlines():
        name = line.rsplit(",", 2)[0]
        if name in members:
            digest = hashlib.sha256(members[name]).digest()
            encoded = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
            line = f"{name},sha256={encoded},{len(members[name])}"
        lines.append(line)
    return ("\n".join(lines) + "\n").encode()
