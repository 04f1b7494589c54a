"""The dock's MID section: train a MID model on the planes of a layer, then denoise with it.

MID is not zero-shot: its model is trained once on many noisy planes of one kind
(``methods/mid/training.py``). This section runs that training in a worker thread on
the chosen layer's planes, shows its progress, and hands the written model file to the
dock so that the ``mid`` method can use it on any layer.
"""

from __future__ import annotations

import time
from pathlib import Path
from queue import Empty, SimpleQueue
from typing import Any, Callable

from magicgui.widgets import CheckBox, Container, FileEdit, Label, ProgressBar, PushButton

from napari_zsdenoise._qt.settings_form import SettingsForm
from napari_zsdenoise.methods.mid.settings import MIDTrainingSettings
from napari_zsdenoise.settings import describe_settings

__all__ = ["MIDTrainingPanel", "default_model_path"]

_REPORT_INTERVAL_MS = 200


class _StopTraining(Exception):
    """Raised from the progress callback to end a fit; the finished rounds stay on disk."""


def default_model_path(layer_name: str, folder: Path | None = None) -> Path:
    """A model file name of its own for a fit on ``layer_name``, in the cache folder unless ``folder`` is given."""
    from napari_zsdenoise.estimate import cache_dir

    folder = Path(folder) if folder is not None else cache_dir() / "mid-models"
    stem = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in layer_name).strip("_") or "layer"
    path = folder / f"{stem}-mid.pt"
    number = 2
    while path.exists():
        path = folder / f"{stem}-mid_{number}.pt"
        number += 1
    return path


def _fit(planes: list, out: Path, settings: MIDTrainingSettings, device: str, sources: dict[str, int],
         reports: SimpleQueue, stop_requested: Callable[[], bool]) -> Path | None:
    """Worker body: the fit, each of its reports put in ``reports`` for the GUI thread; None when stopped."""
    from napari_zsdenoise.methods.mid.training import fit_dataset

    def report(event: Any) -> None:
        if stop_requested():
            raise _StopTraining
        reports.put(event)

    try:
        return fit_dataset(planes, out=out, settings=settings, progress=report, device=device, sources=sources)
    except _StopTraining:
        return None


class MIDTrainingPanel(Container):
    """Train a MID model on every plane of a layer.

    Parameters
    ----------
    layer_source : callable
        Returns the image layer to train on (or None), as chosen in the dock.
    device_source : callable
        Returns the device name chosen in the dock ("auto", "cpu", ...).
    on_trained : callable
        Called with the model path when a fit has written it.
    """

    def __init__(self, layer_source: Callable[[], Any], device_source: Callable[[], str],
                 on_trained: Callable[[Path], None]) -> None:
        super().__init__(labels=False)
        self._layer_source = layer_source
        self._device_source = device_source
        self._on_trained = on_trained
        self._worker: Any = None
        # Shared with the fit's stop check and with the closure below, which must not hold `self`.
        self._state = {"stop": False, "closed": False}
        self._started = 0.0
        self.title = Label(value="MID is trained on your data once: train on this layer's planes, then run mid "
                                 "on any layer of the same kind.")
        self.model_file = FileEdit(label="save model as", mode="w", filter="*.pt",
                                   tooltip="Where the trained model is written; empty: a new file in the cache "
                                           "folder, named after the layer.")
        self.form = SettingsForm(describe_settings(MIDTrainingSettings))
        self.settings_check = CheckBox(text="show training settings", value=False)
        self.advanced_box = Container(labels=False, visible=False, widgets=[self.form.basic, self.form.advanced])
        self.train_button = PushButton(text="Train MID on this layer")
        self.stop_button = PushButton(text="Stop training", enabled=False)
        self.progress_bar = ProgressBar(label="training", min=0, max=1000, value=0)
        self.status_label = Label(value="")
        self.extend([
            self.title,
            Container(widgets=[self.model_file], labels=True),
            self.settings_check,
            self.advanced_box,
            Container(widgets=[self.train_button, self.stop_button], layout="horizontal", labels=False),
            self.progress_bar,
            self.status_label,
        ])
        for label in (self.title, self.status_label):
            label.native.setWordWrap(True)
        self.settings_check.changed.connect(lambda shown: setattr(self.advanced_box, "visible", shown))
        self.train_button.changed.connect(self.start)
        self.stop_button.changed.connect(self.stop)
        state = self._state

        def _on_destroyed(*_: Any) -> None:
            # A fit outlives a closed dock only until its next step; late signals touch nothing.
            state["closed"] = state["stop"] = True

        self.native.destroyed.connect(_on_destroyed)
        from qtpy.QtCore import QTimer

        # The fit reports from its worker thread into a queue; the GUI thread reads it on a timer.
        self._reports: SimpleQueue = SimpleQueue()
        self._report_timer = QTimer(self.native)
        self._report_timer.setInterval(_REPORT_INTERVAL_MS)
        self._report_timer.timeout.connect(self._show_reports)

    @property
    def is_running(self) -> bool:
        return self._worker is not None

    def training_settings(self) -> MIDTrainingSettings:
        """The training settings as shown (the defaults, with what the user changed)."""
        return MIDTrainingSettings(**self.form.overrides())

    def _output_path(self, layer_name: str) -> Path:
        # The raw text: an empty field reads as the working folder ("."), which is not a choice.
        chosen = str(self.model_file.line_edit.value).strip()
        if chosen in ("", "."):
            return default_model_path(layer_name)
        path = Path(chosen).expanduser()
        if path.is_dir():
            return default_model_path(layer_name, path)
        return path if path.suffix else path.with_suffix(".pt")

    def start(self) -> None:
        """Train on the planes of the chosen layer (a worker thread; the dock stays responsive)."""
        import numpy as np

        from napari_zsdenoise.methods.mid.training import checked_planes, planes_for_training

        if self.is_running:
            return
        layer = self._layer_source()
        if layer is None:
            self.status_label.value = "Add or select an image layer to train on first."
            return
        if getattr(layer, "rgb", False):
            self.status_label.value = "RGB layers are not supported; split the channels first."
            return
        try:
            settings = self.training_settings()
            data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
            # Checked here as the fit would check them, so that a bad layer is refused before any computing.
            planes = checked_planes(planes_for_training(np.asarray(data)), settings)
            out = self._output_path(layer.name)
            if out.exists():
                raise ValueError(f"{out} exists; choose another file name")
            out.parent.mkdir(parents=True, exist_ok=True)
        except (ValueError, TypeError, OSError) as exc:
            self.status_label.value = f"Cannot train: {exc}"
            return
        from napari.qt.threading import thread_worker

        self._state["stop"] = False
        self._started = time.perf_counter()
        self._reports = SimpleQueue()
        worker = thread_worker(_fit, start_thread=False)(
            planes, out, settings, self._device_source(), {layer.name: len(planes)}, self._reports,
            lambda state=self._state: state["stop"])
        worker.returned.connect(self._on_returned)
        worker.errored.connect(self._on_errored)
        worker.finished.connect(self._on_finished)
        self._worker = worker
        self.train_button.enabled, self.stop_button.enabled = False, True
        self.progress_bar.value = 0
        self.status_label.value = (f"Training on {len(planes)} plane(s) of {layer.name}: {settings.rounds} round(s) of "
                                   f"{settings.iterations_per_round} iterations → {out}")
        self._report_timer.start()
        worker.start()

    def stop(self) -> None:
        """End the fit at its next step; finished rounds are kept beside the model file to continue later."""
        if self.is_running:
            self.request_stop()
            self.status_label.value = "Stopping the training…"

    def request_stop(self) -> None:
        """Ask a running fit to end, touching no Qt object (safe while the dock is being destroyed)."""
        self._state["stop"] = True

    def _show_reports(self) -> None:
        """Show what the fit reported since the last look (in order)."""
        if self._state["closed"]:
            return
        while True:
            try:
                event = self._reports.get_nowait()
            except Empty:
                return
            self._on_progress(event)

    def _on_progress(self, event: Any) -> None:
        if event.stage == "train":
            done = (event.round - 1) * event.iterations + event.iteration
            self.progress_bar.value = int(1000 * done / max(1, event.rounds * event.iterations))
            self.status_label.value = (f"round {event.round}/{event.rounds} · {event.iteration}/{event.iterations} it · "
                                       f"loss {event.loss:.4g} · {event.elapsed:.0f} s")
        elif event.message:
            self.status_label.value = event.message
            if event.stage == "warning":
                from napari.utils.notifications import show_warning

                show_warning(event.message)

    def _on_returned(self, path: Path | None) -> None:
        if self._state["closed"]:
            return
        self._show_reports()
        if path is None:
            self.status_label.value = ("Training stopped; the finished rounds are kept, and training the same layer "
                                       "into the same file continues from them.")
            return
        self.progress_bar.value = 1000
        self.status_label.value = (f"Trained in {time.perf_counter() - self._started:.0f} s: {path}. "
                                   f"Method mid now uses it.")
        self._on_trained(Path(path))

    def _on_errored(self, exc: Exception) -> None:
        if self._state["closed"]:
            return
        self.status_label.value = f"Training failed: {exc}"

    def _on_finished(self) -> None:
        if self._state["closed"]:
            return
        self._report_timer.stop()
        self._worker = None
        self.train_button.enabled, self.stop_button.enabled = True, False
