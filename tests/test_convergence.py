"""The convergence record built from progress events (no Qt)."""

from __future__ import annotations

import math

from napari_zsdenoise.convergence import ConvergenceRecord
from napari_zsdenoise.engine import ProgressEvent


def _event(iteration, loss, plane_index=(), scores=None):
    return ProgressEvent(iteration, 10, loss, None, 0.0, 0, 1, plane_index, scores or {})


def test_losses_checks_and_planes_are_recorded_once_each():
    record = ConvergenceRecord()
    record.add(_event(1, 0.5, (0,)))
    record.add(_event(2, 0.5, (0,)))  # a loss not read again on a GPU: kept once
    record.add(_event(3, 0.4, (0,), {"holdout_error": 0.3}))
    record.add(_event(4, float("nan"), (0,)))
    record.add(_event(1, 0.6, (1,), {"holdout_error": 0.2}))
    first, second = record.planes
    assert first.losses == [(1, 0.5), (3, 0.4)] and first.checks == [(3, 0.3)]
    assert second.plane_index == (1,) and second.best_check == (1, 0.2)
    record.finish([{"index": [0], "best_iteration": 3}, {"index": [1], "iterations_done": 7}])
    assert [curve.kept_iteration for curve in record.planes] == [3, 7]
    saved = record.as_dict()["planes"][0]
    assert saved == {"plane_index": [0], "loss": [[1, 0.5], [3, 0.4]], "holdout_error": [[3, 0.3]], "kept_iteration": 3}
    assert not any(math.isnan(v) for _, v in first.losses)
