"""Secrets come from the environment only, and stay masked.

Job files cannot hold secrets (the job model forbids unknown keys and has no secret fields),
so nothing that writes a job, a manifest or a log can leak one. Stages that need a key (TMDB,
gated Hugging Face models) receive a `Secrets` object; its values are `SecretStr` and print as
`**********`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager

from pydantic import BaseModel, ConfigDict, SecretStr

ENVIRONMENT = {"tmdb_api_key": "TMDB_API_KEY", "tmdb_read_token": "TMDB_READ_TOKEN",
               "hf_token": "HF_TOKEN"}


class Secrets(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tmdb_api_key: SecretStr | None = None
    tmdb_read_token: SecretStr | None = None
    hf_token: SecretStr | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Secrets:
        env = os.environ if environ is None else environ
        return cls.model_validate({field: env[var] for field, var in ENVIRONMENT.items()
                                  if env.get(var)})

    def only(self, names: Iterable[str]) -> Secrets:
        """These secrets and no others (what one stage declared)."""
        return Secrets(**{n: getattr(self, n) for n in names})

    def reveal(self) -> dict[str, str]:
        """The values in clear, for handing to a container through a private file."""
        return {name: value.get_secret_value() for name in type(self).model_fields
                if (value := getattr(self, name)) is not None}

    @contextmanager
    def exported(self) -> Iterator[None]:
        """These secrets in this process's environment for the block, and gone after (an
        actor loading a gated model reads the token the library's way, from HF_TOKEN)."""
        values = {ENVIRONMENT[name]: value for name, value in self.reveal().items()}
        before = {var: os.environ.get(var) for var in values}
        os.environ.update(values)
        try:
            yield
        finally:
            for var, old in before.items():
                if old is None:
                    os.environ.pop(var, None)
                else:
                    os.environ[var] = old


@contextmanager
def withheld_from_children() -> Iterator[None]:
    """No secret in os.environ for the block, so processes started in it (an embedded Ray's
    raylet, and every worker it forks) never inherit one; restored afterwards."""
    saved = {var: os.environ.pop(var) for var in ENVIRONMENT.values() if var in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def hf_token() -> str | None:
    """The Hugging Face token for gated models, read at the moment it is needed."""
    token = Secrets.from_env().hf_token
    return token.get_secret_value() if token is not None else None
