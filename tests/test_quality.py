"""Project rules that are cheap to check: lint, types (mypy), the import contracts (layers:
each imports only those below it; stages, core and engine never import Ray or Docker; the
scheduler knows no backend), and docs/STAGES.md matching the stages."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import assert_one_line_error, bolly

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def test_ruff_is_clean() -> None:
    done = subprocess.run([str(BIN / "ruff"), "check", "."], cwd=REPO, capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_import_contracts_hold() -> None:
    done = subprocess.run([str(BIN / "lint-imports")], cwd=REPO, capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Contracts: 4 kept, 0 broken" in done.stdout
    assert "Layers: each imports only the layers below it KEPT" in done.stdout


def test_an_import_from_a_layer_above_breaks_the_layers_contract(tmp_path: Path) -> None:
    """The same contracts over a copy of the package in which the core imports the command
    line: the layers contract names that import."""
    shutil.copytree(REPO / "bolly_ray", tmp_path / "bolly_ray",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    dag = tmp_path / "bolly_ray" / "core" / "dag.py"
    dag.write_text(dag.read_text() + "\nfrom bolly_ray.cli import app  # noqa\n")
    done = subprocess.run([str(BIN / "lint-imports"), "--no-cache"], cwd=tmp_path,
                          capture_output=True, text=True, check=False,
                          env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Layers: each imports only the layers below it BROKEN" in done.stdout
    assert "bolly_ray.core.dag -> bolly_ray.cli.app" in done.stdout


def test_types_check() -> None:
    """mypy over the package, stages included, strict on spec, errors, core, engine, runtime
    and executors (pyproject.toml says which)."""
    done = subprocess.run([str(BIN / "mypy")], cwd=REPO, capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("Success: no issues found"), done.stdout


def test_stages_md_is_generated_from_the_stages_and_a_stale_copy_is_caught(
        tmp_path: Path) -> None:
    current = bolly("docs", "--check", cwd=REPO)
    assert current.returncode == 0, current.stderr  # else: run `bolly-ray docs`
    stale = tmp_path / "STAGES.md"
    stale.write_text((REPO / "docs" / "STAGES.md").read_text().replace("Skip the search", "x"))
    done = bolly("docs", "--check", "--output", stale, cwd=tmp_path)
    assert_one_line_error(done, 1, f"{stale} is stale: run `bolly-ray docs`")
