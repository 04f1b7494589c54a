"""Process-level settings that make CPU training faster (no torch import here)."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import platform
import sys
from collections.abc import Iterator

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
