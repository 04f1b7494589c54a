"""The CPU thread count of a run: chosen from the cores other processes leave free, followed while the
run computes, fixed when asked, and recorded."""

from __future__ import annotations

import numpy as np
import pytest

from napari_zsdenoise import _runtime
from napari_zsdenoise._runtime import CpuThreads, OtherProcessesLoad


class Torch:
    """Stands in for torch's get/set_num_threads."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self.calls: list[int] = []

    def get(self) -> int:
        return self.threads

    def set(self, threads: int) -> None:
        self.calls.append(threads)
        self.threads = threads


class Load:
    """Other processes' busy cores, as the next looks will see them."""

    available = True

    def __init__(self, *busy: float) -> None:
        self.busy = list(busy)

    def busy_cores(self) -> float:
        return self.busy.pop(0)


@pytest.fixture
def no_waiting(monkeypatch):
    monkeypatch.setattr(_runtime, "FIRST_LOOK_SECONDS", 0.0)
    monkeypatch.setattr(_runtime, "THREAD_CHECK_SECONDS", 0.0)
    for name in _runtime.THREAD_COUNT_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def _automatic(monkeypatch, torch: Torch, *busy: float) -> CpuThreads:
    monkeypatch.setattr(_runtime, "OtherProcessesLoad", lambda: Load(*busy))
    return CpuThreads(None, torch.get, torch.set)


def test_a_core_another_process_keeps_busy_is_left_to_it_and_taken_back_when_it_is_free(monkeypatch, no_waiting):
    torch = Torch(4)
    threads = _automatic(monkeypatch, torch, 1.1, 1.0, 0.2, 2.6)
    assert threads.start() == 3
    threads.look(10)  # still busy: no change
    threads.look(20)  # free again
    assert torch.threads == 4
    threads.look(30)  # 2.6 busy cores: three are counted as taken
    assert torch.threads == 1
    record = threads.finish()
    assert record["policy"] == "automatic" and record["at_start"] == {"iteration": 0, "threads": 3,
                                                                     "other_busy_cores": 1.1}
    assert [(change["iteration"], change["threads"]) for change in record["changes"]] == [(20, 4), (30, 1)]
    assert torch.threads == 4  # torch's count is what it was before the run


def test_a_core_busy_less_than_half_the_time_is_not_counted_and_one_thread_always_runs(monkeypatch, no_waiting):
    torch = Torch(2)
    assert _automatic(monkeypatch, torch, 0.4).start() == 2
    assert _automatic(monkeypatch, torch, 5.0).start() == 1


def test_a_count_given_to_the_run_or_by_the_environment_is_kept(monkeypatch, no_waiting):
    torch = Torch(4)
    monkeypatch.setattr(_runtime, "OtherProcessesLoad", lambda: pytest.fail("no look at the cores when fixed"))
    fixed = CpuThreads(3, torch.get, torch.set)
    assert fixed.start() == 3 and fixed.policy == "fixed (threads=3)"
    fixed.look(10)
    assert fixed.finish() == {"policy": "fixed (threads=3)", "threads": 3} and torch.threads == 4
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    by_environment = CpuThreads(None, torch.get, torch.set)
    assert by_environment.start() == 4 and torch.calls == [3, 4]  # left as torch read it
    assert by_environment.finish()["policy"] == "fixed (OMP_NUM_THREADS=2)"


def test_the_load_of_other_processes_is_measured_without_this_process_own_work():
    load = OtherProcessesLoad()
    if not load.available:
        pytest.skip("no /proc/stat on this system")
    total = 0.0
    for _ in range(2_000_000):  # this process's own work is not another process's load
        total += 1.0
    busy = load.busy_cores()
    assert busy is not None and 0.0 <= busy <= len(_runtime.usable_cpus())


def test_a_run_records_its_threads_and_gives_torch_its_count_back(small_noisy):
    import torch

    from napari_zsdenoise import DenoiseRun

    before = torch.get_num_threads()
    run = DenoiseRun(small_noisy, "bsn-fast", device="cpu", iterations=2, threads=1, preview_every=0)
    for _ in run:
        assert torch.get_num_threads() == 1
    assert run.metadata["cpu_threads"] == {"policy": "fixed (threads=1)", "threads": 1}
    assert run.metadata["torch_threads"] == 1 and torch.get_num_threads() == before
    with pytest.raises(ValueError, match="threads must be a whole number"):
        DenoiseRun(small_noisy, "bsn-fast", device="cpu", threads=-1)
    automatic = DenoiseRun(small_noisy, "bsn-fast", device="cpu", iterations=1, preview_every=0)
    for _ in automatic:
        pass
    assert automatic.metadata["cpu_threads"]["policy"] in ("automatic", "fixed (OMP_NUM_THREADS="
                                                           f"{_runtime.os.environ.get('OMP_NUM_THREADS')})")
    assert np.isfinite(automatic.result).all()
