"""The convergence record of a run: training loss and held-out scores per plane (no Qt here).

Fed with the engine's progress events, it keeps what a user needs to judge a run while it
goes (still improving, or fitting the noise?) and afterwards: per plane, the loss at every
iteration whose loss was read, each held-out check, and the iteration early stopping kept.
The dock's plot draws it; the result layer's metadata stores :meth:`ConvergenceRecord.as_dict`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from napari_zsdenoise.engine import ProgressEvent
from napari_zsdenoise.run_record import HOLDOUT_ERROR, kept_iteration

#: The held-out score drawn beside the loss (see methods/_early_stopping.py).
HOLDOUT_SCORE = HOLDOUT_ERROR


@dataclass
class PlaneCurve:
    """One plane's curve: ``(iteration, loss)`` pairs, ``(iteration, held-out error)`` checks,
    and the iteration the result was kept from, once known."""

    plane_index: tuple[int, ...]
    losses: list[tuple[int, float]] = field(default_factory=list)
    checks: list[tuple[int, float]] = field(default_factory=list)
    kept_iteration: int | None = None

    @property
    def best_check(self) -> tuple[int, float] | None:
        """The check with the lowest held-out error so far."""
        return min(self.checks, key=lambda check: check[1]) if self.checks else None

    def as_dict(self) -> dict[str, Any]:
        return {"plane_index": list(self.plane_index), "loss": [list(pair) for pair in self.losses],
                HOLDOUT_SCORE: [list(pair) for pair in self.checks], "kept_iteration": self.kept_iteration}


class ConvergenceRecord:
    """Curves of every plane of a run, built from its progress events."""

    def __init__(self) -> None:
        self.planes: list[PlaneCurve] = []

    @property
    def current(self) -> PlaneCurve | None:
        return self.planes[-1] if self.planes else None

    def add(self, event: ProgressEvent) -> None:
        """Take one progress event (losses repeated between reads on a GPU are kept once)."""
        if self.current is None or self.current.plane_index != event.plane_index:
            self.planes.append(PlaneCurve(tuple(event.plane_index)))
        curve = self.current
        if math.isfinite(event.loss) and (not curve.losses or curve.losses[-1][1] != event.loss):
            curve.losses.append((event.iteration, float(event.loss)))
        if HOLDOUT_SCORE in event.scores:
            curve.checks.append((event.iteration, float(event.scores[HOLDOUT_SCORE])))

    def finish(self, plane_records: list[dict[str, Any]]) -> None:
        """Mark on each plane the iteration its result was kept from (the run's per-plane records)."""
        by_index = {tuple(record.get("index", ())): record for record in plane_records}
        for curve in self.planes:
            record = by_index.get(curve.plane_index, {})
            curve.kept_iteration = kept_iteration(record)

    def as_dict(self) -> dict[str, Any]:
        return {"planes": [curve.as_dict() for curve in self.planes]}
