"""Project rules that are cheap to check: lint, types (mypy), the layer contract that
stages and the job/stage/DAG core never import Ray, and docs/STAGES.md matching the
stages."""

from __future__ import annotations

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
    assert "Contracts: 2 kept, 0 broken" in done.stdout


def test_types_check() -> None:
    """mypy over the package and the stages, strict on the core, engine and executors
    (pyproject.toml says which)."""
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
