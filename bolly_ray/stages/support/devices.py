"""Where a GPU-kind stage runs: its `device` setting (auto, cpu, cuda) against what exists.

What an attempt reserves follows one rule, `bolly_ray.spec.device_resources` (`cpu`, or
`auto` where the cluster has no whole GPU, means the stage's CPU resources). Here: a run
fits `auto` to the hardware that hosts the stage (cuda where that hardware has a GPU);
settings nobody fitted become cuda inside a worker when PyTorch sees a CUDA device.
"""

from __future__ import annotations

from bolly_ray.core.hardware import HardwareProfile


def fitted_device(device: str, profile: HardwareProfile) -> str:
    """The device a setting means on hardware with this profile: auto is cuda where it has
    a GPU, else cpu."""
    if device != "auto":
        return device
    return "cuda" if profile.gpus else "cpu"


def torch_device(device: str) -> str:
    """The PyTorch device for a setting: auto is cuda when PyTorch sees one, else cpu."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
