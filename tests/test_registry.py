"""Stage plugins arrive through the `bolly_ray.stages` entry point and are checked on load."""

from __future__ import annotations

import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from bolly_ray.errors import UsageError
from bolly_ray.registry import build_registry, default_registry, load_plugins
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
