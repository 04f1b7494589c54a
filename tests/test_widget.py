"""The dock widget in a real (headless, Xvfb) napari viewer."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("qtpy")

from napari_zsdenoise._qt.widget import DenoiseWidget  # noqa: E402

from napari_zsdenoise._qt.widget import WEIGHTS_FILE, WEIGHTS_RANDOM, WEIGHTS_SHIPPED  # noqa: E402

from conftest import TINY  # noqa: E402

TIMEOUT_MS = 120_000


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
    assert widget.method_combo.native.currentText() == f"{recommended_method()}  (recommended)"
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
            if info.kind == "weights":
                assert shown == (WEIGHTS_RANDOM if info.default is None else WEIGHTS_SHIPPED), (name, info.name)
            else:
                assert shown == pytest.approx(info.default), (name, info.name)
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


def test_every_setting_of_every_method_is_reachable_from_the_widget(viewer_and_widget):
    from napari_zsdenoise.methods import get_method_spec, method_names

    _, widget, _ = viewer_and_widget
    for name in method_names():
        widget.method_combo.value = name
        for info in get_method_spec(name).settings():
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
    np.testing.assert_array_equal(layer.data, viewer_and_widget[1]._source.data)  # input untouched


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
    assert "best held-out check (iteration" in widget.status_label.value


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
    assert [pair[0] for pair in plane["holdout_error"]] == [10, 20, 30, 40, 50, 60]
