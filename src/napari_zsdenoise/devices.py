"""Compute-device selection: CUDA, then Apple MPS, then CPU, always overridable."""

from __future__ import annotations

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
