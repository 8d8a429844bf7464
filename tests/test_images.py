"""Preparing wheels for stage images: debug information stripped from a real wheel from
PyPI leaves a valid wheel (RECORD true to every file) that installs and imports; a wheel
auditwheel repaired is left byte for byte."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from bolly_ray.ops.wheel_strip import strip_tool, strip_wheel

STRIP = strip_tool()
pytestmark = pytest.mark.skipif(STRIP is None, reason="binutils' strip is not installed")


@pytest.fixture(scope="module")
def cymem_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """cymem's manylinux wheel (spaCy's allocator): one extension module, with debug info."""
    folder = tmp_path_factory.mktemp("wheels")
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                    "--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp",
                    "--platform", "manylinux_2_17_x86_64", "-d", str(folder), "cymem==2.0.16"],
                   check=True, timeout=120)
    [wheel] = folder.glob("cymem-*.whl")
    return wheel


def record_mismatches(wheel: Path) -> list[str]:
    """Files whose hash or size differs from what the wheel's RECORD says."""
    bad = []
    with zipfile.ZipFile(wheel) as archive:
        [record] = [n for n in archive.namelist() if n.endswith(".dist-info/RECORD")]
        for name, digest, size in csv.reader(io.StringIO(archive.read(record).decode())):
            if not digest:
                continue
            data = archive.read(name)
            actual = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            if digest != f"sha256={actual.decode()}" or int(size) != len(data):
                bad.append(name)
    return bad


def test_a_stripped_wheel_is_smaller_valid_and_imports(cymem_wheel: Path,
                                                       tmp_path: Path) -> None:
    wheel = tmp_path / cymem_wheel.name
    shutil.copy(cymem_wheel, wheel)
    native = "cymem/cymem.cpython-311-x86_64-linux-gnu.so"
    with zipfile.ZipFile(cymem_wheel) as archive:
        before = archive.getinfo(native).file_size
    assert STRIP is not None
    saved = strip_wheel(wheel, STRIP)
    with zipfile.ZipFile(wheel) as archive:
        after = archive.getinfo(native).file_size
    assert saved > 0 and after < before / 2
    assert record_mismatches(wheel) == []
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-index", "--target", str(target), str(wheel)], check=True, timeout=120)
    done = subprocess.run([sys.executable, "-c", "from cymem.cymem import Pool; Pool()"],
                          env={**os.environ, "PYTHONPATH": str(target)}, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr


def test_a_wheel_with_grafted_libraries_is_left_as_it_is(cymem_wheel: Path,
                                                         tmp_path: Path) -> None:
    wheel = tmp_path / "grafted-1.0-cp311-cp311-manylinux_2_17_x86_64.whl"
    with zipfile.ZipFile(cymem_wheel) as source, zipfile.ZipFile(wheel, "w") as out:
        for info in source.infolist():
            out.writestr(info, source.read(info))
        out.writestr("cymem.libs/libextra-12345678.so.1", source.read(
            "cymem/cymem.cpython-311-x86_64-linux-gnu.so"))
    original = wheel.read_bytes()
    assert STRIP is not None
    assert strip_wheel(wheel, STRIP) == 0
    assert wheel.read_bytes() == original
