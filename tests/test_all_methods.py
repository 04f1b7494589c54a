"""Every registered method behaves the same way in the engine: seed, stacks, stop, preview."""

from __future__ import annotations

import numpy as np
import pytest

from napari_zsdenoise import DenoiseRun, method_names
from napari_zsdenoise.methods import get_method_spec

# Cheap settings per method: tiny MPI networks, a short stage 2 for ZS-N2M.
CHEAP = {"mpi": {"width": 8, "scales": 3, "weights": None}, "mpi-fast": {"width": 8, "scales": 3, "weights": None},
         "bsn": {"width": 8, "scales": 3}, "zs-n2m": {"refine_share": 0.5}}


@pytest.fixture(autouse=True)
def _model_files(monkeypatch, mid_model_file):
    # MID has no shipped weights: its preset runs with a tiny model file.
    monkeypatch.setitem(CHEAP, "mid", {"weights": str(mid_model_file)})


def _run(name, image, **kwargs):
    settings = {"iterations": 4, **CHEAP.get(name, {}), **kwargs.pop("settings", {})}
    return DenoiseRun(image, name, device="cpu", preview_every=1, **settings, **kwargs)


def test_the_registry_holds_every_method_of_the_product():
    assert {"mpi", "mpi-fast", "bsn", "zs-n2n", "zs-n2m", "zs-n2m-fast", "ins-bsn"} <= set(method_names())
    assert get_method_spec("bsn").default_config.weights is None


@pytest.mark.parametrize("name", method_names())
def test_seeded_stack_runs_repeat_and_report_loss_and_previews(name, small_noisy):
    stack = np.stack([small_noisy, small_noisy[::-1]])
    results = []
    for _ in range(2):
        run = _run(name, stack, seed=5)
        events = list(run)
        results.append(run.result)
    assert results[0].shape == stack.shape and results[0].dtype == np.float32
    np.testing.assert_array_equal(results[0], results[1])
    assert {e.plane for e in events} == {0, 1}
    assert all(np.isfinite(e.loss) for e in events)
    previews = [e.preview for e in events if e.preview is not None]
    assert previews and all(p.shape == small_noisy.shape for p in previews)
    assert not np.array_equal(results[0], _result_with_seed(name, stack, 6))


def _result_with_seed(name, image, seed):
    run = _run(name, image, seed=seed)
    list(run)
    return run.result


@pytest.mark.parametrize("name", method_names())
def test_stop_keeps_the_current_estimate(name, small_noisy):
    run = _run(name, small_noisy, settings={"iterations": 10_000})
    for event in run:
        if event.iteration >= 2:
            run.stop()
    assert run.metadata["stopped_early"] and run.metadata["planes"][0]["iterations_done"] < 10
    assert run.result.shape == small_noisy.shape and np.isfinite(run.result).all()


@pytest.mark.parametrize("name", method_names())
def test_every_method_keeps_the_contract_and_describes_every_setting(name):
    import dataclasses

    from napari_zsdenoise.methods import DenoisingMethod
    from napari_zsdenoise.settings import MethodSettings

    spec = get_method_spec(name)
    assert issubclass(spec.implementation_class(), DenoisingMethod)
    assert isinstance(spec.default_config, MethodSettings)
    described = {info.name for info in spec.settings()}
    assert described == {field.name for field in dataclasses.fields(spec.default_config)}
    for info in spec.settings():
        assert info.help and info.label and info.kind in ("int", "float", "bool", "weights")


def test_an_implementation_outside_the_contract_is_refused():
    from napari_zsdenoise.methods import MethodSpec

    spec = MethodSpec("not-a-method", "", "napari_zsdenoise.engine:DenoiseRun", get_method_spec("zs-n2n").default_config)
    with pytest.raises(TypeError, match="not a DenoisingMethod"):
        spec.build(spec.default_config)


def test_weights_are_loaded_once_per_run_not_per_plane(small_noisy, monkeypatch):
    import napari_zsdenoise.methods.mpi.method as mpi_method

    loads = []
    real_load = mpi_method.load_weights
    monkeypatch.setattr(mpi_method, "load_weights", lambda choice: loads.append(choice) or real_load(choice))
    run = DenoiseRun(np.stack([small_noisy] * 3), "mpi-fast", iterations=1, device="cpu")
    list(run)
    assert loads == ["shipped"] and len(run.metadata["planes"]) == 3
