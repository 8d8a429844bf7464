"""Halving the batch on GPU out-of-memory, with the errors PyTorch and CTranslate2 really raise."""

from __future__ import annotations

import importlib.util

import pytest

from bolly_ray.errors import StageError
from bolly_ray.stages.support.gpu_memory import is_out_of_memory, with_batch_halving


def out_of_memory() -> BaseException:
    """What CUDA raises: torch's own class where torch is installed, else CTranslate2's."""
    if importlib.util.find_spec("torch") is not None:
        import torch

        return torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    return RuntimeError("CUDA failed with error out of memory")


def test_the_batch_halves_until_the_work_fits() -> None:
    tried: list[int] = []

    def work(batch: int) -> str:
        tried.append(batch)
        if batch > 3:
            raise out_of_memory()
        return f"done at {batch}"

    assert with_batch_halving(work, 16, what="asr") == ("done at 2", 2)
    assert tried == [16, 8, 4, 2]


def test_out_of_memory_at_batch_one_fails_with_the_numbers() -> None:
    def work(batch: int) -> None:
        raise out_of_memory()

    with pytest.raises(StageError) as caught:
        with_batch_halving(work, 5, what="diarize")
    message = str(caught.value)
    assert message.startswith("diarize: out of GPU memory even at batch size 1 (tried 5, 2, 1; ")
    assert "no CUDA device visible" in message or "no PyTorch" in message


def test_other_errors_are_not_retried() -> None:
    calls: list[int] = []

    def work(batch: int) -> None:
        calls.append(batch)
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        with_batch_halving(work, 8, what="asr")
    assert calls == [8]


@pytest.mark.parametrize(("error", "expected"), [
    (RuntimeError("CUDA failed with error out of memory"), True),  # CTranslate2
    (RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling cublasCreate"), True),
    (RuntimeError("Expected all tensors to be on the same device"), False),
    (ValueError("out of memory"), False),
])
def test_out_of_memory_is_recognised_by_type_and_message(error: BaseException,
                                                          expected: bool) -> None:
    assert is_out_of_memory(error) is expected


def test_a_library_whose_parent_package_is_missing_is_simply_not_installed() -> None:
    from bolly_ray.core.modules import installed

    assert installed("json") and installed("bolly_ray.stages")
    assert not installed("no_such_parent_pkg.audio")  # find_spec alone would raise here


def test_one_rule_decides_whether_a_gpu_kind_stage_needs_a_gpu() -> None:
    from bolly_ray.spec import Resources, device_resources

    gpu, cpu = Resources(cpus=1, gpus=1), Resources(cpus=2)
    assert device_resources("cpu", 4, gpu, cpu) is cpu
    assert device_resources("auto", 0.5, gpu, cpu) is cpu
    assert device_resources("auto", 1, gpu, cpu) is gpu
    assert device_resources("cuda", 0, gpu, cpu) is gpu  # asked for: preflight says it cannot
