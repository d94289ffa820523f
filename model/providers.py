"""Choosing the ONNX Runtime execution provider and model variant, quietly.

``onnxruntime-gpu`` lists ``CUDAExecutionProvider`` as available even on a machine with no
GPU, and creating a CUDA session there logs a loud library-load error before falling back.
So whether a GPU exists is decided here *without* asking ONNX Runtime: the NVIDIA kernel
driver's ``/proc`` entry, else ``libcuda`` via ctypes. ``device="auto"`` never tries CUDA
unless a GPU is really present.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterable
from pathlib import Path

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
VARIANTS = ("fp32", "int8", "fp16")
#: Default variant per provider: fp16 on GPU (tensor cores), int8 dynamic quantisation on CPU.
DEFAULT_VARIANT = {CUDA: "fp16", CPU: "int8"}


class ProviderError(RuntimeError):
    """The requested device cannot be used; the message says why and what to do."""


def gpu_present() -> bool:
    """True when an NVIDIA GPU is visible to this process, without touching ONNX Runtime.

    ``CUDA_VISIBLE_DEVICES=""`` (or ``-1``) hides GPUs, as it does for CUDA itself.
    """
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return False
    gpus = Path("/proc/driver/nvidia/gpus")
    try:
        if gpus.is_dir() and any(gpus.iterdir()):
            return True
    except OSError:
        pass
    # Containers may hide /proc/driver/nvidia while still exposing the device through
    # libcuda; ask the driver API for a device count (silent when the library is absent).
    for name in ("libcuda.so.1", "libcuda.so", "nvcuda.dll"):
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        try:
            if lib.cuInit(0) != 0:
                return False
            count = ctypes.c_int(0)
            return lib.cuDeviceGetCount(ctypes.byref(count)) == 0 and count.value > 0
        except (AttributeError, OSError):
            return False
    return False


def select_provider(
    device: str,
    available_providers: Iterable[str],
    gpu_present: bool,
    variant: str = "auto",
) -> tuple[str, str]:
    """Pick ``(provider, variant)`` for a ``device`` request; pure, so it is unit-tested.

    * ``cpu``: CPU provider.
    * ``cuda``: CUDA provider, or :class:`ProviderError` when there is no GPU or the
      installed onnxruntime has no CUDA provider.
    * ``auto``: CUDA when a GPU is present *and* the provider is available, else CPU.

    ``variant="auto"`` resolves to fp16 on CUDA and int8 on CPU; an explicit variant is kept.
    """
    available = set(available_providers)
    if device not in ("auto", "cuda", "cpu"):
        raise ProviderError(f"device must be auto, cuda or cpu, not {device!r}")
    if variant not in ("auto", *VARIANTS):
        raise ProviderError(f"variant must be auto, fp32, int8 or fp16, not {variant!r}")
    if device == "cuda":
        if not gpu_present:
            raise ProviderError(
                "device='cuda' was requested but no NVIDIA GPU is visible "
                "(no /proc/driver/nvidia/gpus entry, libcuda reports none); use device=cpu or auto"
            )
        if CUDA not in available:
            raise ProviderError(
                "device='cuda' was requested but this onnxruntime has no CUDAExecutionProvider "
                "(install onnxruntime-gpu instead of onnxruntime)"
            )
        provider = CUDA
    elif device == "auto" and gpu_present and CUDA in available:
        provider = CUDA
    else:
        provider = CPU
    return provider, DEFAULT_VARIANT[provider] if variant == "auto" else variant
