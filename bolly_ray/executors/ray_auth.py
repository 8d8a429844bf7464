"""Joining a Ray cluster at an explicit address: its token, and why a join fails.

Ray 2.60 turns token authentication on by default, and its own CLI (`ray start`, `ray.init`
with no address or `auto`) then reads the token from `RAY_AUTH_TOKEN`, the file named by
`RAY_AUTH_TOKEN_PATH` or `~/.ray/auth_token`. `ray.init(address="HOST:PORT")` does not look,
and fails after 20 s with "Failed to connect" naming no cause. Here the token is looked up
the same way for every address, and a head that cannot be joined is probed once so the
message says which of the two usual causes it is: nothing listens at that address, or the
cluster wants a token this machine lacks (with the places looked in) or rejects it.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

from bolly_ray.errors import PreflightError

MODE_ENV = "RAY_AUTH_MODE"
TOKEN_ENV = "RAY_AUTH_TOKEN"
TOKEN_PATH_ENV = "RAY_AUTH_TOKEN_PATH"
PROBE_TIMEOUT_S = 3.0


class NothingListensError(PreflightError):
    """No Ray head answers at the address."""

    fix = "start the head with `ray start --head`, or check the address and port"


class TokenWantedError(PreflightError):
    """The head answers but refuses this machine's token, or this machine has none."""

    fix = ("copy the head's token here: ~/.ray/auth_token (or set RAY_AUTH_TOKEN, or "
           "RAY_AUTH_TOKEN_PATH to a file holding it)")


def token_source() -> str | None:
    """Where Ray would read a token from on this machine, in Ray's order; None if nowhere."""
    if os.environ.get(TOKEN_ENV):
        return f"${TOKEN_ENV}"
    path, name = _token_file()
    return name if _readable(path) else None


def places_looked() -> str:
    return f"${TOKEN_ENV}, {_token_file()[1]}"


def _token_file() -> tuple[Path, str]:
    """The file Ray reads a token from (the one RAY_AUTH_TOKEN_PATH names, else
    ~/.ray/auth_token), and how messages name it."""
    named = os.environ.get(TOKEN_PATH_ENV)
    if named:
        return Path(named), f"{named} (${TOKEN_PATH_ENV})"
    default = Path.home() / ".ray" / "auth_token"
    return default, str(default)


def _readable(path: Path) -> bool:
    try:
        return bool(path.read_text().strip())
    except OSError:
        return False


def use_token_if_found() -> None:
    """Turn Ray's token mode on for this process when a token exists and the user did not
    set `RAY_AUTH_MODE` (as `ray start` does); an explicit setting is left alone."""
    if os.environ.get(MODE_ENV) is not None or token_source() is None:
        return
    from ray._private.authentication.authentication_token_setup import (
        maybe_enable_token_auth_if_token_available,
    )

    quiet = logging.getLogger("ray._private.authentication.authentication_token_setup")
    level, quiet.level = quiet.level, logging.ERROR  # its notice is for `ray start`'s user
    try:
        maybe_enable_token_auth_if_token_available(warn_if_disabled=False)
    finally:
        quiet.level = level


def host_and_port(address: str) -> tuple[str, int] | None:
    """(host, port) of a `HOST:PORT` address; None for `auto`, `ray://...` and the like."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or "/" in address or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


def probe(address: str) -> None:
    """Raise NothingListensError or TokenWantedError when the head at `address` cannot be
    joined for one of those reasons; return quietly otherwise (and for other addresses)."""
    target = host_and_port(address)
    if target is None:
        return
    try:
        with socket.create_connection(target, timeout=PROBE_TIMEOUT_S):
            pass
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise NothingListensError(f"nothing listens at {address} ({reason.lower()}): start "
                                  "the head there with `ray start --head`, or check the "
                                  "address") from None
    _check_token(address)


def _check_token(address: str) -> None:
    import ray.exceptions
    from ray._raylet import GcsClient  # type: ignore[attr-defined]  # _raylet.pyi omits it

    try:
        GcsClient(address=address)
    except ray.exceptions.AuthenticationError:
        source = token_source()
        if source is None or os.environ.get(MODE_ENV, "").lower() == "disabled":
            where = (f"none found (looked in {places_looked()})" if source is None
                     else f"{MODE_ENV}=disabled here")
            raise TokenWantedError(f"the Ray cluster at {address} wants a token: {where}; "
                                   f"{TokenWantedError.fix}") from None
        raise TokenWantedError(f"the Ray cluster at {address} refuses the token from "
                               f"{source}: use the head's token") from None
    except Exception:  # anything else is ray.init's to report, in its own words
        return
