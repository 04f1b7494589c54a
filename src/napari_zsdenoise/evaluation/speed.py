"""Seconds per iteration of a method on this machine."""

from __future__ import annotations

from typing import Any

import numpy as np


def time_iterations(
    method: str,
    size: int,
    *,
    iterations: int = 20,
    warmup: int = 3,
    device: str | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Wall-clock milliseconds per iteration of ``method`` on a ``size`` x ``size`` plane.

    The first ``warmup`` iterations (allocator and kernel start-up) are not counted.
    """
    from napari_zsdenoise.engine import DenoiseRun

    if size < 1 or iterations < 1 or warmup < 0:
        raise ValueError("size and iterations must be >= 1 and warmup >= 0")
    image = np.random.default_rng(seed).uniform(0.0, 1.0, (size, size)).astype(np.float32)
    run = DenoiseRun(
        image, method, iterations=warmup + iterations, device=device, seed=seed, preview_every=0, preview_interval=0
    )
    stamps = [event.elapsed for event in run]
    counted = stamps[warmup:]
    start = stamps[warmup - 1] if warmup else 0.0
    milliseconds = 1000.0 * (counted[-1] - start) / len(counted)
    return {"method": method, "size": size, "iterations": len(counted), "device": run.metadata["device"],
            "ms_per_iteration": milliseconds}
