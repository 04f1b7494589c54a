"""Compute-device selection: CUDA, then Apple MPS, then CPU, always overridable."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def available_devices() -> list[str]:
    """Device names usable on this machine, best first (always ends with ``"cpu"``)."""
    import torch

    names = []
    if torch.cuda.is_available():
        names.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        names.append("mps")
    names.append("cpu")
    return names


def resolve_device(requested: str | None = None) -> torch.device:
    """Return ``requested`` as a torch device, or the best available when None/``"auto"``.

    Raises
    ------
    ValueError
        If the requested device type is not available here.
    """
    import torch

    if requested is None or str(requested).lower() == "auto":
        return torch.device(available_devices()[0])
    try:
        device = torch.device(requested)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"unknown device {requested!r}; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'") from exc
    if device.type not in available_devices():
        raise ValueError(f"device {requested!r} is not available here; available: {', '.join(available_devices())}")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"device {requested!r} does not exist; this machine has {torch.cuda.device_count()} CUDA device(s)")
    return device


#: Choices of the run-level ``precision`` setting.
PRECISIONS = ("auto", "fp32", "bf16")


def _cpu_has_bf16_instructions() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX); read from /proc/cpuinfo on Linux."""
    try:
        with open("/proc/cpuinfo") as handle:
            flags = next((line for line in handle if line.startswith("flags")), "")
    except OSError:
        return False
    return any(flag in flags.split() for flag in ("avx512_bf16", "amx_bf16"))


def supports_bf16(device: torch.device) -> bool:
    """Whether bfloat16 autocast is worth using on ``device``: CPUs with bf16 instructions,
    CUDA devices of compute capability 8.0 (Ampere) or newer."""
    import torch

    if device.type == "cpu":
        return _cpu_has_bf16_instructions()
    if device.type == "cuda":
        return torch.cuda.get_device_capability(device) >= (8, 0)
    return False


def resolve_precision(requested: str, device: torch.device, *, method_allows: bool = True) -> str:
    """``"fp32"`` or ``"bf16"``: what a run computes in.

    ``"auto"`` picks bf16 where :func:`supports_bf16` and the method allow it, else fp32.

    Raises
    ------
    ValueError
        For an unknown choice, or bf16 asked of a method that computes in fp32 only.
    """
    choice = str(requested).lower()
    if choice not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {requested!r}")
    if choice == "auto":
        return "bf16" if method_allows and supports_bf16(device) else "fp32"
    if choice == "bf16" and not method_allows:
        raise ValueError("this method computes in fp32 only; use precision 'auto' or 'fp32'")
    return choice


class OutOfDeviceMemory(RuntimeError):
    """A run needed more memory than its device had; the message says what to change."""


#: What an allocation failure says, lower-cased: CUDA and MPS ("out of memory"), torch's CPU allocator
#: ("can't allocate memory"), numpy ("unable to allocate") and the C library ("cannot allocate memory").
_OUT_OF_MEMORY_WORDS = ("out of memory", "can't allocate memory", "cannot allocate memory", "unable to allocate",
                        "failed to allocate", "could not allocate")


def is_out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` is a device running out of memory (CUDA, MPS or the CPU allocator), not yet
    turned into an :class:`OutOfDeviceMemory` (which passes on as it is)."""
    import torch

    if isinstance(error, OutOfDeviceMemory):
        return False
    if isinstance(error, MemoryError):
        return True
    kinds = tuple(kind for kind in (getattr(torch, "OutOfMemoryError", None),
                                    getattr(torch.cuda, "OutOfMemoryError", None)) if kind is not None)
    if kinds and isinstance(error, kinds):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and any(words in text for words in _OUT_OF_MEMORY_WORDS)


def free_memory_bytes(device: torch.device) -> int | None:
    """Free memory on a CUDA ``device`` in bytes; None where torch cannot tell (CPU, MPS)."""
    import torch

    if device.type != "cuda":
        return None
    free, _total = torch.cuda.mem_get_info(device)
    return int(free)


def release_cached_memory(device: torch.device) -> None:
    """Give memory the caching allocator holds back to the device (after running out of it)."""
    import torch

    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps" and hasattr(torch, "mps"):
        torch.mps.empty_cache()


#: The advice of :func:`out_of_memory_error` when its caller gives none.
GENERAL_OUT_OF_MEMORY_ADVICE = "denoise a smaller region of the image, or choose a smaller network in the settings"


def out_of_memory_error(device: torch.device, plane_shape: tuple[int, ...] | None = None, *,
                        advice: str | None = None, during: str = "") -> OutOfDeviceMemory:
    """The one-line error for a plane (of ``plane_shape``) that did not fit on ``device``, with what to change.

    ``advice`` names what helps the method at hand (its settings' ``out_of_memory_advice``), by default
    :data:`GENERAL_OUT_OF_MEMORY_ADVICE`; another device is suggested only to a run not on the CPU already.
    Without ``plane_shape`` the message says ``during`` what it ran out (e.g. "while loading the weights").
    """
    release_cached_memory(device)
    free = free_memory_bytes(device)
    where = f"{device}" + (f" ({free / 2**20:.0f} MB free after clearing its cache)" if free is not None else "")
    if plane_shape is not None:
        height, width = plane_shape[-2:]
        during = f"on a {height}x{width} plane"
    remedies = [advice or GENERAL_OUT_OF_MEMORY_ADVICE]
    if device.type != "cpu":
        remedies.append("run on another device (device='cpu', CLI --device cpu)")
    return OutOfDeviceMemory(f"{where} ran out of memory {during or 'while setting up the run'}: "
                             f"{', or '.join(remedies)}")


@contextlib.contextmanager
def out_of_memory_as_error(device: torch.device, plane_shape: tuple[int, ...] | None = None, *,
                           advice: str | None = None, during: str = "") -> Iterator[None]:
    """Turn an allocation failure in the block into :func:`out_of_memory_error`'s one-line error
    (other errors pass as they are)."""
    try:
        yield
    except (RuntimeError, MemoryError) as error:
        if not is_out_of_memory(error):
            raise
        raise out_of_memory_error(device, plane_shape, advice=advice, during=during) from None


def available_memory_bytes(device: torch.device) -> int | None:
    """Memory a run could still take on ``device``: free GPU memory on CUDA, the host's
    available memory (Linux ``MemAvailable``, else free pages) on the CPU; None where
    unknown (MPS shares host memory with no reliable query)."""
    import os

    if device.type == "cuda":
        return free_memory_bytes(device)
    if device.type != "cpu":
        return None
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def describe_device(device: torch.device) -> str:
    """'cuda (NVIDIA H100)', 'cpu (x86_64, 2 threads)': the device for a model card or provenance."""
    import platform

    import torch

    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        threads = torch.get_num_threads()
        return f"cpu ({platform.processor() or platform.machine()}, {threads} thread{'' if threads == 1 else 's'})"
    return device.type
