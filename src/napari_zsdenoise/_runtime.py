"""Process-level settings that make CPU training faster (no torch import here)."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

# glibc's mallopt parameters (malloc.h) and their documented defaults.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_DEFAULT_THRESHOLD = 128 * 1024
_LARGE = 1 << 30


def _glibc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


@contextlib.contextmanager
def large_allocations_on_the_heap() -> Iterator[bool]:
    """Keep large allocations on the heap while the block runs (glibc only; elsewhere a no-op).

    By default glibc serves each large tensor from a fresh ``mmap`` and returns it on
    free, so every training step faults its activations' pages in again. Raising the
    mmap and trim thresholds reuses freed heap memory instead; the arithmetic is the
    same. Afterwards the thresholds return to glibc's defaults and free heap memory is
    given back to the system. Yields whether the change was made.
    """
    libc = _glibc()
    if libc is None:
        yield False
        return
    libc.mallopt(_M_MMAP_THRESHOLD, _LARGE)
    libc.mallopt(_M_TRIM_THRESHOLD, _LARGE)
    try:
        yield True
    finally:
        libc.mallopt(_M_MMAP_THRESHOLD, _DEFAULT_THRESHOLD)
        libc.mallopt(_M_TRIM_THRESHOLD, _DEFAULT_THRESHOLD)
        libc.malloc_trim(0)


def openmp_threads_sleep_when_idle() -> bool:
    """Ask OpenMP's worker threads to sleep between parallel regions instead of spinning.

    For interactive use (napari): spinning threads compete with the GUI thread for the
    cores, and a run then slows down several times over (benchmarks/thread_policy.py).
    It takes effect only before torch is first imported, and a value the user set in
    ``OMP_WAIT_POLICY`` is kept. Returns whether the policy in force is passive.
    """
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE"


#: Environment variables by which a user or a job scheduler fixes the number of CPU threads.
THREAD_COUNT_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
#: Seconds of a run between two looks at what other processes take of the cores.
THREAD_CHECK_SECONDS = 5.0
#: Seconds the first look at the cores takes, before any computing.
FIRST_LOOK_SECONDS = 0.2


def _busy_seconds(cpus: set[int]) -> float | None:
    """Seconds the CPUs in ``cpus`` have spent busy since boot (Linux ``/proc/stat``); None elsewhere."""
    try:
        with open("/proc/stat") as stat:
            lines = [line.split() for line in stat if line.startswith("cpu") and line[3:4].isdigit()]
        ticks = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        return None
    busy = 0
    for fields in lines:
        if int(fields[0][3:]) in cpus:
            user, nice, system, _idle, _iowait, irq, softirq, steal = (int(value) for value in fields[1:9])
            busy += user + nice + system + irq + softirq + steal
    return busy / ticks


def usable_cpus() -> set[int]:
    """The CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return set(os.sched_getaffinity(0))
    return set(range(os.cpu_count() or 1))


class OtherProcessesLoad:
    """How many of this process's CPUs other processes keep busy: the CPUs' busy time less this process's
    own (all its threads), over the time since the last look. Linux only (:attr:`available`)."""

    def __init__(self) -> None:
        self._cpus = usable_cpus()
        self._mark = self._read()

    @property
    def available(self) -> bool:
        return self._mark is not None

    def _read(self) -> tuple[float, float, float] | None:
        busy = _busy_seconds(self._cpus)
        if busy is None:
            return None
        own = os.times()
        return busy, own.user + own.system, time.monotonic()

    def busy_cores(self) -> float | None:
        """Cores other processes kept busy since the last call (or since this object was made)."""
        mark, self._mark = self._mark, self._read()
        if mark is None or self._mark is None or self._mark[2] <= mark[2]:
            return None
        others = (self._mark[0] - mark[0]) - (self._mark[1] - mark[1])
        return max(0.0, others / (self._mark[2] - mark[2]))


class CpuThreads:
    """The CPU thread count of a run: the cores other processes leave free, looked at again every
    :data:`THREAD_CHECK_SECONDS` while the run computes, unless the count is fixed.

    A core-bound process on one of two cores slows a two-thread run several times over (its threads wait
    for each other at every parallel region), while one thread on the free core runs at its full speed
    (benchmarks/thread_policy.py). A count given here (``threads``) or in ``OMP_NUM_THREADS`` /
    ``MKL_NUM_THREADS`` is kept as it is (``threads`` is checked by the run). ``get_threads`` and
    ``set_threads`` are torch's.
    """

    def __init__(self, threads: int | None, get_threads: Callable[[], int], set_threads: Callable[[int], None]) -> None:
        self._get, self._set = get_threads, set_threads
        self._restore = get_threads()
        fixed_by = next((name for name in THREAD_COUNT_VARIABLES if os.environ.get(name)), None)
        if threads:
            self.policy = f"fixed (threads={threads})"
        elif fixed_by:
            self.policy = f"fixed ({fixed_by}={os.environ[fixed_by]})"
        else:
            self.policy = "automatic"
        self._fixed = threads or None
        self._ceiling = self._restore
        self._load: OtherProcessesLoad | None = None
        self._next_look = 0.0
        self.first_look: dict[str, Any] | None = None
        self.changes: list[dict[str, Any]] = []

    @property
    def automatic(self) -> bool:
        return self.policy == "automatic"

    def start(self) -> int:
        """Choose the count for the run's start (a short look at the cores when automatic)."""
        if self._fixed:
            self._set(self._fixed)
        elif self.automatic:
            self._load = OtherProcessesLoad()
            if self._load.available:
                time.sleep(FIRST_LOOK_SECONDS)
                self._follow(self._load.busy_cores(), iteration=0)
        return self._get()

    def look(self, iteration: int) -> None:
        """Follow the other processes' load, at most every :data:`THREAD_CHECK_SECONDS` (cheap otherwise)."""
        if self._load is None or not self._load.available or time.monotonic() < self._next_look:
            return
        self._follow(self._load.busy_cores(), iteration)

    def _follow(self, busy: float | None, iteration: int) -> None:
        self._next_look = time.monotonic() + THREAD_CHECK_SECONDS
        if busy is None:
            return
        # A core counts as taken once other processes keep it busy half the time or more.
        threads = max(1, self._ceiling - int(busy + 0.5))
        look = {"iteration": iteration, "threads": threads, "other_busy_cores": round(busy, 2)}
        if iteration == 0:
            self.first_look = look
        elif threads != self._get():
            self.changes.append(look)
        self._set(threads)

    def finish(self) -> dict[str, Any]:
        """The provenance of the choice; torch's count goes back to what it was before the run."""
        record: dict[str, Any] = {"policy": self.policy, "threads": self._get()}
        if self.first_look is not None:
            record["at_start"] = self.first_look
        if self.changes:
            record["changes"] = self.changes
        self._set(self._restore)
        return record
