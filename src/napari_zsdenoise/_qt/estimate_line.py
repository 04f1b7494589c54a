"""The dock's "estimated:" line: how long a run with the current choices would take, before it starts."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from magicgui.widgets import Label

from napari_zsdenoise import estimate

# Camera moves and shape edits come in bursts; the estimate follows once they settle.
ESTIMATE_DELAY_MS = 150

#: (method, shape, device, precision, overrides) of the run the current choices would start.
Request = tuple[str, tuple[int, ...], str, str, dict[str, Any]]


def _estimate_in_worker(method: str, shape: tuple[int, ...], device: str, precision: str,
                        overrides: dict[str, Any], cancel: threading.Event) -> estimate.DurationEstimate | None:
    """Worker body: the estimate, running the speed probe when nothing is cached."""
    return estimate.estimate_duration(method, shape, device=device, precision=precision, overrides=overrides,
                                      cancel=cancel)


class EstimateLine:
    """Shows the estimate in ``label``: from the probe cache at once, else after a speed probe in a worker
    thread (one at a time, never while a run is running, each failure said once per choice).

    ``request`` gives what the current choices would run (ValueError, TypeError or OSError: why nothing
    can be estimated); ``running`` and ``closed`` say whether a run holds the device and whether the dock is
    gone.
    """

    def __init__(self, label: Label, parent: Any, request: Callable[[], Request], running: Callable[[], bool],
                 closed: Callable[[], bool]) -> None:
        from qtpy.QtCore import QTimer

        self.label, self._request, self._running, self._closed = label, request, running, closed
        self.probe_cancel = threading.Event()
        self._probe: Any = None
        self._probe_key: str | None = None
        self._failed_probes: dict[str, str] = {}
        self._timer = QTimer(parent)
        self._timer.setSingleShot(True)
        self._timer.setInterval(ESTIMATE_DELAY_MS)
        self._timer.timeout.connect(self.refresh)

    def soon(self, *_: Any) -> None:
        """Refresh once a burst of changes (camera moves, shape edits) settles."""
        if not self._closed():
            self._timer.start()

    def cancel_probe(self) -> None:
        """End a running probe: a run or the dock's end needs the device."""
        self.probe_cancel.set()

    def refresh(self, *_: Any) -> None:
        if self._closed():
            return
        try:
            method, shape, device, precision, overrides = request = self._request()
            found = estimate.estimate_duration(method, shape, device=device, precision=precision,
                                               overrides=overrides, probe=False)
        except (ValueError, TypeError, OSError) as exc:
            self.label.value = f"estimated: – ({exc})"
            return
        if found is not None:
            self.label.value = f"estimated: {found.describe()}"
            return
        key = estimate.probe_key(method, device=device, precision=precision, overrides=overrides)
        if key in self._failed_probes:
            self.label.value = f"estimated: – (the speed probe failed: {self._failed_probes[key]})"
        elif self._probe is not None:
            # One probe at a time; when it ends, this is asked again.
            self.label.value = "estimating…"
        elif self._running():
            # A probe now would share the device with the run and time neither right.
            self.label.value = "estimated: – (measured when this run ends)"
        else:
            self._start_probe(key, request)

    def _start_probe(self, key: str, request: Request) -> None:
        from napari.qt.threading import thread_worker

        self.probe_cancel = threading.Event()
        self._probe_key = key
        worker = thread_worker(_estimate_in_worker, start_thread=False)(*request, self.probe_cancel)
        worker.errored.connect(self._on_probe_errored)
        worker.finished.connect(self._on_probe_finished)
        self._probe = worker
        self.label.value = "estimating…"
        worker.start()

    def _on_probe_errored(self, exc: Exception) -> None:
        if not self._closed() and self._probe_key is not None:
            self._failed_probes[self._probe_key] = str(exc) or type(exc).__name__

    def _on_probe_finished(self) -> None:
        if self._closed():
            return
        self._probe = None
        self._probe_key = None
        # The cache now holds the probe's figure (unless it was cancelled or failed).
        self.refresh()
