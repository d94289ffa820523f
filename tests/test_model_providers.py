"""Provider/variant selection (pure logic) and GPU detection."""

from __future__ import annotations

import pytest

from sentimon.model.providers import (
    CPU,
    CUDA,
    ProviderError,
    gpu_present,
    select_provider,
)

BOTH = [CUDA, CPU]


@pytest.mark.parametrize(
    ("device", "available", "gpu", "expected"),
    [
        ("auto", BOTH, True, (CUDA, "fp16")),
        ("auto", BOTH, False, (CPU, "int8")),  # onnxruntime-gpu on a CPU-only box
        ("auto", [CPU], True, (CPU, "int8")),  # GPU but CPU-only onnxruntime
        ("cpu", BOTH, True, (CPU, "int8")),
        ("cuda", BOTH, True, (CUDA, "fp16")),
    ],
)
def test_select_provider(device, available, gpu, expected):
    assert select_provider(device, available, gpu) == expected


def test_explicit_variant_is_kept():
    assert select_provider("cpu", BOTH, False, "fp32") == (CPU, "fp32")
    assert select_provider("auto", BOTH, True, "int8") == (CUDA, "int8")


def test_cuda_without_gpu_is_a_clear_error():
    with pytest.raises(ProviderError, match="no NVIDIA GPU"):
        select_provider("cuda", BOTH, False)


def test_cuda_without_cuda_provider_is_a_clear_error():
    with pytest.raises(ProviderError, match="onnxruntime-gpu"):
        select_provider("cuda", [CPU], True)


def test_bad_values_rejected():
    with pytest.raises(ProviderError):
        select_provider("tpu", BOTH, False)
    with pytest.raises(ProviderError):
        select_provider("cpu", BOTH, False, "int4")


def test_gpu_present_respects_hidden_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert gpu_present() is False


def test_gpu_present_returns_bool():
    assert isinstance(gpu_present(), bool)
