"""Whether an optional library is installed, without importing it.

`importlib.util.find_spec("pyannote.audio")` imports the parent package first and raises
when it is missing; stages ask through `installed`, which answers False instead.
"""

from __future__ import annotations

import importlib.util


def installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a missing parent package, or a broken one
        return False
