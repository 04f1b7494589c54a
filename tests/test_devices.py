from __future__ import annotations

import pytest
import torch

from napari_zsdenoise.devices import available_devices, resolve_device


def test_auto_picks_the_best_available_device():
    expected = "cuda" if torch.cuda.is_available() else ("mps" if torch.backends.mps.is_available() else "cpu")
    assert resolve_device(None).type == expected
    assert resolve_device("auto").type == expected
    assert available_devices()[-1] == "cpu"


def test_auto_prefers_cuda_then_mps(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert available_devices() == ["cuda", "mps", "cpu"]
    assert resolve_device("auto").type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto").type == "mps"


def test_explicit_cpu_override():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("CPU".lower()) == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_unavailable_device_is_a_clear_error():
    with pytest.raises(ValueError, match="not available"):
        resolve_device("cuda")


def test_nonsense_device_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("gpu-please")
