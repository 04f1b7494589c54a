from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_zsdenoise import DenoiseRun
from napari_zsdenoise.devices import available_devices, resolve_device

from conftest import TINY


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


def test_precision_auto_follows_the_device_and_the_method(monkeypatch):
    import torch

    import napari_zsdenoise.devices as devices

    cpu = torch.device("cpu")
    monkeypatch.setattr(devices, "_cpu_has_bf16_instructions", lambda: True)
    assert devices.resolve_precision("auto", cpu) == "bf16"
    assert devices.resolve_precision("auto", cpu, method_allows=False) == "fp32"
    assert devices.resolve_precision("fp32", cpu) == "fp32"
    monkeypatch.setattr(devices, "_cpu_has_bf16_instructions", lambda: False)
    assert devices.resolve_precision("auto", cpu) == "fp32"
    assert devices.resolve_precision("bf16", cpu) == "bf16"  # asked for explicitly: slow but allowed
    with pytest.raises(ValueError, match="fp32 only"):
        devices.resolve_precision("bf16", cpu, method_allows=False)
    with pytest.raises(ValueError, match="precision must be one of"):
        devices.resolve_precision("fp16", cpu)


@pytest.mark.parametrize("capability, expected", [((8, 0), "bf16"), ((9, 0), "bf16"), ((7, 5), "fp32")])
def test_precision_auto_on_cuda_needs_ampere_or_newer(monkeypatch, capability, expected):
    # Simulated: no CUDA device is needed to decide from its compute capability.
    import torch

    from napari_zsdenoise.devices import resolve_precision

    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert resolve_precision("auto", torch.device("cuda:0")) == expected


def test_apple_mps_stays_in_fp32():
    import torch

    from napari_zsdenoise.devices import resolve_precision

    assert resolve_precision("auto", torch.device("mps")) == "fp32"


def test_losses_are_read_every_step_on_the_cpu_and_rarely_on_a_gpu():
    from napari_zsdenoise.engine import LOSS_READ_EVERY, loss_is_read

    assert all(loss_is_read("cpu", i, False) for i in range(1, 50))
    cuda = [i for i in range(1, 3 * LOSS_READ_EVERY + 1) if loss_is_read("cuda", i, False)]
    assert cuda == [LOSS_READ_EVERY, 2 * LOSS_READ_EVERY, 3 * LOSS_READ_EVERY]
    assert loss_is_read("cuda", 7, True)  # a preview is due: the host waits anyway


def test_a_gpu_running_out_of_memory_is_a_one_line_error_that_keeps_finished_planes(monkeypatch, small_noisy):
    # The CUDA-specific parts (the error type, the free-memory query, the cache release) are
    # simulated, so that the path is tested on machines without a GPU.
    from napari_zsdenoise import devices
    from napari_zsdenoise.methods.mpi import MPIMethod

    released = []
    monkeypatch.setattr(devices, "free_memory_bytes", lambda device: 512 * 2**20)
    monkeypatch.setattr(devices, "release_cached_memory", lambda device: released.append(str(device)))
    real_step, steps = MPIMethod.step, []

    def step(self):
        steps.append(1)
        if len(steps) > 2:  # the second plane's first step
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_step(self)

    monkeypatch.setattr(MPIMethod, "step", step)
    saved = []
    run = DenoiseRun(np.stack([small_noisy, small_noisy]), "mpi-fast", device="cpu", iterations=2, **TINY,
                     on_plane_finished=lambda index, estimate, record: saved.append(index))
    with pytest.raises(devices.OutOfDeviceMemory) as caught:
        for _ in run:
            pass
    message = str(caught.value)
    assert "\n" not in message and "512 MB free" in message and "ran out of memory on a" in message
    assert f"{small_noisy.shape[0]}x{small_noisy.shape[1]} plane" in message
    assert released == ["cpu"] and saved == [(0,)]


@pytest.mark.parametrize("error, expected", [
    (torch.cuda.OutOfMemoryError("CUDA out of memory"), True),
    (RuntimeError("MPS backend out of memory (MPS allocated: 1 GB)"), True),
    (RuntimeError("[enforce fail at alloc_cpu.cpp] DefaultCPUAllocator: can't allocate memory"), True),
    (RuntimeError("shapes cannot be multiplied"), False),
    (ValueError("out of memory"), False),
])
def test_out_of_memory_errors_are_recognised_on_every_device(error, expected):
    from napari_zsdenoise.devices import is_out_of_memory

    assert is_out_of_memory(error) is expected
