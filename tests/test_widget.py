"""The dock widget in a real (headless, Xvfb) napari viewer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import gui_unavailable_reason  # noqa: E402

if gui_unavailable_reason():
    pytest.skip(gui_unavailable_reason(), allow_module_level=True)

from napari_zsdenoise._qt.widget import DenoiseWidget  # noqa: E402

from napari_zsdenoise._qt.widget import WEIGHTS_FILE, WEIGHTS_RANDOM, WEIGHTS_SHIPPED  # noqa: E402

from conftest import TINY  # noqa: E402

TIMEOUT_MS = 120_000
#: What the stand-in speed probe answers, in seconds per iteration at the probe's size.
PROBE_SECONDS = 0.01


@pytest.fixture(autouse=True)
def probe_calls(monkeypatch, tmp_path):
    """Every widget here estimates durations at once: a probe cache of its own in tmp_path (never the
    user's), and a stand-in probe that answers at once and records its calls. A real probe would
    time iterations on the CPU these tests share."""
    from napari_zsdenoise import estimate

    monkeypatch.setenv(estimate.CACHE_ENV, str(tmp_path / "probe-cache"))
    calls = []

    def stand_in_probe(method, size, **kwargs):
        calls.append((method, size, kwargs))
        return PROBE_SECONDS

    monkeypatch.setattr(estimate, "probe_seconds_per_iteration", stand_in_probe)
    return calls


@pytest.fixture
def viewer_and_widget(make_napari_viewer_proxy, qtbot, monkeypatch, small_noisy):
    # A small network keeps the GUI tests quick; everything else is the real engine.
    import napari_zsdenoise._qt.widget as widget_module

    real_run = widget_module.DenoiseRun
    monkeypatch.setattr(widget_module, "DenoiseRun", lambda *a, **k: real_run(*a, **{**k, **TINY}))
    viewer = make_napari_viewer_proxy()
    layer = viewer.add_image(small_noisy, name="cells", scale=(0.2, 0.1), translate=(5.0, 7.0))
    widget = DenoiseWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.layer_combo.value = layer
    from napari_zsdenoise import recommended_method

    # The dock opens on the recommended preset; the tests run the quick one with shipped weights.
    assert widget.method_combo.value == recommended_method()
    shown = widget.method_combo.native.currentText()
    assert shown == f"{recommended_method()} — best quality per second  (recommended)"
    widget.method_combo.value = "mpi-fast"
    return viewer, widget, layer


def _names(viewer):
    return [layer.name for layer in viewer.layers]


def _press_during_a_long_run(viewer, widget, qtbot, button, layer_name):
    """Start a run that would take very long, wait for its preview, press ``button``, wait for the end."""
    widget.settings["iterations"].value = 100_000
    widget.start()
    worker = widget._worker
    qtbot.waitUntil(lambda: f"{layer_name} [preview]" in _names(viewer), timeout=TIMEOUT_MS)
    with qtbot.waitSignal(worker.finished, timeout=TIMEOUT_MS):
        button.clicked.emit()


def test_widget_lists_methods_and_loads_presets(viewer_and_widget):
    _, widget, _ = viewer_and_widget
    from napari_zsdenoise.methods import get_method_spec, method_names

    assert list(widget.method_combo.choices) == list(method_names())
    for name in method_names():
        widget.method_combo.value = name
        spec = get_method_spec(name)
        assert set(widget.settings) == {info.name for info in spec.settings()}
        for info in spec.settings():
            shown = widget.settings[info.name].value
            if info.kind == "weights" and spec.default_config.needs_weights_file:
                assert shown == WEIGHTS_FILE, (name, info.name)
            elif info.kind == "weights":
                assert shown == (WEIGHTS_RANDOM if info.default is None else WEIGHTS_SHIPPED), (name, info.name)
            else:
                assert shown == pytest.approx(info.default), (name, info.name)
        if spec.default_config.needs_weights_file:
            # Nothing to run with until a file is chosen (or trained, see the MID tests).
            with pytest.raises(ValueError, match="existing weights file"):
                widget.method_overrides()
        else:
            # Untouched fields run the preset exactly.
            assert widget.method_overrides() == {}
    widget.method_combo.value = "mpi"
    assert widget.settings["iterations"].value == 1000
    widget.method_combo.value = "mpi-fast"
    assert widget.settings["iterations"].value == 200
    assert widget.settings["mask_ratio"].value == pytest.approx(0.85)


def _another_value(info):
    if info.kind == "bool":
        return not info.default
    if info.kind == "weights":
        return WEIGHTS_RANDOM if info.default is not None else WEIGHTS_SHIPPED
    if info.kind == "int":
        return info.default + 2 if info.high is None or info.default + 2 <= info.high else info.default - 2
    return info.default * 0.5 if info.default else 0.5


# Setting every field one by one passes through warm_iterations with a start crop and no
# whole_plane_iterations yet: the old meaning, which warns (that warning is tested in test_mpi.py).
@pytest.mark.filterwarnings("ignore:warm_iterations no longer sets:FutureWarning")
def test_every_setting_of_every_method_is_reachable_from_the_widget(viewer_and_widget, mid_model_file):
    from napari_zsdenoise.methods import get_method_spec, method_names

    _, widget, _ = viewer_and_widget
    for name in method_names():
        widget.method_combo.value = name
        needs_file = get_method_spec(name).default_config.needs_weights_file
        if needs_file:
            # Its weights menu holds only "file…": the file is the setting to reach.
            widget.form.weights_file.value = mid_model_file
        for info in get_method_spec(name).settings():
            if not (info.kind == "weights" and needs_file):
                widget.settings[info.name].value = _another_value(info)
            assert info.name in widget.method_overrides(), (name, info.name)
        overrides = widget.method_overrides()
        assert set(overrides) == {info.name for info in get_method_spec(name).settings()}


def test_advanced_settings_are_apart_and_hidden_until_asked_for(viewer_and_widget):
    _, widget, _ = viewer_and_widget
    widget.method_combo.value = "mpi"
    assert widget.advanced_box.native.isHidden()
    assert widget.form.fields["patience"] in list(widget.form.advanced)
    assert widget.form.fields["iterations"] in list(widget.form.basic)
    widget.advanced_check.value = True
    assert not widget.advanced_box.native.isHidden()


def test_bsn_chosen_in_the_widget_runs_from_random_initialisation(make_napari_viewer_proxy, monkeypatch, small_noisy):
    import napari_zsdenoise._qt.widget as widget_module

    started = []
    real_run = widget_module.DenoiseRun

    def recording_run(*args, **kwargs):
        started.append(real_run(*args, **{**kwargs, "width": 8, "scales": 3, "iterations": 1}))
        return started[-1]

    monkeypatch.setattr(widget_module, "DenoiseRun", recording_run)
    viewer = make_napari_viewer_proxy()
    viewer.add_image(small_noisy, name="cells")
    widget = DenoiseWidget(viewer)
    widget.method_combo.value = "mpi"
    widget.method_combo.value = "bsn"
    assert widget.settings["weights"].value == WEIGHTS_RANDOM
    widget.start()
    assert started and started[0].config.weights is None
    widget.cancel()


def test_the_image_menu_follows_the_selected_layer(make_napari_viewer_proxy, small_noisy):
    viewer = make_napari_viewer_proxy()
    noisy = viewer.add_image(small_noisy, name="noisy")
    clean = viewer.add_image(small_noisy // 2, name="clean")
    viewer.layers.selection.active = noisy
    widget = DenoiseWidget(viewer)
    assert widget.layer_combo.value.name == "noisy"
    viewer.layers.selection.active = clean
    assert widget.layer_combo.value.name == "clean"


def test_run_to_completion_updates_one_preview_and_adds_the_result(viewer_and_widget, qtbot):
    viewer, widget, layer = viewer_and_widget
    widget.settings['iterations'].value = 6
    widget.seed_spin.value = 4
    inserted = []
    viewer.layers.events.inserted.connect(lambda e: inserted.append(e.value.name))
    previews = []
    widget.start()
    widget._worker.yielded.connect(lambda event: previews.append(event.iteration))
    with qtbot.waitSignal(widget._worker.finished, timeout=TIMEOUT_MS):
        pass
    assert previews, "the worker sent previews to the main thread"
    # Exactly one preview layer was ever created (updated in place), then replaced by the result.
    assert inserted == ["cells [preview]", "cells_mpi-fast"]
    assert _names(viewer) == ["cells", "cells_mpi-fast"]
    result = viewer.layers["cells_mpi-fast"]
    assert result.data.shape == layer.data.shape and result.data.dtype == np.float32
    np.testing.assert_allclose(result.scale, layer.scale)
    np.testing.assert_allclose(result.translate, layer.translate)
    meta = result.metadata["napari_zsdenoise"]
    assert meta["method"] == "mpi-fast" and meta["seed"] == 4 and meta["source_layer"] == "cells"
    assert meta["planes"][0]["iterations_done"] == 6 and not meta["stopped_early"]
    assert meta["device"] == "cpu" and meta["version"] and "weights" in meta
    import torch

    from napari_zsdenoise.devices import resolve_precision

    assert widget.precision_combo.value == "auto" and meta["precision"] == resolve_precision("auto", torch.device("cpu"))
    assert widget.run_button.enabled and not widget.stop_button.enabled
    assert widget.progress_bar.value == widget.progress_bar.max


def test_the_precision_and_normalization_choices_reach_the_run(viewer_and_widget, qtbot):
    viewer, widget, _ = viewer_and_widget
    widget.precision_combo.value = "fp32"
    widget.normalization_combo.value = "stack"
    widget.settings["iterations"].value = 2
    widget.start()
    with qtbot.waitSignal(widget._worker.finished, timeout=TIMEOUT_MS):
        pass
    meta = viewer.layers["cells_mpi-fast"].metadata["napari_zsdenoise"]
    assert meta["precision"] == "fp32" and meta["normalization"] == "stack"


def test_the_camera_offset_reaches_the_run_and_the_result_keeps_the_display_range(viewer_and_widget, qtbot):
    viewer, widget, layer = viewer_and_widget
    widget.camera_offset_spin.value = 100.0
    widget.settings["iterations"].value = 2
    widget.start()
    with qtbot.waitSignal(widget._worker.finished, timeout=TIMEOUT_MS):
        pass
    result = viewer.layers["cells_mpi-fast"]
    assert result.metadata["napari_zsdenoise"]["camera_offset"] == 100.0
    low, high = layer.contrast_limits
    assert tuple(result.contrast_limits) == pytest.approx((low - 100.0, high - 100.0))
    # The result is in the input's units less the offset: its level sits about 100 below the input's.
    assert float(np.median(layer.data)) - float(np.median(result.data)) == pytest.approx(100.0, abs=20.0)


def test_stop_keeps_the_current_estimate(viewer_and_widget, qtbot):
    viewer, widget, layer = viewer_and_widget
    widget.settings['iterations'].value = 100_000
    widget.start()
    worker = widget._worker
    # Wait until the preview layer exists and has been updated at least once more.
    qtbot.waitUntil(lambda: "cells [preview]" in _names(viewer), timeout=TIMEOUT_MS)
    preview = viewer.layers["cells [preview]"]
    first = np.array(preview.data, copy=True)
    qtbot.waitUntil(lambda: not np.array_equal(preview.data, first), timeout=TIMEOUT_MS)
    assert _names(viewer).count("cells [preview]") == 1
    with qtbot.waitSignal(worker.finished, timeout=TIMEOUT_MS):
        widget.stop_button.clicked.emit()
    assert _names(viewer) == ["cells", "cells_mpi-fast"]
    meta = viewer.layers["cells_mpi-fast"].metadata["napari_zsdenoise"]
    assert meta["stopped_early"] and 0 < meta["planes"][0]["iterations_done"] < 100_000
    np.testing.assert_array_equal(layer.data, viewer_and_widget[1]._outputs.source.data)  # input untouched


def test_cancel_keeps_nothing(viewer_and_widget, qtbot, small_noisy):
    viewer, widget, layer = viewer_and_widget
    _press_during_a_long_run(viewer, widget, qtbot, widget.cancel_button, "cells")
    assert _names(viewer) == ["cells"]
    np.testing.assert_array_equal(layer.data, small_noisy)
    assert "Cancelled" in widget.status_label.value


def test_stack_with_only_the_displayed_plane(viewer_and_widget, qtbot, small_noisy):
    viewer, widget, _ = viewer_and_widget
    stack = viewer.add_image(np.stack([small_noisy, small_noisy // 2, small_noisy // 3]), name="stack", scale=(2.0, 0.2, 0.1))
    widget.layer_combo.value = stack
    viewer.dims.set_current_step(0, 2)
    widget.current_plane_check.value = True
    widget.settings['iterations'].value = 3
    widget.start()
    with qtbot.waitSignal(widget._worker.finished, timeout=TIMEOUT_MS):
        pass
    result = viewer.layers["stack_mpi-fast"]
    assert result.data.shape == small_noisy.shape
    assert result.metadata["napari_zsdenoise"]["planes"][0]["index"] == [2]
    np.testing.assert_allclose(result.scale, (0.2, 0.1))


def test_invalid_layer_reports_instead_of_crashing(make_napari_viewer_proxy):
    viewer = make_napari_viewer_proxy()
    tiny = viewer.add_image(np.zeros((8, 8), dtype=np.float32), name="tiny")
    widget = DenoiseWidget(viewer)
    widget.layer_combo.value = tiny
    widget.start()
    assert not widget.is_running
    assert "at least" in widget.status_label.value


def test_closing_the_viewer_stops_a_running_worker(make_napari_viewer_proxy, qtbot, small_noisy):
    viewer = make_napari_viewer_proxy()
    viewer.add_image(small_noisy, name="cells")
    widget = DenoiseWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.settings['iterations'].value = 100_000
    widget.start()
    run, worker = widget._run, widget._worker
    qtbot.waitUntil(lambda: "cells [preview]" in _names(viewer), timeout=TIMEOUT_MS)
    with qtbot.waitSignal(worker.finished, timeout=TIMEOUT_MS):
        viewer.close()
    assert run._stop.is_set()


_CLOSE_DURING_A_SPEED_PROBE = """
import time
import numpy as np
import napari
from qtpy.QtWidgets import QApplication
from napari_zsdenoise._qt.widget import DenoiseWidget
viewer = napari.Viewer(show=False)
viewer.add_image(np.random.default_rng(0).random((256, 256), dtype=np.float32))
widget = DenoiseWidget(viewer)
viewer.window.add_dock_widget(widget)
deadline = time.monotonic() + 60
while widget.estimate_label.value != "estimating…" and time.monotonic() < deadline:
    QApplication.instance().processEvents()
    time.sleep(0.01)
print(widget.estimate_label.value)
viewer.close()
"""


def test_a_program_that_closes_the_viewer_during_a_speed_probe_ends_without_an_error(tmp_path):
    import os
    import subprocess
    import sys

    # No cached speed: the dock starts a probe, which the program's end must not interrupt.
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    env.pop("NAPARI_ZSDENOISE_CACHE_DIR", None)
    done = subprocess.run([sys.executable, "-c", _CLOSE_DURING_A_SPEED_PROBE], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "estimating…", done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr


def test_weights_choice_reaches_the_engine(viewer_and_widget, tmp_path):
    _, widget, _ = viewer_and_widget
    weights, weights_file = widget.settings["weights"], widget.form.weights_file
    assert weights.value == WEIGHTS_SHIPPED and weights_file.native.isHidden()
    assert "weights" not in widget.method_overrides()  # the preset's shipped weights
    weights.value = WEIGHTS_RANDOM
    assert widget.method_overrides()["weights"] is None
    weights.value = WEIGHTS_FILE
    assert not weights_file.native.isHidden()
    with pytest.raises(ValueError, match="existing weights file"):
        widget.method_overrides()
    checkpoint = tmp_path / "w.pt"
    checkpoint.write_bytes(b"x")
    weights_file.value = checkpoint
    assert widget.method_overrides()["weights"] == str(checkpoint)
    weights.value = WEIGHTS_SHIPPED
    assert "weights" not in widget.method_overrides()


def test_early_stopping_choice_follows_the_preset_and_reaches_the_engine(viewer_and_widget):
    from napari_zsdenoise.methods.registry import get_method_spec

    _, widget, _ = viewer_and_widget
    widget.method_combo.value = "mpi"
    check = widget.settings["early_stopping"]
    assert check.value is get_method_spec("mpi").default_config.early_stopping
    check.value = not check.value
    assert widget.method_overrides()["early_stopping"] is check.value
    widget.method_combo.value = "zs-n2n"
    assert "early_stopping" not in widget.settings
    assert "early_stopping" not in widget.method_overrides()


def test_early_stopping_run_reports_the_kept_iteration(viewer_and_widget, qtbot):
    viewer, widget, _ = viewer_and_widget
    widget.settings['iterations'].value = 30
    widget.settings["early_stopping"].value = True
    widget.start()
    with qtbot.waitSignal(widget._worker.finished, timeout=TIMEOUT_MS):
        pass
    meta = viewer.layers["cells_mpi-fast"].metadata["napari_zsdenoise"]
    assert meta["parameters"]["early_stopping"] is True
    assert all(plane["best_iteration"] in (25, 30) for plane in meta["planes"])
    # The same phrase as the CLI's summary line.
    kept = meta["planes"][0]["best_iteration"]
    assert ("; 30 iterations" + ("" if kept == 30 else f" (kept {kept})")) in widget.status_label.value


def _stack_layer(viewer, small_noisy, name="stack", z_scale=2.0, planes=3):
    data = np.stack([small_noisy // (i + 1) for i in range(planes)])
    return viewer.add_image(data, name=name, scale=(z_scale, 0.2, 0.1))


def test_only_the_displayed_plane_maps_the_view_through_the_layers_own_scale(viewer_and_widget, qtbot, small_noisy):
    viewer, widget, _ = viewer_and_widget
    stack = _stack_layer(viewer, small_noisy, z_scale=2.0, planes=3)
    _stack_layer(viewer, small_noisy, name="finer", z_scale=1.0, planes=6)  # a finer z spacing in the viewer
    widget.layer_combo.value = stack
    viewer.dims.set_point(0, 2.0)  # world z = 2: plane 1 of `stack`, step 2 of the viewer
    widget.current_plane_check.value = True
    widget.settings["iterations"].value = 2
    widget.start()
    with qtbot.waitSignal(widget._worker.finished, timeout=TIMEOUT_MS):
        pass
    meta = viewer.layers["stack_mpi-fast"].metadata["napari_zsdenoise"]
    assert meta["planes"][0]["index"] == [1]
    assert "plane (1,) of stack" in widget.status_label.value


def test_the_view_follows_the_plane_being_computed(viewer_and_widget, qtbot, small_noisy):
    viewer, widget, _ = viewer_and_widget
    stack = _stack_layer(viewer, small_noisy)
    widget.layer_combo.value = stack
    viewer.dims.set_point(0, 0.0)
    shown = []
    widget.settings["iterations"].value = 2
    widget.start()
    widget._worker.yielded.connect(lambda event: shown.append(
        (event.plane_index[0], int(round(stack.world_to_data(viewer.dims.point)[0])))))
    with qtbot.waitSignal(widget._worker.finished, timeout=TIMEOUT_MS):
        pass
    assert {plane for plane, _ in shown} == {0, 1, 2}
    assert all(plane == on_screen for plane, on_screen in shown)


def test_stop_during_a_stack_says_which_planes_were_not_reached(viewer_and_widget, qtbot, small_noisy):
    viewer, widget, _ = viewer_and_widget
    stack = _stack_layer(viewer, small_noisy, planes=4)
    widget.layer_combo.value = stack
    _press_during_a_long_run(viewer, widget, qtbot, widget.stop_button, "stack")
    meta = viewer.layers["stack_mpi-fast"].metadata["napari_zsdenoise"]
    assert meta["planes_not_denoised"] == [[1], [2], [3]]
    assert "planes 2-4 of 4 were not reached" in widget.status_label.value
    np.testing.assert_array_equal(viewer.layers["stack_mpi-fast"].data[1:], stack.data[1:].astype(np.float32))


def test_dask_and_multiscale_layers_run_at_full_resolution_and_stay_lazy(viewer_and_widget, qtbot, small_noisy, monkeypatch):
    import dask.array as da

    import napari_zsdenoise._qt.widget as widget_module

    viewer, widget, _ = viewer_and_widget
    received = []
    real_run = widget_module.DenoiseRun
    monkeypatch.setattr(widget_module, "DenoiseRun", lambda data, *a, **k: received.append(data) or real_run(data, *a, **k))
    lazy = da.from_array(np.stack([small_noisy] * 2), chunks=(1, *small_noisy.shape))
    pyramid = [lazy, lazy[:, ::2, ::2]]
    for name, data, multiscale in (("lazy", lazy, False), ("pyramid", pyramid, True)):
        layer = viewer.add_image(data, name=name, multiscale=multiscale)
        widget.layer_combo.value = layer
        widget.settings["iterations"].value = 2
        widget.start()
        with qtbot.waitSignal(widget._worker.finished, timeout=TIMEOUT_MS):
            pass
        assert isinstance(received[-1], da.Array) and received[-1].shape == lazy.shape  # level 0, not computed
        assert viewer.layers[f"{name}_mpi-fast"].data.shape == lazy.shape


@pytest.mark.parametrize("user_choice, expected", [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_the_widget_asks_openmp_threads_to_sleep_unless_the_user_chose(user_choice, expected):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if user_choice:
        env["OMP_WAIT_POLICY"] = user_choice
    env["QT_QPA_PLATFORM"] = "offscreen"
    code = ("import os, sys, napari_zsdenoise._qt.widget; import torch; "
            "print(os.environ.get('OMP_WAIT_POLICY'))")
    output = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert output.split()[-1] == expected


def test_the_convergence_plot_follows_the_run_and_stays_with_the_result(viewer_and_widget, qtbot):
    viewer, widget, _ = viewer_and_widget
    widget.method_combo.value = "bsn"
    widget.settings["iterations"].value = 60
    widget.advanced_check.value = True
    widget.settings["validation_every"].value = 10
    drawn = []
    widget.start()
    widget._worker.yielded.connect(lambda event: drawn.append(len(widget.convergence_plot.curve.losses)))
    with qtbot.waitSignal(widget._worker.finished, timeout=TIMEOUT_MS):
        pass
    assert max(drawn) > 0  # points reached the plot while the run went on
    xs, ys = widget.convergence_plot.loss_line.getData()
    assert len(xs) == 60 and list(xs[:3]) == [1, 2, 3] and np.isfinite(ys).all()  # kept after the run
    checks = widget.convergence_plot.check_dots.getData()[0]
    assert list(checks) == [10, 20, 30, 40, 50, 60]
    meta = viewer.layers["cells_bsn"].metadata["napari_zsdenoise"]
    (plane,) = meta["convergence"]["planes"]
    assert plane["kept_iteration"] == meta["planes"][0]["best_iteration"]
    assert widget.convergence_plot.kept_line.isVisible() and widget.convergence_plot.kept_line.value() == plane["kept_iteration"]
    assert list(widget.convergence_plot.kept_dot.getData()[0]) == [plane["kept_iteration"]]  # a dot at the kept check
    assert [pair[0] for pair in plane["holdout_error"]] == [10, 20, 30, 40, 50, 60]


def test_the_convergence_plot_has_a_linear_axis_on_a_short_span_and_a_log_axis_on_a_long_one(qtbot):
    from napari_zsdenoise._qt.convergence_plot import ConvergencePlot
    from napari_zsdenoise.convergence import PlaneCurve

    plot = ConvergencePlot()
    plot.show(PlaneCurve((), losses=[(1, 0.020), (2, 0.018)], checks=[(2, 0.019)]))
    assert not plot.log_y  # a log axis over less than a decade shows no tick labels
    plot.show(PlaneCurve((), losses=[(1, 0.5), (2, 0.01)], checks=[(2, 0.02)]))
    assert plot.log_y


def test_the_method_menu_says_what_sets_each_preset_apart(viewer_and_widget):
    from napari_zsdenoise import recommended_method
    from napari_zsdenoise.methods import get_method_spec, method_names

    _, widget, _ = viewer_and_widget
    combo = widget.method_combo.native
    shown = {combo.itemData(i): combo.itemText(i) for i in range(combo.count())}
    for name in method_names():
        hint = get_method_spec(name).hint
        assert hint, f"{name} has no menu hint"
        expected = f"{name} — {hint}" + ("  (recommended)" if name == recommended_method() else "")
        assert shown[name] == expected
    assert "(recommended)" in shown["bsn-balanced"] and "best quality per second" in shown["bsn-balanced"]
    widget.method_combo.value = "zs-n2n"
    assert widget.method_combo.value == "zs-n2n" and combo.currentText().startswith("zs-n2n — ")


def _run_to_the_end(widget, qtbot):
    widget.start()
    assert widget.is_running, widget.status_label.value
    with qtbot.waitSignal(widget._worker.finished, timeout=TIMEOUT_MS):
        pass


def test_each_run_keeps_its_result_under_a_name_of_its_own(viewer_and_widget, qtbot):
    viewer, widget, _ = viewer_and_widget
    widget.settings["iterations"].value = 2
    _run_to_the_end(widget, qtbot)
    first = viewer.layers["cells_mpi-fast"]
    first_data = np.array(first.data, copy=True)
    widget.seed_spin.value = 1
    _run_to_the_end(widget, qtbot)
    _run_to_the_end(widget, qtbot)
    assert _names(viewer) == ["cells", "cells_mpi-fast", "cells_mpi-fast_2", "cells_mpi-fast_3"]
    # Neither replaced nor renamed (the test viewer hands out a new proxy on each access).
    assert viewer.layers["cells_mpi-fast"].__wrapped__ is first.__wrapped__
    np.testing.assert_array_equal(first.data, first_data)
    assert viewer.layers["cells_mpi-fast_2"].metadata["napari_zsdenoise"]["seed"] == 1
    assert "cells_mpi-fast_3" in widget.status_label.value


def _record_run_inputs(monkeypatch):
    import napari_zsdenoise._qt.widget as widget_module

    received = []
    patched_run = widget_module.DenoiseRun  # the fixture's, with a tiny network

    def recording_run(data, *args, **kwargs):
        received.append(np.array(data, copy=True))
        return patched_run(data, *args, **kwargs)

    monkeypatch.setattr(widget_module, "DenoiseRun", recording_run)
    return received


def _assert_lies_over(result, layer, rows, columns):
    """``result`` covers exactly pixels [rows) x [columns) of ``layer`` in the viewer's world."""
    np.testing.assert_allclose(result.scale, layer.scale[-2:])
    np.testing.assert_allclose(result.data_to_world((0, 0)), layer.data_to_world((rows[0], columns[0]))[-2:])
    last = (rows[1] - rows[0] - 1, columns[1] - columns[0] - 1)
    np.testing.assert_allclose(result.data_to_world(last), layer.data_to_world((rows[1] - 1, columns[1] - 1))[-2:])


def test_a_rectangle_in_a_shapes_layer_runs_on_that_region_only(viewer_and_widget, qtbot, monkeypatch):
    from napari_zsdenoise._qt.widget import REGION_SHAPE

    viewer, widget, layer = viewer_and_widget
    received = _record_run_inputs(monkeypatch)
    # Pixel centres 10..33 (rows) and 8..27 (columns) lie inside; the image has scale (0.2, 0.1), translate (5, 7).
    world = [layer.data_to_world(corner) for corner in ((9.6, 7.7), (33.4, 27.6))]
    shapes = viewer.add_shapes([np.array(world)], shape_type="rectangle", name="roi")
    viewer.add_shapes([np.array([[0.0, 0.0], [1.0, 1.0]])], shape_type="rectangle", name="elsewhere")
    viewer.layers.selection.active = shapes  # the selected Shapes layer wins over the topmost
    widget.layer_combo.value = layer
    widget.region_combo.value = REGION_SHAPE
    widget.settings["iterations"].value = 2
    _run_to_the_end(widget, qtbot)
    rows, columns = (10, 34), (8, 28)
    np.testing.assert_array_equal(received[-1], layer.data[slice(*rows), slice(*columns)])
    result = viewer.layers["cells_mpi-fast_region"]
    assert result.data.shape == (24, 20) and result.ndim == 2
    _assert_lies_over(result, layer, rows, columns)
    region = result.metadata["napari_zsdenoise"]["region"]
    assert region == {"kind": REGION_SHAPE, "plane": [], "rows": [10, 34], "columns": [8, 28]}
    assert widget.status_label.value.endswith("; rows 10-33, columns 8-27 of cells")
    # The image stays chosen (not the result napari selected), and a second region run keeps the first.
    assert widget.layer_combo.value.name == "cells"
    viewer.layers.selection.active = shapes
    _run_to_the_end(widget, qtbot)
    np.testing.assert_array_equal(received[-1], layer.data[slice(*rows), slice(*columns)])
    assert "cells_mpi-fast_region_2" in _names(viewer) and "cells_mpi-fast_region" in _names(viewer)


def test_the_selected_shape_is_the_region_when_one_is(viewer_and_widget, qtbot, monkeypatch, small_noisy):
    from napari_zsdenoise._qt.widget import REGION_SHAPE

    viewer, widget, _ = viewer_and_widget
    received = _record_run_inputs(monkeypatch)
    stack = viewer.add_image(np.stack([small_noisy, small_noisy // 2, small_noisy // 3]), name="stack")
    shapes = viewer.add_shapes([np.array([[2.0, 3.0], [21.0, 24.0]]), np.array([[20.0, 5.0], [45.0, 38.0]])],
                               shape_type="rectangle", name="rois")
    viewer.dims.set_point(0, 1.0)
    shapes.selected_data = {0}
    widget.layer_combo.value = stack
    widget.region_combo.value = REGION_SHAPE
    assert not widget.current_plane_check.enabled  # a region always lies in the plane on screen
    widget.settings["iterations"].value = 2
    _run_to_the_end(widget, qtbot)
    np.testing.assert_array_equal(received[-1], stack.data[1, 2:22, 3:25])
    result = viewer.layers["stack_mpi-fast_region"]
    assert result.data.shape == (20, 22)
    assert result.metadata["napari_zsdenoise"]["region"]["plane"] == [1]
    _assert_lies_over(result, stack, (2, 22), (3, 25))
    shapes.selected_data = set()  # none selected: the last shape
    _run_to_the_end(widget, qtbot)
    np.testing.assert_array_equal(received[-1], stack.data[1, 20:46, 5:39])


def test_the_visible_region_runs_on_what_is_on_screen(viewer_and_widget, qtbot, monkeypatch):
    from napari_zsdenoise._qt.widget import REGION_VISIBLE

    viewer, widget, layer = viewer_and_widget
    received = _record_run_inputs(monkeypatch)
    viewer.canvas.size = (300, 200)  # (height, width) in screen pixels
    camera = viewer.scene.camera
    # 50 screen pixels per world unit: 6 x 4 world units = 30 rows x 40 columns of this image, centred
    # between pixels so that the edges fall halfway between pixel centres.
    camera.zoom = 50.0
    camera.center = (*camera.center[:-2], *layer.data_to_world((24.5, 19.5)))
    widget.region_combo.value = REGION_VISIBLE
    widget.settings["iterations"].value = 2
    _run_to_the_end(widget, qtbot)
    assert tuple(viewer.canvas.size) == (300, 200)
    rows, columns = (10, 40), (0, 40)
    np.testing.assert_array_equal(received[-1], layer.data[slice(*rows), slice(*columns)])
    result = viewer.layers["cells_mpi-fast_region"]
    _assert_lies_over(result, layer, rows, columns)
    assert result.metadata["napari_zsdenoise"]["region"]["rows"] == [10, 40]


def test_a_region_too_small_or_missing_is_refused_with_a_reason(viewer_and_widget):
    from napari_zsdenoise._qt.widget import REGION_SHAPE, REGION_VISIBLE

    viewer, widget, layer = viewer_and_widget
    widget.region_combo.value = REGION_SHAPE
    widget.start()
    assert not widget.is_running and "draw a rectangle in a Shapes layer" in widget.status_label.value
    world = [layer.data_to_world(corner) for corner in ((10.0, 10.0), (13.0, 13.0))]
    viewer.add_shapes([np.array(world)], shape_type="rectangle")
    widget.start()
    assert not widget.is_running
    assert "rectangle in a Shapes layer (4 × 4 pixels)" in widget.status_label.value
    assert "at least" in widget.status_label.value  # the engine's minimum size, as it says it
    widget.region_combo.value = REGION_VISIBLE
    viewer.scene.camera.center = (0.0, -1000.0, -1000.0)
    widget.start()
    assert not widget.is_running and "does not overlap cells" in widget.status_label.value
    assert _names(viewer) == ["cells", "Shapes"]


def _estimate_shown(widget):
    return widget.estimate_label.value.startswith("estimated: ") and "–" not in widget.estimate_label.value


def test_the_estimate_is_measured_off_the_gui_thread_then_read_from_the_cache(viewer_and_widget, qtbot, probe_calls,
                                                                             monkeypatch):
    import threading

    from napari_zsdenoise import estimate

    _, widget, _ = viewer_and_widget
    qtbot.waitUntil(lambda: _estimate_shown(widget), timeout=TIMEOUT_MS)
    # mpi-fast: 200 iterations, no early stopping, on a 48 x 40 plane.
    per_iteration = PROBE_SECONDS * 48 * 40 / estimate.PROBE_SIZE**2
    assert widget.estimate_label.value == (f"estimated: {estimate.format_duration(200 * per_iteration)} on cpu "
                                           f"(1 plane, 200 it × {per_iteration:.2g} s)")
    assert any(call[0] == "mpi-fast" for call in probe_calls)
    assert all(call[2]["cancel"] is not None for call in probe_calls)

    # A probe that waits: the label says so meanwhile, and the GUI thread is free.
    release, gui_thread = threading.Event(), threading.get_ident()
    threads = []

    def slow_probe(method, size, **kwargs):
        threads.append(threading.get_ident())
        release.wait(TIMEOUT_MS / 1000)
        return 2 * PROBE_SECONDS

    monkeypatch.setattr(estimate, "probe_seconds_per_iteration", slow_probe)
    widget.method_combo.value = "mpi"
    qtbot.waitUntil(lambda: bool(threads), timeout=TIMEOUT_MS)
    assert widget.estimate_label.value == "estimating…" and gui_thread not in threads
    release.set()
    qtbot.waitUntil(lambda: _estimate_shown(widget), timeout=TIMEOUT_MS)
    assert widget.estimate_label.value.startswith("estimated: up to ") and "≤ 1000 it" in widget.estimate_label.value
    # Back to a choice measured before: from the cache, at once, no probe.
    widget.method_combo.value = "mpi-fast"
    assert _estimate_shown(widget) and "200 it" in widget.estimate_label.value and len(threads) == 1


def test_the_estimate_follows_the_region_and_the_settings(viewer_and_widget, qtbot, small_noisy):
    from napari_zsdenoise._qt.widget import REGION_SHAPE

    viewer, widget, layer = viewer_and_widget
    qtbot.waitUntil(lambda: _estimate_shown(widget), timeout=TIMEOUT_MS)
    widget.settings["iterations"].value = 30
    assert "(1 plane, 30 it ×" in widget.estimate_label.value
    stack = viewer.add_image(np.stack([small_noisy] * 3), name="stack")
    widget.layer_combo.value = stack
    assert "(3 planes, 3 × 30 it ×" in widget.estimate_label.value
    widget.current_plane_check.value = True
    assert "(1 plane, 30 it ×" in widget.estimate_label.value
    whole = widget.estimate_label.value
    widget.region_combo.value = REGION_SHAPE
    assert "draw a rectangle" in widget.estimate_label.value
    viewer.add_shapes([np.array([[0.0, 0.0], [15.0, 15.0]])], shape_type="rectangle")
    qtbot.waitUntil(lambda: _estimate_shown(widget), timeout=TIMEOUT_MS)
    assert widget.estimate_label.value != whole and "(1 plane, 30 it ×" in widget.estimate_label.value


def test_no_probe_starts_while_a_run_is_running(viewer_and_widget, qtbot, probe_calls):
    viewer, widget, _ = viewer_and_widget
    qtbot.waitUntil(lambda: _estimate_shown(widget), timeout=TIMEOUT_MS)
    probes_before = len(probe_calls)
    widget.settings["iterations"].value = 100_000
    widget.start()
    worker = widget._worker
    # The precision that "auto" does not pick on this CPU (bf16 needs its instructions): not measured yet.
    from napari_zsdenoise.devices import resolve_precision

    unmeasured = "bf16" if resolve_precision("auto", torch.device("cpu")) == "fp32" else "fp32"
    widget.precision_combo.value = unmeasured
    assert widget.estimate_label.value == "estimated: – (measured when this run ends)"
    qtbot.waitUntil(lambda: "cells [preview]" in _names(viewer), timeout=TIMEOUT_MS)
    assert len(probe_calls) == probes_before
    with qtbot.waitSignal(worker.finished, timeout=TIMEOUT_MS):
        widget.stop_button.clicked.emit()
    qtbot.waitUntil(lambda: _estimate_shown(widget), timeout=TIMEOUT_MS)
    assert len(probe_calls) == probes_before + 1 and probe_calls[-1][2]["precision"] == unmeasured


def test_compare_shows_the_newest_result_beside_its_source_and_restores_the_view(viewer_and_widget, qtbot):
    viewer, widget, layer = viewer_and_widget
    other = viewer.add_image(np.zeros((48, 40), dtype=np.float32), name="other")
    hidden = viewer.add_image(np.ones((48, 40), dtype=np.float32), name="hidden", visible=False)
    widget.layer_combo.value = layer
    assert not widget.compare_button.enabled
    widget.settings["iterations"].value = 2
    _run_to_the_end(widget, qtbot)
    _run_to_the_end(widget, qtbot)
    assert widget.compare_button.enabled and widget.compare_button.text == "compare"
    grid = viewer.canvas.grid
    from napari_zsdenoise._qt.region import camera_of

    camera = camera_of(viewer)
    viewer.reset_view()
    one_image = (tuple(camera.center), camera.zoom)
    widget.compare_button.clicked.emit()
    assert grid.enabled and widget.compare_button.text == "end compare"
    assert {lay.name for lay in viewer.layers if lay.visible} == {"cells", "cells_mpi-fast_2"}
    assert camera.zoom < one_image[1]  # zoomed out, so that both images are whole on screen
    widget.compare_button.clicked.emit()
    assert not grid.enabled and widget.compare_button.text == "compare"
    assert (tuple(camera.center), camera.zoom) == one_image
    visible = {lay.name: lay.visible for lay in viewer.layers}
    assert visible == {"cells": True, "other": True, "hidden": False, "cells_mpi-fast": True, "cells_mpi-fast_2": True}
    assert other.visible and not hidden.visible
    # Without a result left there is nothing to compare.
    viewer.layers.remove("cells_mpi-fast")
    viewer.layers.remove("cells_mpi-fast_2")
    assert not widget.compare_button.enabled


def test_compare_keeps_a_grid_the_user_had(viewer_and_widget, qtbot):
    viewer, widget, _ = viewer_and_widget
    grid = viewer.canvas.grid
    grid.enabled, grid.stride = True, 2
    widget.settings["iterations"].value = 2
    _run_to_the_end(widget, qtbot)
    widget.compare_button.clicked.emit()
    assert grid.enabled and grid.stride == 1
    widget.compare_button.clicked.emit()
    assert grid.enabled and grid.stride == 2


def test_rgb_layers_are_offered_and_refused_only_on_run(viewer_and_widget):
    viewer, widget, _ = viewer_and_widget
    rgb = viewer.add_image(np.zeros((48, 40, 3), dtype=np.uint8), name="photo", rgb=True)
    assert "photo" in [layer.name for layer in widget.layer_combo.choices]
    widget.layer_combo.value = rgb
    assert widget.status_label.value == ""  # choosing it is fine
    assert "RGB" in widget.estimate_label.value
    widget.start()
    assert not widget.is_running and "RGB layers are not supported" in widget.status_label.value
    assert "Split RGB" in widget.status_label.value
    assert _names(viewer) == ["cells", "photo"]
    # Choosing another image takes the refusal away; the image refused keeps it until then.
    widget.layer_combo.value = viewer.layers["cells"]
    assert widget.status_label.value == ""


def test_the_last_runs_progress_and_status_stay_until_the_next_run(viewer_and_widget, qtbot):
    from napari_zsdenoise._qt.widget import REGION_VISIBLE

    viewer, widget, _ = viewer_and_widget
    widget.settings["iterations"].value = 2
    _run_to_the_end(widget, qtbot)
    status = widget.status_label.value
    assert status.startswith("done: cells_mpi-fast") and widget.progress_bar.value == widget.progress_bar.max
    # Everything a user does between runs leaves them be.
    widget.method_combo.value = "mpi"
    widget.region_combo.value = REGION_VISIBLE
    widget.precision_combo.value = "fp32"
    widget.compare_button.clicked.emit()
    widget.compare_button.clicked.emit()
    qtbot.wait(3 * 150)  # past the estimate's delay after camera moves
    assert widget.status_label.value == status and widget.progress_bar.value == widget.progress_bar.max
    assert not widget.status_label.native.isHidden() and not widget.progress_bar.native.isHidden()
    widget.region_combo.value = "whole image"
    widget.method_combo.value = "mpi-fast"
    widget.settings["iterations"].value = 100_000
    widget.start()
    assert widget.progress_bar.value == 0 and widget.status_label.value.startswith("Starting")
    with qtbot.waitSignal(widget._worker.finished, timeout=TIMEOUT_MS):
        widget.cancel_button.clicked.emit()


def test_settings_that_do_not_apply_are_greyed_but_show_their_values(viewer_and_widget):
    _, widget, _ = viewer_and_widget
    widget.method_combo.value = "bsn-quick"
    fields = widget.settings
    warm, whole_plane = fields["warm_iterations"], fields["whole_plane_iterations"]
    assert not fields["warm_start"].value
    assert not warm.enabled and warm.value == 100 and warm.native.text() == "100"
    fields["start_crop"].value = 256  # the steps on the whole plane after a start crop
    assert whole_plane.enabled and not warm.enabled
    fields["start_crop"].value = 0
    assert not whole_plane.enabled
    fields["warm_start"].value = True
    assert warm.enabled and warm.value == 100
    fields["early_stopping"].value = False
    for name, value in (("patience", 50), ("validation_every", 25)):
        assert not fields[name].enabled and fields[name].value == value and fields[name].native.text() == str(value)
    assert fields["holdout_fraction"].value == pytest.approx(0.05) and not fields["holdout_fraction"].enabled
    fields["early_stopping"].value = True
    assert fields["patience"].enabled
    # Greyed fields still reach the run when changed: the form is only a view of the settings.
    assert widget.method_overrides() == {"warm_start": True}
    widget.method_combo.value = "zs-n2m-fast"  # no stage 2: its settings do nothing
    assert not widget.settings["refine_learning_rate"].enabled
    assert widget.settings["refine_learning_rate"].native.text() == "0.00050"
    widget.settings["refine_share"].value = 0.2
    assert widget.settings["refine_learning_rate"].enabled


def test_a_long_status_line_wraps_instead_of_widening_the_dock(viewer_and_widget, qtbot):
    from qtpy.QtWidgets import QApplication

    viewer, _, _ = viewer_and_widget
    # Shown on its own: Qt lays out a hidden widget (the test viewer's dock) only once it is shown.
    widget = DenoiseWidget(viewer)
    widget.native.show()
    widget.status_label.value = "done"
    QApplication.processEvents()
    before = widget.native.sizeHint().width(), widget.native.minimumSizeHint().width()
    for long_line in ("Cannot run: " + "word " * 100, "Failed: /" + "x" * 500):
        widget.status_label.value = long_line
        widget.estimate_label.value = long_line
        QApplication.processEvents()
        assert widget.status_label.native.wordWrap() and widget.status_label.native.isVisible()
        after = widget.native.sizeHint().width(), widget.native.minimumSizeHint().width()
        assert after[0] <= before[0] + 4 and after[1] <= before[1] + 4, (before, after)
    # Gone before this test's viewer is: a dock outliving its viewer is not a case the product has.
    widget.native.deleteLater()
    qtbot.wait(50)


# --- MID: train on a layer, then denoise with the model ---------------------------------------------
TINY_MID_TRAINING = {"rounds": 2, "iterations_per_round": 6, "batch_size": 2, "patch_size": 32, "width": 8,
                     "scales": 3, "bank_patches": 16, "procedural_images": 2, "procedural_side": 32}


def test_choosing_mid_shows_the_training_section_and_asks_for_a_model_file(viewer_and_widget):
    _, widget, _ = viewer_and_widget
    assert widget.training_panel.native.isHidden()
    widget.method_combo.value = "mid"
    assert not widget.training_panel.native.isHidden()
    assert widget.settings["weights"].choices == (WEIGHTS_FILE,)
    assert not widget.form.weights_file.native.isHidden()
    widget.start()
    assert not widget.is_running
    assert "existing weights file" in widget.status_label.value
    widget.method_combo.value = "bsn-quick"
    assert widget.training_panel.native.isHidden()


def test_training_mid_on_a_stack_writes_a_model_that_mid_then_uses(viewer_and_widget, qtbot, small_noisy, tmp_path,
                                                                   monkeypatch):
    import napari_zsdenoise._qt.widget as widget_module
    from napari_zsdenoise.engine import DenoiseRun
    from napari_zsdenoise.methods.mid.model import read_model_card

    # The model fixes mid's network; the fixture's tiny network settings are the other methods'.
    monkeypatch.setattr(widget_module, "DenoiseRun", DenoiseRun)
    viewer, widget, _ = viewer_and_widget
    stack = viewer.add_image(np.stack([small_noisy, small_noisy[::-1], small_noisy[:, ::-1]]), name="stack")
    widget.layer_combo.value = stack
    widget.method_combo.value = "mid"
    panel = widget.training_panel
    for name, value in TINY_MID_TRAINING.items():
        panel.form.fields[name].value = value
    assert panel.training_settings().rounds == 2
    panel.start()
    assert panel.is_running, panel.status_label.value
    with qtbot.waitSignal(panel._worker.finished, timeout=TIMEOUT_MS):
        pass
    assert panel.status_label.value.startswith("Trained"), panel.status_label.value
    model = widget.trained_model
    assert model is not None and model.is_file() and model.parent == tmp_path / "probe-cache" / "mid-models"
    card = read_model_card(model)
    assert card["noisy_planes"] == 3 and card["sources"] == {"stack": 3} and card["rounds"] == 2
    assert len(card["round_history"]) == 2 and card["round_history"][1]["noise"]["kind"] != "gaussian"
    assert widget.method_overrides()["weights"] == str(model)
    # The model serves any layer of the same kind, and a method chosen later finds it again.
    widget.method_combo.value = "bsn-quick"
    widget.method_combo.value = "mid"
    assert widget.method_overrides()["weights"] == str(model)
    widget.layer_combo.value = viewer.layers["cells"]
    _run_to_the_end(widget, qtbot)
    result = viewer.layers[-1]
    assert result.name == "cells_mid" and result.data.shape == small_noisy.shape
    assert np.isfinite(result.data).all()
    # A second fit of the same layer gets a file of its own.
    assert panel._output_path("stack") != model


def test_stopping_mid_training_keeps_the_finished_rounds(viewer_and_widget, qtbot, small_noisy, tmp_path):
    from napari_zsdenoise.methods.mid.training import partial_folder

    viewer, widget, layer = viewer_and_widget
    widget.method_combo.value = "mid"
    panel = widget.training_panel
    for name, value in {**TINY_MID_TRAINING, "rounds": 3, "iterations_per_round": 40}.items():
        panel.form.fields[name].value = value
    out = tmp_path / "model.pt"
    panel.model_file.value = out
    panel.start()
    qtbot.waitUntil(lambda: (partial_folder(out) / "state.pt").is_file(), timeout=TIMEOUT_MS)
    with qtbot.waitSignal(panel._worker.finished, timeout=TIMEOUT_MS):
        panel.stop_button.clicked.emit()
    assert "stopped" in panel.status_label.value
    assert not out.exists() and (partial_folder(out) / "state.pt").is_file()
    assert widget.trained_model is None


def test_a_warning_before_training_stays_on_screen_as_a_notification(viewer_and_widget, monkeypatch):
    import napari.utils.notifications as notifications

    from napari_zsdenoise.methods.mid.training import FitProgress, correlated_noise_warning

    shown = []
    monkeypatch.setattr(notifications, "show_warning", shown.append)
    _, widget, _ = viewer_and_widget
    widget.method_combo.value = "mid"
    panel = widget.training_panel
    warning = correlated_noise_warning(2)
    panel._on_progress(FitProgress("warning", 1, 4, message=warning))
    # The status line is overwritten by the next step; the notification is not.
    panel._on_progress(FitProgress("train", 1, 4, 1, 300, 0.01, 1.0))
    panel._on_progress(FitProgress("round", 1, 4, message="round 1 done"))
    assert shown == [warning]


def test_training_refuses_planes_smaller_than_its_patches(viewer_and_widget):
    viewer, widget, _ = viewer_and_widget
    widget.layer_combo.value = viewer.add_image(np.zeros((20, 20), np.float32), name="tiny")
    widget.method_combo.value = "mid"
    widget.training_panel.start()
    assert not widget.training_panel.is_running
    assert "smaller than the training patches" in widget.training_panel.status_label.value
