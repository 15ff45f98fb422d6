"""Where work runs and in which precision (device.py); the GPU is simulated."""
from __future__ import annotations

import pytest
import torch

from synthgen_lib.device import amp_dtype, default_device, has_native_bf16


@pytest.fixture
def gpu(monkeypatch):
    """A CUDA GPU of the compute capability asked for; torch's own check answers yes to bf16 for
    every one of them, as it does for a T4, which only emulates it."""
    def make(capability):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    return make


def test_a_t4_trains_in_fp16_and_an_ampere_or_later_gpu_in_bf16(gpu):
    gpu((7, 5))  # T4
    assert not has_native_bf16() and amp_dtype("cuda") == torch.float16
    gpu((8, 0))  # A100
    assert has_native_bf16() and amp_dtype("cuda") == torch.bfloat16
    gpu((9, 0))  # H100, H200
    assert amp_dtype(torch.device("cuda")) == torch.bfloat16


def test_without_a_gpu_work_runs_on_the_cpu_unless_told_otherwise(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert default_device() == torch.device("cpu") and default_device("meta") == torch.device("meta")
    assert not has_native_bf16()
