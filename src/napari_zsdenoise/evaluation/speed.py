"""Seconds per iteration of a method on this machine."""

from __future__ import annotations

from typing import Any


def time_iterations(
    method: str,
    size: int,
    *,
    iterations: int = 20,
    warmup: int = 3,
    device: str | None = None,
    seed: int = 0,
    threads: int | None = None,
) -> dict[str, Any]:
    """Wall-clock milliseconds per iteration of ``method`` on a ``size`` x ``size`` plane.

    The first ``warmup`` iterations (allocator and kernel start-up) are not counted. The
    timing is the dock's speed probe (:func:`napari_zsdenoise.estimate.probe_seconds_per_iteration`),
    so ``zsdenoise speed`` and the estimated durations measure the same thing. ``threads``: CPU threads
    (None: chosen as a run chooses them, from the cores other processes leave free).
    """
    from napari_zsdenoise.devices import resolve_device
    from napari_zsdenoise.estimate import probe_seconds_per_iteration

    seconds = probe_seconds_per_iteration(method, size, device=device, iterations=iterations, warmup=warmup, seed=seed,
                                          threads=threads)
    return {"method": method, "size": size, "iterations": iterations, "device": str(resolve_device(device)),
            "ms_per_iteration": 1000.0 * seconds}
