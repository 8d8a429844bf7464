"""Secrets live in the environment, never in job files, job folders or printed values."""

from __future__ import annotations

import json
from pathlib import Path

from bolly_ray.secrets import Secrets
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
