"""The napari dock widget: pick a layer and a method, watch the result converge."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, Label, ProgressBar, PushButton, SpinBox

from napari_zsdenoise._runtime import openmp_threads_sleep_when_idle

# Before the engine can import torch: the GUI thread must not fight spinning OpenMP threads.
openmp_threads_sleep_when_idle()

from napari_zsdenoise._qt.convergence_plot import ConvergencePlot
from napari_zsdenoise._qt.settings_form import WEIGHTS_CHOICES, WEIGHTS_FILE, WEIGHTS_RANDOM, WEIGHTS_SHIPPED, SettingsForm
from napari_zsdenoise.convergence import ConvergenceRecord
from napari_zsdenoise.engine import DenoiseRun, ProgressEvent
from napari_zsdenoise.methods import get_method_spec, method_names, recommended_method
from napari_zsdenoise.normalization import NORMALIZATIONS

__all__ = ["WEIGHTS_CHOICES", "WEIGHTS_FILE", "WEIGHTS_RANDOM", "WEIGHTS_SHIPPED", "DenoiseWidget"]

if TYPE_CHECKING:
    import napari


def _iterate(run: DenoiseRun, convergence: ConvergenceRecord):
    """Worker body: record every event's loss and scores, forward the events that carry a
    preview, then hand back the run."""
    for event in run:
        convergence.add(event)
        if event.preview is not None:
            yield event
    return run


def _plane_ranges(indices: list[list[int]]) -> str:
    """'3-5, 9' for planes [[2], [3], [4], [8]] (1-based, as the status line counts)."""
    if indices and all(len(index) == 1 for index in indices):
        numbers = sorted(index[0] + 1 for index in indices)
        spans, start = [], numbers[0]
        for previous, current in zip(numbers, [*numbers[1:], None]):
            if current != previous + 1:
                spans.append(f"{start}" if start == previous else f"{start}-{previous}")
                start = current
        return ", ".join(spans)
    return ", ".join(str(tuple(index)) for index in indices)


def _format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


class DenoiseWidget(Container):
    """Dock widget running any registered method on an image layer in a worker thread.

    One preview layer is updated in place while the method runs. *Stop* ends the run and
    keeps the current estimate as a new layer; *Cancel* ends it and keeps nothing.
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        from napari_zsdenoise.devices import PRECISIONS, available_devices

        super().__init__(labels=True)
        self._viewer = napari_viewer
        self._run: DenoiseRun | None = None
        self._worker: Any = None
        self._cancelled = False
        self._preview_layer: Any = None
        self._source: Any = None
        self._started = 0.0

        self.layer_combo = ComboBox(label="image", choices=self._image_layer_choices)
        recommended = recommended_method()
        self.method_combo = ComboBox(
            label="method", value=recommended,
            choices=[(f"{name}  (recommended)" if name == recommended else name, name) for name in method_names()],
            tooltip=f"{recommended} is recommended: {get_method_spec(recommended).recommendation}")
        # The method's own settings, generated from their descriptions (see settings_form.py).
        self.settings_box = Container(labels=False)
        self.advanced_check = CheckBox(text="show advanced settings", value=False)
        self.advanced_box = Container(labels=False, visible=False)
        self.form: SettingsForm | None = None
        self.device_combo = ComboBox(label="device", choices=["auto", *available_devices()], value="auto")
        self.precision_combo = ComboBox(
            label="precision", choices=list(PRECISIONS), value="auto",
            tooltip="auto: bfloat16 where the device computes it fast and the method allows it, else fp32")
        self.normalization_combo = ComboBox(
            label="normalization", choices=list(NORMALIZATIONS), value="plane",
            tooltip="plane: each plane scaled by its own percentiles; stack: one scaling for the whole stack, "
                    "so the noise of dim out-of-focus planes is not stretched")
        self.seed_spin = SpinBox(label="seed", min=0, max=2**31 - 1, value=0)
        self.current_plane_check = CheckBox(text="only the displayed plane", value=False)
        self.run_button = PushButton(text="Run")
        self.stop_button = PushButton(text="Stop (keep result)", enabled=False)
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.progress_bar = ProgressBar(label="progress", min=0, max=1000, value=0)
        self.status_label = Label(value="")
        self.extend(
            [
                self.layer_combo,
                self.method_combo,
                self.settings_box,
                self.advanced_check,
                self.advanced_box,
                self.device_combo,
                self.precision_combo,
                self.normalization_combo,
                self.seed_spin,
                self.current_plane_check,
                Container(widgets=[self.run_button, self.stop_button, self.cancel_button], layout="horizontal", labels=False),
                self.progress_bar,
                self.status_label,
            ]
        )
        # Whether the run still improves or has started to fit the noise, at a glance.
        self.convergence = ConvergenceRecord()
        self.convergence_plot = ConvergencePlot()
        self.native.layout().addWidget(self.convergence_plot.native)
        self.method_combo.changed.connect(self._load_preset)
        self.advanced_check.changed.connect(lambda shown: setattr(self.advanced_box, "visible", shown))
        self.run_button.changed.connect(self.start)
        self.stop_button.changed.connect(self.stop)
        self.cancel_button.changed.connect(self.cancel)
        self._viewer.layers.events.inserted.connect(self._refresh_layers)
        self._viewer.layers.events.removed.connect(self._refresh_layers)
        self._viewer.layers.selection.events.active.connect(self._follow_selection)
        self._load_preset(self.method_combo.value)
        self._follow_selection()

        # Stop a running worker when the widget goes away (closed dock or viewer);
        # the closure must not hold `self`, which Qt may already have deleted.
        state = self._shutdown_state = {"run": None, "worker": None, "closed": False}

        def _on_destroyed(*_: Any) -> None:
            state["closed"] = True
            if state["run"] is not None:
                state["run"].stop()
            if state["worker"] is not None:
                state["worker"].quit()

        self.native.destroyed.connect(_on_destroyed)

    # --- choices -------------------------------------------------------------------
    def _image_layer_choices(self, *_: Any) -> list[tuple[str, Any]]:
        import napari

        return [(layer.name, layer) for layer in self._viewer.layers if isinstance(layer, napari.layers.Image)]

    def _refresh_layers(self, *_: Any) -> None:
        self.layer_combo.reset_choices()
        self._follow_selection()

    def _follow_selection(self, *_: Any) -> None:
        """Pick the layer selected in the layer list, when it is an image layer."""
        import napari

        active = self._viewer.layers.selection.active
        if isinstance(active, napari.layers.Image) and active in [layer for _, layer in self._image_layer_choices()]:
            self.layer_combo.value = active

    @property
    def settings(self) -> dict[str, Any]:
        """The fields of the chosen method's settings, by setting name."""
        return {} if self.form is None else dict(self.form.fields)

    def _load_preset(self, name: str) -> None:
        """Rebuild the settings fields for method ``name``, each showing the preset's value."""
        self.form = SettingsForm(get_method_spec(name).settings())
        self.settings_box.clear()
        self.advanced_box.clear()
        self.settings_box.append(self.form.basic)
        self.advanced_box.append(self.form.advanced)

    def method_overrides(self) -> dict[str, Any]:
        """The settings changed in the widget, as keyword overrides of the method's preset.

        Raises
        ------
        ValueError
            If "file" weights are chosen but no existing file is given.
        """
        return {} if self.form is None else self.form.overrides()

    # --- running -------------------------------------------------------------------
    @property
    def is_running(self) -> bool:
        return self._worker is not None

    def _plane_of_current_view(self, layer: Any) -> tuple[int, ...]:
        """The layer's plane on screen: the viewer's position mapped through the layer's own transform."""
        data = _full_resolution(layer)
        leading = data.ndim - 2
        position = layer.world_to_data(self._viewer.dims.point)[:leading]
        return tuple(int(np.clip(np.round(i), 0, n - 1)) for i, n in zip(position, data.shape[:leading]))

    def _show_plane(self, index: tuple[int, ...]) -> None:
        """Move the viewer to plane ``index`` of the source layer, so the preview on screen is the one being computed."""
        source = self._source
        leading = len(index)
        world = source.data_to_world([*index, 0, 0])
        axes = range(self._viewer.dims.ndim - source.ndim, self._viewer.dims.ndim - source.ndim + leading)
        for axis, value in zip(axes, world[:leading]):
            self._viewer.dims.set_point(axis, value)

    def start(self) -> None:
        """Start denoising the selected layer with the chosen settings."""
        if self.is_running:
            return
        layer = self.layer_combo.value
        if layer is None:
            self.status_label.value = "Add or select an image layer first."
            return
        if getattr(layer, "rgb", False):
            self.status_label.value = "RGB layers are not supported; split the channels (Layers > Split RGB) first."
            return
        spec = get_method_spec(self.method_combo.value)
        data = _full_resolution(layer)
        plane = self._plane_of_current_view(layer) if self.current_plane_check.value and data.ndim > 2 else None
        try:
            overrides = self.method_overrides()
            run = DenoiseRun(
                data,
                spec.name,
                device=self.device_combo.value,
                precision=self.precision_combo.value,
                normalization=self.normalization_combo.value,
                seed=int(self.seed_spin.value),
                plane=plane,
                preview_every=0,
                preview_interval=0.25,
                **overrides,
            )
        except (ValueError, TypeError, OSError) as exc:
            self.status_label.value = f"Cannot run: {exc}"
            return
        from napari.qt.threading import thread_worker

        self._run, self._source, self._cancelled = run, layer, False
        self.convergence = ConvergenceRecord()
        self.convergence_plot.show(None)
        self._single_plane = plane is not None
        self._shown_plane: tuple[int, ...] | None = None
        self._preview_layer = None
        self._started = time.perf_counter()
        worker = thread_worker(_iterate, start_thread=False)(run, self.convergence)
        worker.yielded.connect(self._on_event)
        worker.returned.connect(self._on_returned)
        worker.errored.connect(self._on_errored)
        worker.finished.connect(self._on_finished)
        self._worker = worker
        self._shutdown_state.update(run=run, worker=worker)
        self._set_running(True)
        self.progress_bar.value = 0
        which = f" (plane {plane} of {layer.name})" if plane is not None else ""
        self.status_label.value = f"Starting {spec.name} on {run.device}{which}…"
        worker.start()

    def stop(self) -> None:
        """End the run after the current iteration and keep the current estimate."""
        if self._run is not None:
            self.status_label.value = "Stopping…"
            self._run.stop()

    def cancel(self) -> None:
        """End the run and discard everything it computed."""
        if self._run is not None:
            self._cancelled = True
            self.status_label.value = "Cancelling…"
            self._run.stop()

    def _set_running(self, running: bool) -> None:
        self.run_button.enabled = not running
        self.stop_button.enabled = running
        self.cancel_button.enabled = running

    # --- worker callbacks (main thread) ----------------------------------------------
    @property
    def _closed(self) -> bool:
        # After the dock or viewer closed, the Qt side of this widget is gone; late
        # signals from the finishing worker must not touch it.
        return self._shutdown_state["closed"]

    def _layer_geometry(self) -> dict[str, Any]:
        source = self._source
        dims = 2 if self._single_plane else source.ndim
        return {"scale": tuple(source.scale)[-dims:], "translate": tuple(source.translate)[-dims:]}

    def _on_event(self, event: ProgressEvent) -> None:
        if self._closed:
            return
        if self._cancelled:
            return
        # The worker records every step; the plot is redrawn as often as the preview, no more.
        self.convergence_plot.show(self.convergence.current)
        if self._preview_layer is None or self._preview_layer not in self._viewer.layers:
            initial = event.preview if self._single_plane or not event.plane_index else _preview_start(self._source)
            self._preview_layer = self._viewer.add_image(
                initial,
                name=f"{self._source.name} [preview]",
                contrast_limits=tuple(self._source.contrast_limits),
                colormap=self._source.colormap,
                **self._layer_geometry(),
            )
        if self._single_plane or not event.plane_index:
            self._preview_layer.data = event.preview
        else:
            self._preview_layer.data[event.plane_index] = event.preview
            self._preview_layer.refresh()
            if event.plane_index != self._shown_plane:
                # Once per plane, so that a user may look elsewhere while it runs.
                self._shown_plane = event.plane_index
                self._show_plane(event.plane_index)
        self.progress_bar.value = int(round(1000 * event.fraction_done))
        plane = f"plane {event.plane + 1}/{event.n_planes} · " if event.n_planes > 1 else (
            f"plane {event.plane_index} · " if self._single_plane and event.plane_index else "")
        self.status_label.value = (
            f"{plane}{event.iteration}/{event.total} it · loss {event.loss:.3g} · "
            f"{_format_seconds(event.elapsed)} elapsed · ETA {_format_seconds(event.eta_seconds)}"
        )

    def _remove_preview(self) -> None:
        if self._preview_layer is not None and self._preview_layer in self._viewer.layers:
            self._viewer.layers.remove(self._preview_layer)
        self._preview_layer = None

    def _on_returned(self, run: DenoiseRun) -> None:
        if self._closed:
            return
        self._remove_preview()
        if self._cancelled or run.result is None:
            self.status_label.value = "Cancelled; nothing was kept."
            return
        source = self._source
        self.convergence.finish(run.metadata["planes"])
        self.convergence_plot.show(self.convergence.current)
        metadata = {**run.metadata, "source_layer": source.name, "convergence": self.convergence.as_dict()}
        name = f"{source.name}_{run.spec.name}"
        self._viewer.add_image(
            run.result,
            name=name,
            contrast_limits=tuple(source.contrast_limits),
            colormap=source.colormap,
            metadata={"napari_zsdenoise": metadata},
            **self._layer_geometry(),
        )
        self.progress_bar.value = 1000 if not run.stopped_early else self.progress_bar.value
        state = "stopped early, kept" if run.stopped_early else "done"
        best = sorted(p["best_iteration"] for p in metadata["planes"] if p.get("best_iteration"))
        kept = ""
        if best:
            iterations = str(best[0]) if best[0] == best[-1] else f"{best[0]}-{best[-1]}"
            kept = f"; kept the ensemble of the best held-out check (iteration {iterations})"
        if self._single_plane and metadata["planes"]:
            kept += f"; plane {tuple(metadata['planes'][0]['index'])} of {source.name}"
        if metadata["planes_not_denoised"]:
            kept += (f"; planes {_plane_ranges(metadata['planes_not_denoised'])} of {metadata['planes_total']} "
                     "were not reached and hold the input unchanged")
        self.status_label.value = f"{state}: {name} ({_format_seconds(metadata['seconds'])} on {metadata['device']}){kept}"

    def _on_errored(self, exc: Exception) -> None:
        if self._closed:
            return
        self._remove_preview()
        self.status_label.value = f"Failed: {exc}"

    def _on_finished(self) -> None:
        if self._closed:
            return
        self._worker = None
        self._run = None
        self._shutdown_state.update(run=None, worker=None)
        self._set_running(False)


def _full_resolution(layer: Any) -> Any:
    """The layer's pixels at full resolution: level 0 of a multiscale layer, never read whole here
    (a dask or zarr array stays lazy; the engine reads it plane by plane)."""
    return layer.data[0] if getattr(layer, "multiscale", False) else layer.data


def _preview_start(layer: Any) -> np.ndarray:
    """What a stack's preview shows before its planes are computed: the input when it is in
    memory already, else zeros, so that a lazy stack is not read whole for a preview."""
    data = _full_resolution(layer)
    if isinstance(data, np.ndarray) and not isinstance(data, np.memmap):
        return np.array(data, dtype=np.float32)
    return np.zeros(data.shape, dtype=np.float32)
