"""Stage plugins arrive through the `bolly_ray.stages` entry point and are checked on load."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from bolly_ray.engine.registry import build_registry, default_registry, load_plugins
from bolly_ray.errors import UsageError
from bolly_ray.spec import Stage, StageSpec
from tests.conftest import PLUGIN_SITE
from tests.fakes import fake


def test_a_plugin_package_adds_a_stage_without_touching_bolly_ray(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert "slowcopy" not in default_registry()
    monkeypatch.syspath_prepend(str(PLUGIN_SITE))
    registry = default_registry()
    assert "slowcopy" in registry and "demux" in registry
    assert registry["slowcopy"].spec.inputs == ("audio",)


class NotAStage:
    spec = None


class WrongName(Stage):
    spec = StageSpec(name="other", inputs=("media",), outputs=("x",))


def test_broken_plugins_are_all_reported_at_once(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    module = tmp_path / "broken_plugins.py"
    module.write_text("raise RuntimeError('import blew up')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    here = sys.modules[__name__].__name__
    eps = [EntryPoint("missing", "broken_plugins:Stage", "bolly_ray.stages"),
           EntryPoint("notastage", f"{here}:NotAStage", "bolly_ray.stages"),
           EntryPoint("wrongname", f"{here}:WrongName", "bolly_ray.stages")]
    with pytest.raises(UsageError) as err:
        load_plugins(eps)
    message = str(err.value)
    assert "plugin missing (broken_plugins:Stage): cannot import: import blew up" in message
    assert "plugin notastage: NotAStage is not a bolly_ray.spec.Stage subclass" in message
    assert "plugin wrongname: entry point name differs from spec name 'other'" in message


def test_duplicate_stage_names_are_rejected() -> None:
    with pytest.raises(UsageError, match="a: defined twice"):
        build_registry([fake("a", ["media"], ["x"]), fake("a", ["media"], ["y"])])


def test_every_stage_loads_with_only_what_every_stage_image_holds() -> None:
    """A stage container imports every stage module (the registry), in an image that holds
    the core requirements and its own stage's: a top-level import of anything else crashes
    every other stage's container (packaging once, threadpoolctl once). Fast, without Docker."""
    from bolly_ray.ops.images import CORE_REQUIREMENTS

    allowed = {"bolly_ray", "pydantic", "pydantic_core", "typing_extensions", "annotated_types",
               "typing_inspection", "pysubs2", "pycountry"}
    assert {r.split(">")[0].split("=")[0].replace("-", "_") for r in CORE_REQUIREMENTS} <= allowed
    probe = f"""
import importlib.abc, sys
ALLOWED = {sorted(allowed)!r}
class OnlyTheImage(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        top = name.split(".")[0]
        if not (top in sys.stdlib_module_names or top in ALLOWED or top.startswith("_")):
            raise ModuleNotFoundError(f"No module named {{name!r}} in a stage image")
sys.meta_path.insert(0, OnlyTheImage())
import bolly_ray.runtime.container_entry
from bolly_ray.engine.registry import default_registry
print(sorted(default_registry()))
"""
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "'asr'" in done.stdout and "'vad'" in done.stdout
