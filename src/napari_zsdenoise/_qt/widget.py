"""The napari dock widget: pick a layer and a method, watch the result converge."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, Label, ProgressBar, PushButton, SpinBox
from qtpy.QtCore import QThreadPool

from napari_zsdenoise._runtime import openmp_threads_sleep_when_idle

# Before the engine can import torch: the GUI thread must not fight spinning OpenMP threads.
openmp_threads_sleep_when_idle()

from napari_zsdenoise._qt._layout import wrap_lines
from napari_zsdenoise._qt.compare import CompareView
from napari_zsdenoise._qt.convergence_plot import ConvergencePlot
from napari_zsdenoise._qt.estimate_line import EstimateLine, Request
from napari_zsdenoise._qt.layer_choice import LayerChoice
from napari_zsdenoise._qt.mid_training import MIDTrainingPanel
from napari_zsdenoise._qt.output_layers import OutputLayers
from napari_zsdenoise._qt.region import (
    REGION_CHOICES,
    REGION_SHAPE,
    REGION_VISIBLE,
    REGION_WHOLE,
    Target,
    camera_of,
    target_of,
)
from napari_zsdenoise._qt.settings_form import WEIGHTS_CHOICES, WEIGHTS_FILE, WEIGHTS_RANDOM, WEIGHTS_SHIPPED, SettingsForm
from napari_zsdenoise.engine import DenoiseRun, ProgressEvent
from napari_zsdenoise.methods import get_method_spec, method_names, recommended_method
from napari_zsdenoise.normalization import NORMALIZATIONS
from napari_zsdenoise.run_controller import RunController

__all__ = ["REGION_CHOICES", "REGION_SHAPE", "REGION_VISIBLE", "REGION_WHOLE", "WEIGHTS_CHOICES", "WEIGHTS_FILE",
           "WEIGHTS_RANDOM", "WEIGHTS_SHIPPED", "DenoiseWidget"]

if TYPE_CHECKING:
    import napari

#: How long a closing dock waits for its probe and run threads to end (milliseconds).
SHUTDOWN_WAIT_MS = 30_000


def _run_in_worker(controller: RunController):
    """Worker body: the controller's events with a preview, then the controller."""
    yield from controller.events()
    return controller


def _method_label(name: str, recommended: str) -> str:
    hint = get_method_spec(name).hint
    label = f"{name} — {hint}" if hint else name
    return f"{label}  (recommended)" if name == recommended else label


class DenoiseWidget(Container):
    """Dock widget running any registered method on an image layer in a worker thread.

    One preview layer is updated in place while the method runs. *Stop* ends the run and
    keeps the current estimate as a new layer; *Cancel* ends it and keeps nothing. The
    *region* choice runs on a part of the plane on screen only, to try settings quickly;
    the *estimated* line says how long a run would take before it is started; *compare*
    shows the newest result beside its noisy source.
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        from napari_zsdenoise.devices import PRECISIONS, available_devices

        super().__init__(labels=True)
        self._viewer = napari_viewer
        self._run: DenoiseRun | None = None
        self._worker: Any = None
        self._outputs: OutputLayers | None = None
        # What the widget's end must stop, kept apart from `self` (see the end of __init__).
        self._shutdown_state: dict[str, Any] = {"run": None, "worker": None, "closed": False, "estimate": None}

        self.layer_combo = ComboBox(label="image")
        recommended = recommended_method()
        self.method_combo = ComboBox(
            label="method", value=recommended,
            choices=[(_method_label(name, recommended), name) for name in method_names()],
            tooltip=f"{recommended} is recommended: {get_method_spec(recommended).recommendation}")
        # The method's own settings, generated from their descriptions (see settings_form.py).
        self.settings_box = Container(labels=False)
        self.advanced_check = CheckBox(text="show advanced settings", value=False)
        self.advanced_box = Container(labels=False, visible=False)
        self.form: SettingsForm | None = None
        # The newest model trained in this dock, offered to methods that need a weights file.
        self.trained_model: Path | None = None
        self.device_combo = ComboBox(label="device", choices=["auto", *available_devices()], value="auto")
        self.precision_combo = ComboBox(
            label="precision", choices=list(PRECISIONS), value="auto",
            tooltip="auto: bfloat16 where the device computes it fast and the method allows it, else fp32")
        self.normalization_combo = ComboBox(
            label="normalization", choices=list(NORMALIZATIONS), value="plane",
            tooltip="plane: each plane scaled by its own percentiles; stack: one scaling for the whole stack, "
                    "so the noise of dim out-of-focus planes is not stretched")
        self.camera_offset_spin = FloatSpinBox(
            label="camera offset", value=0.0, min=0.0, max=1e9, step=1.0,
            tooltip="The camera's baseline in the image's units (e.g. 100 on many sCMOS cameras): subtracted, so "
                    "the result's zero means no light. It does not change the denoising itself.")
        self.seed_spin = SpinBox(label="seed", min=0, max=2**31 - 1, value=0)
        self.current_plane_check = CheckBox(text="only the displayed plane", value=False)
        self.region_combo = ComboBox(
            label="region", choices=list(REGION_CHOICES), value=REGION_WHOLE,
            tooltip="Try the settings on a part of the plane on screen first: the part visible in the viewer, or "
                    "the selected (else the last) rectangle of a Shapes layer. The result is a layer of that part.")
        self.training_panel = MIDTrainingPanel(
            lambda: self.layer_combo.value, lambda: self.device_combo.value, self._use_trained_model)
        self.estimate_label = Label(value="")
        self.run_button = PushButton(text="Run")
        self.stop_button = PushButton(text="Stop (keep result)", enabled=False)
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.progress_bar = ProgressBar(label="progress", min=0, max=1000, value=0)
        self.status_label = Label(value="")
        self.compare_button = PushButton(
            text="compare", enabled=False,
            tooltip="Show the newest result beside its noisy source (grid view, other layers hidden); "
                    "press again to restore the view")
        buttons = Container(widgets=[self.run_button, self.stop_button, self.cancel_button], layout="horizontal",
                            labels=False)
        self.extend([self.layer_combo, self.method_combo, self.settings_box, self.advanced_check, self.advanced_box,
                     self.training_panel, self.device_combo, self.precision_combo, self.normalization_combo,
                     self.camera_offset_spin, self.seed_spin, self.current_plane_check, self.region_combo,
                     self.estimate_label, buttons, self.progress_bar, self.status_label, self.compare_button])
        wrap_lines(self.status_label, self.estimate_label)
        # Whether the run still improves or has started to fit the noise, at a glance.
        self.convergence_plot = ConvergencePlot()
        self.native.layout().addWidget(self.convergence_plot.native)
        self.estimate_line = EstimateLine(self.estimate_label, self.native, self._estimate_request,
                                          lambda: self.is_running, lambda: self._closed)
        self._shutdown_state["estimate"] = self.estimate_line
        self.compare = CompareView(self._viewer, self.compare_button)
        self._controller: RunController | None = None
        self._refused_layer: Any = None
        self.layer_choice = LayerChoice(self._viewer, self.layer_combo,
                                        lambda: self._closed or (self._outputs is not None and self._outputs.adding),
                                        self.estimate_line.soon)

        self.method_combo.changed.connect(self._load_preset)
        self.layer_combo.changed.connect(self._on_layer_choice)
        self.advanced_check.changed.connect(lambda shown: setattr(self.advanced_box, "visible", shown))
        self.run_button.changed.connect(self.start)
        self.stop_button.changed.connect(self.stop)
        self.cancel_button.changed.connect(self.cancel)
        self.compare_button.changed.connect(self.compare.toggle)
        self.region_combo.changed.connect(self._on_region_choice)
        for choice in (self.layer_combo, self.device_combo, self.precision_combo, self.current_plane_check):
            choice.changed.connect(self.estimate_line.refresh)
        self._viewer.layers.events.inserted.connect(self._layers_changed)
        self._viewer.layers.events.removed.connect(self._layers_changed)
        self._viewer.layers.selection.events.active.connect(self.layer_choice.follow_selection)
        # What is on screen decides a region's size, hence the estimate.
        camera_of(self._viewer).events.center.connect(self.estimate_line.soon)
        camera_of(self._viewer).events.zoom.connect(self.estimate_line.soon)
        self._viewer.canvas.events.size.connect(self.estimate_line.soon)
        self._viewer.dims.events.ndisplay.connect(self.estimate_line.soon)
        self._viewer.layers.selection.events.active.connect(self.estimate_line.soon)
        self._load_preset(self.method_combo.value)
        self.layer_choice.follow_selection()
        self.layer_choice.watch_shapes()

        # Stop a running worker when the widget goes away (closed dock or viewer);
        # the closure must not hold `self`, which Qt may already have deleted.
        state = self._shutdown_state

        def _on_destroyed(*_: Any) -> None:
            state["closed"] = True
            state["estimate"].cancel_probe()
            if state["run"] is not None:
                state["run"].stop()
            if state["worker"] is not None:
                state["worker"].quit()
            # Asked to stop, the probe and the run end within a step; waiting for them keeps their threads
            # from running on while Python shuts down (a closed viewer often ends the program).
            QThreadPool.globalInstance().waitForDone(SHUTDOWN_WAIT_MS)

        self.native.destroyed.connect(_on_destroyed)
        self.estimate_line.refresh()

    def _layers_changed(self, *_: Any) -> None:
        if self._closed:
            return
        self.layer_choice.refresh()
        self.compare.refresh_button()
        self.estimate_line.soon()

    @property
    def settings(self) -> dict[str, Any]:
        """The fields of the chosen method's settings, by setting name."""
        return {} if self.form is None else dict(self.form.fields)

    def _load_preset(self, name: str) -> None:
        """Rebuild the settings fields for method ``name``, each showing the preset's value."""
        spec = get_method_spec(name)
        needs_file = spec.default_config.needs_weights_file
        self.form = SettingsForm(spec.settings(), weights_file_only=needs_file)
        # Training a model is what a method that needs one is chosen for; the section shows with it.
        self.training_panel.visible = needs_file
        if needs_file and self.trained_model is not None:
            self.form.use_weights_file(self.trained_model)
        self.settings_box.clear()
        self.advanced_box.clear()
        self.settings_box.append(self.form.basic)
        self.advanced_box.append(self.form.advanced)
        for field in self.form.fields.values():
            field.changed.connect(self.estimate_line.refresh)
        if self.form.weights_file is not None:
            self.form.weights_file.changed.connect(self.estimate_line.refresh)
        self.estimate_line.refresh()

    def _use_trained_model(self, path: Path) -> None:
        self.trained_model = path
        if self.form is not None and get_method_spec(self.method_combo.value).default_config.needs_weights_file:
            self.form.use_weights_file(path)
            self.estimate_line.refresh()

    def method_overrides(self) -> dict[str, Any]:
        """The settings changed in the widget, as keyword overrides of the method's preset.

        Raises
        ------
        ValueError
            If "file" weights are chosen but no existing file is given.
        """
        return {} if self.form is None else self.form.overrides()

    def _on_region_choice(self, choice: str) -> None:
        # A region always lies in the plane on screen, so the plane choice has no say then.
        self.current_plane_check.enabled = choice == REGION_WHOLE
        self.estimate_line.refresh()

    # --- what a run computes -------------------------------------------------------
    def _target_of(self, layer: Any) -> Target:
        """What a run on ``layer`` with the current choices computes (ValueError: see :func:`target_of`)."""
        canvas = self._viewer.canvas
        size = canvas.viewbox_size(self._viewer.layers) if hasattr(canvas, "viewbox_size") else canvas.size
        return target_of(self._viewer, camera_of(self._viewer), layer, self.region_combo.value,
                         current_plane=bool(self.current_plane_check.value), canvas_size=size)

    # --- estimate --------------------------------------------------------------------
    def _estimate_request(self) -> Request:
        layer = self.layer_combo.value
        if layer is None:
            raise ValueError("no image layer")
        if getattr(layer, "rgb", False):
            raise ValueError("RGB layers are not supported")
        target = self._target_of(layer)
        overrides = {} if self.form is None else self.form.overrides(strict=False)
        return self.method_combo.value, target.shape, self.device_combo.value, self.precision_combo.value, overrides

    # --- running -------------------------------------------------------------------
    @property
    def is_running(self) -> bool:
        return self._worker is not None

    def start(self) -> None:
        """Start denoising the selected layer (or the chosen region of it) with the chosen settings."""
        if self.is_running:
            return
        layer = self.layer_combo.value
        if layer is None or getattr(layer, "rgb", False):
            self._refuse("Add or select an image layer first." if layer is None else
                         "RGB layers are not supported; split the channels (Layers > Split RGB) first.")
            return
        spec = get_method_spec(self.method_combo.value)
        try:
            target = self._target_of(layer)
        except ValueError as exc:
            self._refuse(f"Cannot run on the {self.region_combo.value}: {exc}.")
            return
        try:
            run = DenoiseRun(target.data, spec.name, device=self.device_combo.value,
                             precision=self.precision_combo.value, normalization=self.normalization_combo.value,
                             seed=int(self.seed_spin.value),
                             camera_offset=float(self.camera_offset_spin.value), plane=target.plane, preview_every=0,
                             preview_interval=0.25, **self.method_overrides())
        except (ValueError, TypeError, OSError) as exc:
            where = ""
            if target.region is not None:
                height, width = target.shape
                where = f" the {target.region[3]} ({height} × {width} pixels)"
            self._refuse(f"Cannot run{where}: {exc}")
            return
        from napari.qt.threading import thread_worker

        if self.compare.active:
            self.compare.toggle()
        # The probe would share the device with the run and time neither right.
        self.estimate_line.cancel_probe()
        self._controller = RunController(run, single_plane=target.two_dimensional)
        self._run = run
        self.convergence_plot.show(None)
        self._outputs = OutputLayers(self._viewer, layer, target, float(self.camera_offset_spin.value))
        worker = thread_worker(_run_in_worker, start_thread=False)(self._controller)
        worker.yielded.connect(self._on_event)
        worker.returned.connect(self._on_returned)
        worker.errored.connect(self._on_errored)
        worker.finished.connect(self._on_finished)
        self._worker = worker
        self._shutdown_state.update(run=run, worker=worker)
        self._set_running(True)
        self.progress_bar.value = 0
        where = target.describe(layer.name)
        self.status_label.value = f"Starting {spec.name} on {run.device}{f' ({where})' if where else ''}…"
        worker.start()

    def _refuse(self, why: str) -> None:
        """Say why a run cannot start; the line goes once the choice of image changes."""
        self.status_label.value, self._refused_layer = why, self.layer_combo.value

    def _on_layer_choice(self, layer: Any) -> None:
        if self._refused_layer is not None and layer is not self._refused_layer and not self.is_running:
            self.status_label.value, self._refused_layer = "", None

    def stop(self) -> None:
        """End the run after the current iteration and keep the current estimate."""
        if self._controller is not None:
            self.status_label.value = "Stopping…"
            self._controller.stop()

    def cancel(self) -> None:
        """End the run and discard everything it computed."""
        if self._controller is not None:
            self.status_label.value = "Cancelling…"
            self._controller.cancel()

    def _set_running(self, running: bool) -> None:
        self.run_button.enabled, self.stop_button.enabled, self.cancel_button.enabled = not running, running, running

    # --- worker callbacks (main thread) ----------------------------------------------
    @property
    def _closed(self) -> bool:
        # After the dock or viewer closed, the Qt side of this widget is gone; late
        # signals from the finishing worker must not touch it.
        return self._shutdown_state["closed"]

    def _on_event(self, event: ProgressEvent) -> None:
        if self._closed:
            return
        controller = self._controller
        if controller is None or controller.cancelled:
            return
        # The worker records every step; the plot is redrawn as often as the preview, no more.
        self.convergence_plot.show(controller.convergence.current)
        self._outputs.show(event)
        self.progress_bar.value = int(round(1000 * event.fraction_done))
        self.status_label.value = controller.progress_text(event)

    def _on_returned(self, controller: RunController) -> None:
        if self._closed:
            return
        self._outputs.remove_preview()
        if not controller.kept:
            self.status_label.value = "Cancelled; nothing was kept."
            return
        run, source, target = controller.run, self._outputs.source, self._outputs.target
        metadata = {**controller.finished_metadata(), "source_layer": source.name}
        self.convergence_plot.show(controller.convergence.current)
        name = f"{source.name}_{run.spec.name}"
        if target.region is not None:
            index, rows, columns, kind = target.region
            metadata["region"] = {"kind": kind, "plane": list(index), "rows": list(rows), "columns": list(columns)}
            name += "_region"
        result = self._outputs.add_result(run.result, name, metadata)
        self.compare.add(source, result)
        self.progress_bar.value = 1000 if not run.stopped_early else self.progress_bar.value
        where = target.describe(source.name)
        self.status_label.value = controller.summary(result.name, where=where)

    def _on_errored(self, exc: Exception) -> None:
        if self._closed:
            return
        self._outputs.remove_preview()
        self.status_label.value = f"Failed: {exc}"

    def _on_finished(self) -> None:
        if self._closed:
            return
        self._worker = None
        self._run = None
        self._controller = None
        self._shutdown_state.update(run=None, worker=None)
        self._set_running(False)
        # A probe held back during the run may start now.
        self.estimate_line.refresh()
