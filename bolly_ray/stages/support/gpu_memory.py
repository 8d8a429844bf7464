"""Running batched GPU work that may not fit: halve the batch on out-of-memory, down to one.

Batch size is the one knob that trades speed for memory without changing results, so a
GPU stage that runs out of memory retries the same work with half the batch until it fits;
at a batch of one the stage fails with the sizes it tried and the memory the device had,
which is what a user needs to pick a smaller model or compute type. PyTorch and
CTranslate2 report out-of-memory differently; both are recognised here without importing
either.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from bolly_ray.errors import StageError

log = logging.getLogger(__name__)
T = TypeVar("T")

_OOM_MESSAGES = ("out of memory", "CUBLAS_STATUS_ALLOC_FAILED", "CUDNN_STATUS_ALLOC_FAILED")


def is_out_of_memory(error: BaseException) -> bool:
    """torch.cuda.OutOfMemoryError, or a RuntimeError from CUDA/CTranslate2 saying so."""
    if type(error).__name__ == "OutOfMemoryError":
        return True
    return isinstance(error, RuntimeError) and any(m in str(error) for m in _OOM_MESSAGES)


def with_batch_halving(work: Callable[[int], T], batch_size: int, what: str) -> tuple[T, int]:
    """`work(batch)` with the largest batch, from `batch_size` down by halves, that fits.

    Returns the result and the batch size that worked; raises `StageError` when even a
    batch of one runs out of memory.
    """
    tried: list[int] = []
    size = max(1, batch_size)
    while True:
        try:
            return work(size), size
        except Exception as err:
            if not is_out_of_memory(err):
                raise
            tried.append(size)
            release_cached_memory()
            if size == 1:
                raise StageError(
                    f"{what}: out of GPU memory even at batch size 1 (tried "
                    f"{', '.join(map(str, tried))}; {device_memory()}); use a smaller model "
                    "or compute type, or a GPU with more memory") from None
            log.warning("%s: out of GPU memory at batch size %d; retrying with %d",
                        what, size, size // 2)
            size //= 2


def release_cached_memory() -> None:
    try:
        import torch
    except ImportError:
        return
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def device_memory() -> str:
    """'GPU 0: 1.2 GiB free of 8.0 GiB', or why that is unknown."""
    try:
        import torch
    except ImportError:
        return "GPU memory unknown (no PyTorch)"
    if not torch.cuda.is_available():
        return "no CUDA device visible"
    index = torch.cuda.current_device()
    free, total = torch.cuda.mem_get_info(index)
    return f"GPU {index}: {free / 2**30:.1f} GiB free of {total / 2**30:.1f} GiB"
