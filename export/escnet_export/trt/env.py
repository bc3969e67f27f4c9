"""What ``escnet-export trt`` needs from the machine: TensorRT, an NVIDIA GPU; checked before any work."""

from __future__ import annotations

import importlib
import shutil
import subprocess
from dataclasses import dataclass
from types import ModuleType

from escnet_export.errors import MissingRequirementError


@dataclass(frozen=True)
class GpuInfo:
    name: str
    compute_capability: str  # "9.0"


def import_tensorrt() -> ModuleType:
    try:
        return importlib.import_module("tensorrt")
    except ImportError:
        raise MissingRequirementError(
            "TensorRT is not installed: the Python package 'tensorrt' cannot be imported "
            "(install TensorRT 10 on a machine with an NVIDIA GPU); nothing was built"
        ) from None


def detect_gpu() -> GpuInfo | None:
    """The first CUDA device, from torch when it has CUDA, else from nvidia-smi; None if neither sees one."""
    try:
        import torch

        if torch.cuda.is_available():
            major, minor = torch.cuda.get_device_capability(0)
            return GpuInfo(torch.cuda.get_device_name(0), f"{major}.{minor}")
    except ImportError:
        pass
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        out = subprocess.run(
            [smi, "--query-gpu=name,compute_cap", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    first = out.strip().splitlines()[0] if out.strip() else ""
    if "," not in first:
        return None
    name, cc = (s.strip() for s in first.rsplit(",", 1))
    return GpuInfo(name, cc)


def require_tensorrt_and_gpu() -> tuple[ModuleType, GpuInfo]:
    """TensorRT's module and the GPU, or a one-line MissingRequirementError naming what is missing."""
    trt = import_tensorrt()
    gpu = detect_gpu()
    if gpu is None:
        raise MissingRequirementError(
            f"no NVIDIA GPU visible (TensorRT {getattr(trt, '__version__', '?')} is installed, but neither "
            "torch.cuda nor nvidia-smi sees a device); nothing was built"
        )
    return trt, gpu
