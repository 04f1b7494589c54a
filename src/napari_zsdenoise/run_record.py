"""What a run's record says, in one place: the keys of a plane's record and the phrases made from them.

``DenoiseRun.metadata["planes"]`` holds one record per plane. The engine, the methods, the convergence plot,
the CLI and the dock all read the same few keys; they are declared here, with the phrases the CLI's summary
line and the dock's status share. No torch, Qt or napari import here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

#: Iterations the plane ran.
ITERATIONS_DONE = "iterations_done"
#: With early stopping, the check whose ensemble is the plane's result.
BEST_ITERATION = "best_iteration"
#: Why early stopping ended the plane (see ``result_notes.STOP_REASONS``).
STOP_REASON = "stop_reason"
#: How far the held-out error fell from its first check to its best (0..1).
HELD_OUT_GAIN = "held_out_gain"
#: The kept ensemble's gain over the noisy plane in dB, estimated without a clean image.
ESTIMATED_GAIN_DB = "estimated_gain_db"
#: Which signal decided the best check.
STOPPING_SIGNAL = "stopping_signal"
#: A plane that continued the network of the plane before (warm start).
WARM_STARTED = "warm_started"
#: A plane an earlier run finished (a resumed run's record).
RESUMED = "resumed"
#: Scores of a held-out check, in a progress event's ``scores``.
HOLDOUT_ERROR = "holdout_error"
RESIDUAL_CORRELATION = "residual_correlation"


def computed_planes(metadata: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The records of the planes this run computed (not those an earlier run finished)."""
    return [plane for plane in metadata.get("planes", []) if not plane.get(RESUMED)]


def kept_iteration(plane: Mapping[str, Any]) -> int | None:
    """The iteration the plane's result is from: its best check with early stopping, else its last."""
    return plane.get(BEST_ITERATION) or plane.get(ITERATIONS_DONE)


def span(values: Sequence[int]) -> str:
    """'400', or '100-400' for values that differ."""
    return str(values[0]) if min(values) == max(values) else f"{min(values)}-{max(values)}"


def iterations_phrase(planes: Sequence[Mapping[str, Any]]) -> str | None:
    """'400 iterations (kept 375)', '100-400 iterations each (kept 75-375)'; None without planes."""
    planes = [plane for plane in planes if plane.get(ITERATIONS_DONE) is not None]
    if not planes:
        return None
    done = [int(plane[ITERATIONS_DONE]) for plane in planes]
    # An early stop keeps the estimate of its best held-out check, often before the last iteration.
    kept = [int(kept_iteration(plane) or 0) for plane in planes]
    return (f"{span(done)} iterations" + (" each" if len(planes) > 1 else "")
            + (f" (kept {span(kept)})" if kept != done else ""))


def duration_text(seconds: float) -> str:
    """'8.6 s', '42 s', '3 min 5 s', '1 h 2 min': how long something took."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    minutes = round(seconds) // 60
    return f"{minutes} min {round(seconds) % 60} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"
