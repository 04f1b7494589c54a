"""What a run is, for every front end: start, preview, stop, cancel, its convergence and its summary.

The dock drives a :class:`RunController` from a worker thread and shows what it says; the CLI builds its
summary line from the same phrases (:func:`result_phrases`). No torch, Qt or napari import here.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from napari_zsdenoise.convergence import ConvergenceRecord
from napari_zsdenoise.engine import DenoiseRun, ProgressEvent
from napari_zsdenoise.result_notes import result_doubts, stopping_summary
from napari_zsdenoise.run_record import RESUMED, computed_planes, duration_text, iterations_phrase

__all__ = ["RunController", "plane_ranges", "result_phrases"]


def plane_ranges(indices: list[list[int]]) -> str:
    """'3-5, 9' for planes [[2], [3], [4], [8]] (1-based, as people count planes)."""
    if indices and all(len(index) == 1 for index in indices):
        numbers = sorted(index[0] + 1 for index in indices)
        spans, start = [], numbers[0]
        for previous, current in zip(numbers, [*numbers[1:], None]):
            if current != previous + 1:
                spans.append(f"{start}" if start == previous else f"{start}-{previous}")
                start = current
        return ", ".join(spans)
    return ", ".join(str(tuple(index)) for index in indices)


def result_phrases(metadata: Mapping[str, Any]) -> list[str]:
    """What became of a run's planes, a phrase each: iterations (and those kept), why early stopping ended
    them, planes an earlier run finished, planes never reached, a subtracted camera offset."""
    phrases = []
    iterations = iterations_phrase(computed_planes(metadata))
    if iterations:
        phrases.append(iterations)
    stopping = stopping_summary(metadata)
    if stopping:
        phrases.append(stopping)
    earlier = sum(1 for plane in metadata.get("planes", []) if plane.get(RESUMED))
    if earlier:
        phrases.append(f"{earlier} plane(s) from an earlier run")
    if metadata.get("planes_not_denoised"):
        phrases.append(f"planes {plane_ranges(metadata['planes_not_denoised'])} of {metadata['planes_total']} were "
                       "not reached and hold the input unchanged")
    if metadata.get("camera_offset"):
        phrases.append(f"camera offset {metadata['camera_offset']:g} subtracted")
    return phrases


class RunController:
    """One run of the engine as a front end sees it.

    Parameters
    ----------
    run : DenoiseRun
        The run, not yet started.
    single_plane : bool
        The run computes one plane of a larger image (the plane on screen, or a region of it): its
        progress names that plane.
    """

    def __init__(self, run: DenoiseRun, *, single_plane: bool = False) -> None:
        self.run = run
        self.single_plane = single_plane
        self.convergence = ConvergenceRecord()
        self.cancelled = False

    def events(self) -> Iterator[ProgressEvent]:
        """Run to the end, recording every step's loss and held-out scores; yield the steps with a preview.

        The body of a front end's worker thread."""
        for event in self.run:
            self.convergence.add(event)
            if event.preview is not None:
                yield event

    def stop(self) -> None:
        """End after the current iteration and keep what the run has reached."""
        self.run.stop()

    def cancel(self) -> None:
        """End after the current iteration and keep nothing."""
        self.cancelled = True
        self.run.stop()

    @property
    def kept(self) -> bool:
        """Whether the run ended with a result to keep (it was not cancelled and did not fail)."""
        return not self.cancelled and self.run.result is not None

    def progress_text(self, event: ProgressEvent) -> str:
        """'plane 2/12 · 40/100 it · loss 0.0123 · 1 min 5 s elapsed · ETA 3 min 2 s'."""
        plane = f"plane {event.plane + 1}/{event.n_planes} · " if event.n_planes > 1 else (
            f"plane {event.plane_index} · " if self.single_plane and event.plane_index else "")
        left = event.eta_seconds
        return (f"{plane}{event.iteration}/{event.total} it · loss {event.loss:.3g} · "
                f"{duration_text(event.elapsed)} elapsed · ETA {'?' if left is None else duration_text(left)}")

    def finished_metadata(self) -> dict[str, Any]:
        """The run's record with its convergence (every plane's curves and kept check)."""
        self.convergence.finish(self.run.metadata["planes"])
        return {**self.run.metadata, "convergence": self.convergence.as_dict()}

    def summary(self, name: str, *, where: str = "") -> str:
        """The status after the run: what was kept as ``name``, how long it took, what became of its planes
        (``where``: the part of the image it computed), and a line for each doubt."""
        metadata = self.run.metadata
        state = "stopped early, kept" if self.run.stopped_early else "done"
        phrases = [*result_phrases(metadata), *([where] if where else [])]
        doubts = "".join(f"\nWarning: {doubt}." for doubt in result_doubts(metadata))
        return (f"{state}: {name} ({duration_text(metadata['seconds'])} on {metadata['device']})"
                + "".join(f"; {phrase}" for phrase in phrases) + doubts)
