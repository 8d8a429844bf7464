"""Secrets live in the environment, never in job files, job folders or printed values."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bolly_ray.core.secrets import Secrets, withheld_from_children
from tests.conftest import assert_one_line_error, bolly

CANARY = "canary-secret-4f1d"


def test_secrets_are_read_from_the_environment_and_masked() -> None:
    secrets = Secrets.from_env({"TMDB_API_KEY": CANARY, "HF_TOKEN": "", "OTHER": "x"})
    assert secrets.tmdb_api_key is not None
    assert secrets.tmdb_api_key.get_secret_value() == CANARY
    assert secrets.hf_token is None
    assert CANARY not in repr(secrets) and CANARY not in secrets.model_dump_json()


def test_a_job_file_cannot_carry_a_secret(tmp_path: Path) -> None:
    job_file = tmp_path / "job.json"
    job_file.write_text(json.dumps({"id": "x", "media": "f.mkv", "tmdb_api_key": CANARY}))
    done = bolly("run", job_file, cwd=tmp_path)
    assert_one_line_error(done, 2, "tmdb_api_key: Extra inputs are not permitted")
    assert CANARY not in done.stderr


def test_the_environment_secret_never_reaches_the_job_folder(tmp_path: Path) -> None:
    done = bolly("demo", "--out", tmp_path / "demo", "--json", cwd=tmp_path,
                 env={"TMDB_API_KEY": CANARY, "HF_TOKEN": CANARY})
    assert done.returncode == 0, done.stderr
    for path in (tmp_path / "demo").rglob("*"):
        if path.is_file():
            assert CANARY.encode() not in path.read_bytes(), path


def test_a_stage_secret_is_in_the_environment_only_while_it_is_exported(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)
    secrets = Secrets(hf_token="hf_canary_exported")
    with secrets.exported():
        assert os.environ["HF_TOKEN"] == "hf_canary_exported"
    assert "HF_TOKEN" not in os.environ


def test_processes_started_while_secrets_are_withheld_never_see_them(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMDB_API_KEY", "canary-withheld")
    with withheld_from_children():
        child = subprocess.run([sys.executable, "-c", "import os; print(os.environ.get("
                                "'TMDB_API_KEY', 'absent'))"], capture_output=True, text=True,
                               check=True)
    assert child.stdout.strip() == "absent"
    assert os.environ["TMDB_API_KEY"] == "canary-withheld"  # the driver keeps it
