"""The engine: shapes, dtypes, planes, progress events, stopping, reproducibility."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from napari_zsdenoise import DenoiseRun, ProgressEvent, denoise, method_names

from conftest import TINY


def _run(image, **kwargs):
    return denoise(image, "mpi-fast", iterations=kwargs.pop("iterations", 3), **{**TINY, **kwargs})


def test_presets_are_registered():
    assert {"mpi", "mpi-fast"} <= set(method_names())


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.float16, np.float32, np.float64])
def test_any_real_dtype_gives_float32_in_input_units(small_noisy, dtype):
    image = small_noisy.astype(dtype)
    before = image.copy()
    out = _run(image)
    assert out.dtype == np.float32 and out.shape == image.shape
    np.testing.assert_array_equal(image, before)  # never modified
    # Output stays in the input's intensity range (units), not in [0, 1].
    assert np.percentile(out, 50) == pytest.approx(np.percentile(image.astype(np.float64), 50), rel=0.3)


def test_array_likes_are_accepted(small_noisy):
    out = _run(small_noisy.astype(float).tolist())
    assert out.shape == small_noisy.shape


def test_stacks_are_processed_plane_by_plane(small_noisy):
    stack = np.stack([small_noisy, small_noisy[::-1]]).reshape(2, 1, *small_noisy.shape)
    run = DenoiseRun(stack, "mpi-fast", iterations=2, preview_every=1, **TINY)
    events = list(run)
    assert run.result.shape == stack.shape
    assert [(e.plane, e.plane_index, e.iteration) for e in events] == [
        (0, (0, 0), 1), (0, (0, 0), 2), (1, (1, 0), 1), (1, (1, 0), 2)
    ]
    assert all(e.n_planes == 2 and e.preview.shape == small_noisy.shape for e in events)
    assert events[-1].fraction_done == 1.0
    assert [p["iterations_done"] for p in run.metadata["planes"]] == [2, 2]


def test_later_planes_report_the_mean_seconds_of_the_planes_before(small_noisy):
    stack = np.stack([small_noisy, small_noisy[::-1], small_noisy[:, ::-1]])
    events = list(DenoiseRun(stack, "mpi-fast", iterations=2, preview_every=1, **TINY))
    first, later = [e for e in events if e.plane == 0], [e for e in events if e.plane > 0]
    assert all(e.seconds_per_plane is None for e in first)
    assert all(e.seconds_per_plane > 0 and 0 <= e.plane_elapsed <= e.elapsed for e in later)
    # The third plane's figure is the mean over two planes, so it differs from the second's.
    assert later[-1].seconds_per_plane != later[0].seconds_per_plane


def _event(iteration, total, plane, n_planes, elapsed, plane_elapsed, seconds_per_plane):
    return ProgressEvent(iteration, total, 0.0, None, elapsed, plane, n_planes, (plane,), {}, plane_elapsed,
                         seconds_per_plane)


def test_the_eta_follows_finished_planes_once_there_are_some():
    # No finished plane yet: the iteration budget is all there is (10 of 1000 iterations in 5 s).
    assert _event(10, 1000, 0, 4, 5.0, 5.0, None).eta_seconds == pytest.approx(5.0 * 3990 / 10)
    # Planes stopped early after 60 s each: the second plane, 20 s in, is expected to take 40 s more,
    # and the two after it 60 s each, far less than 1000 iterations each at this pace.
    assert _event(100, 1000, 1, 4, 80.0, 20.0, 60.0).eta_seconds == pytest.approx(40.0 + 2 * 60.0)
    # Near its budget's end, the current plane's own pace is the better bound.
    assert _event(990, 1000, 1, 4, 160.0, 99.0, 200.0).eta_seconds == pytest.approx(1.0 + 2 * 200.0)
    # A plane running longer than the typical one is not given negative time.
    assert _event(500, 1000, 3, 4, 300.0, 90.0, 60.0).eta_seconds == 0.0


def test_a_single_plane_can_be_chosen(small_noisy):
    stack = np.stack([small_noisy, small_noisy // 2, small_noisy // 3])
    full = _run(stack, iterations=2)
    only = _run(stack, iterations=2, plane=1)
    assert only.shape == small_noisy.shape
    np.testing.assert_array_equal(only, full[1])  # same plane, same seed, same result


def test_same_seed_reproduces_and_another_seed_differs(small_noisy):
    a = _run(small_noisy, seed=5)
    b = _run(small_noisy, seed=5)
    c = _run(small_noisy, seed=6)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_preview_cadence_by_iteration_count(small_noisy):
    run = DenoiseRun(small_noisy, "mpi-fast", iterations=7, preview_every=3, preview_interval=0, **TINY)
    with_preview = [e.iteration for e in run if e.preview is not None]
    assert with_preview == [3, 6, 7]  # and always the last one


def test_preview_cadence_by_time(small_noisy, monkeypatch):
    import napari_zsdenoise.engine as engine

    clock = iter(np.arange(0, 100, 0.1))  # each call advances 0.1 s
    monkeypatch.setattr(engine.time, "perf_counter", lambda: float(next(clock)))
    run = DenoiseRun(small_noisy, "mpi-fast", iterations=6, preview_every=0, preview_interval=0.25, **TINY)
    events = list(run)
    assert all(isinstance(e, ProgressEvent) for e in events)
    flags = [e.preview is not None for e in events]
    assert flags[-1] and 1 <= sum(flags[:-1]) <= 3


def test_preview_is_in_input_units(small_noisy):
    run = DenoiseRun(small_noisy, "mpi-fast", iterations=1, preview_every=1, **TINY)
    (event,) = list(run)
    # After one step the ensemble is mostly still the noisy image (beta = 0.9).
    assert abs(float(np.median(event.preview)) - float(np.median(small_noisy))) < 0.2 * float(np.ptp(small_noisy))


def test_stop_from_another_thread_keeps_the_current_estimate(small_noisy):
    stack = np.stack([small_noisy] * 3)
    run = DenoiseRun(stack, "mpi-fast", iterations=1000, preview_every=1, **TINY)
    seen = []
    for event in run:
        seen.append(event)
        if len(seen) == 4:
            threading.Thread(target=run.stop).start()
    assert run.stopped_early and run.metadata["stopped_early"]
    assert len(seen) < 20
    planes = run.metadata["planes"]
    assert len(planes) == 1 and planes[0]["iterations_done"] == len(seen)
    # Planes never reached keep the input values.
    np.testing.assert_array_equal(run.result[1:], stack[1:].astype(np.float32))
    assert not np.array_equal(run.result[0], stack[0].astype(np.float32))


def test_metadata_records_provenance(small_noisy):
    run = DenoiseRun(small_noisy, "mpi-fast", iterations=2, seed=3, device="cpu", **TINY)
    list(run)
    meta = run.metadata
    assert meta["method"] == "mpi-fast"
    assert meta["seed"] == 3 and meta["device"] == "cpu"
    assert meta["parameters"]["iterations"] == 2 and meta["parameters"]["ema_beta"] == 0.9
    assert meta["parameters"]["weights"] is None
    assert meta["weights"]["source"] == "random initialisation"
    assert meta["seconds"] > 0 and meta["version"]
    assert meta["input_dtype"] == "uint16" and meta["input_shape"] == list(small_noisy.shape)


def test_global_torch_rng_is_left_alone(small_noisy):
    import torch

    torch.manual_seed(99)
    expected = torch.rand(3)
    torch.manual_seed(99)
    _run(small_noisy)
    torch.testing.assert_close(torch.rand(3), expected)


def test_precision_is_recorded_and_bf16_only_where_the_method_allows_it(small_noisy):
    fp32 = DenoiseRun(small_noisy, "mpi-fast", iterations=3, precision="fp32", device="cpu", **TINY)
    bf16 = DenoiseRun(small_noisy, "mpi-fast", iterations=3, precision="bf16", device="cpu", **TINY)
    list(fp32), list(bf16)
    assert fp32.metadata["precision"] == "fp32" and bf16.metadata["precision"] == "bf16"
    assert np.isfinite(bf16.result).all() and not np.array_equal(fp32.result, bf16.result)
    with pytest.raises(ValueError, match="fp32 only"):
        DenoiseRun(small_noisy, "ins-bsn", precision="bf16", device="cpu")
    assert DenoiseRun(small_noisy, "ins-bsn", precision="auto", device="cpu").precision == "fp32"


def test_large_allocations_stay_on_the_heap_only_during_a_run():
    import platform

    from napari_zsdenoise._runtime import large_allocations_on_the_heap

    with large_allocations_on_the_heap() as changed:
        assert changed is (platform.system() == "Linux" and platform.libc_ver()[0] == "glibc")


def test_finished_planes_are_taken_as_they_are_and_new_ones_reported_as_they_finish(small_noisy):
    stack = np.stack([small_noisy, small_noisy + 1, small_noisy + 2]).astype(np.float32)
    first = DenoiseRun(stack, "mpi-fast", device="cpu", seed=3, iterations=2, **TINY)
    for _ in first:
        pass
    saved = {}
    earlier = {(0,): (first.result[0], first.metadata["planes"][0])}
    second = DenoiseRun(stack, "mpi-fast", device="cpu", seed=3, iterations=2, finished_planes=earlier,
                        on_plane_finished=lambda index, estimate, record: saved.update({index: estimate.copy()}), **TINY)
    events = list(second)
    assert {event.plane_index for event in events} == {(1,), (2,)}
    assert sorted(saved) == [(1,), (2,)]
    np.testing.assert_array_equal(second.result, first.result)
    assert [plane.get("resumed", False) for plane in second.metadata["planes"]] == [True, False, False]
    with pytest.raises(ValueError, match="not among the planes"):
        DenoiseRun(stack, "mpi-fast", device="cpu", finished_planes={(5,): (stack[0], {})}, **TINY)


def test_stack_normalization_scales_every_plane_alike(small_noisy):
    # A bright plane and a dim one: per plane, the dim plane's noise would be stretched to
    # the bright plane's range; with one scaling both keep their relative levels.
    stack = np.stack([small_noisy.astype(np.float32), small_noisy.astype(np.float32) * 0.1])
    results = {}
    for normalization in ("plane", "stack"):
        run = DenoiseRun(stack, "mpi-fast", device="cpu", seed=0, iterations=2, normalization=normalization, **TINY)
        for _ in run:
            pass
        planes = run.metadata["planes"]
        results[normalization] = run.result
        same = planes[0]["scale"] == planes[1]["scale"] and planes[0]["offset"] == planes[1]["offset"]
        assert same is (normalization == "stack") and run.metadata["normalization"] == normalization
    # A plane run alone uses the stack's scaling too, so it matches that plane of the whole run.
    alone = DenoiseRun(stack, "mpi-fast", device="cpu", seed=0, iterations=2, normalization="stack", plane=1, **TINY)
    for _ in alone:
        pass
    np.testing.assert_array_equal(alone.result, results["stack"][1])
    with pytest.raises(ValueError, match="normalization must be one of plane, stack"):
        DenoiseRun(stack, "mpi-fast", normalization="global")


@pytest.mark.parametrize("normalization", ["plane", "stack"])
def test_a_camera_offset_only_moves_the_results_zero(small_noisy, normalization):
    stack = np.stack([small_noisy, small_noisy // 2])
    before = stack.copy()
    offset = float(np.median(small_noisy))  # half the pixels lie below it
    common = dict(device="cpu", precision="fp32", seed=2, iterations=3, normalization=normalization, **TINY)
    plain = DenoiseRun(stack, "mpi-fast", **common)
    shifted = DenoiseRun(stack, "mpi-fast", camera_offset=offset, **common)
    list(plain), list(shifted)
    np.testing.assert_allclose(shifted.result, plain.result - offset, rtol=0, atol=1e-3)
    assert (shifted.result < 0).any()  # values below the offset are kept, not clipped
    np.testing.assert_array_equal(stack, before)
    assert shifted.metadata["camera_offset"] == offset and plain.metadata["camera_offset"] == 0.0
    # denoise() takes it too, as a plain int.
    np.testing.assert_allclose(denoise(small_noisy, "mpi-fast", camera_offset=100, **common),
                               denoise(small_noisy, "mpi-fast", **common) - 100, rtol=0, atol=1e-3)


def test_planes_a_stopped_run_never_reached_are_the_input_less_the_camera_offset(small_noisy):
    stack = np.stack([small_noisy, small_noisy + 1])
    run = DenoiseRun(stack, "mpi-fast", camera_offset=100, iterations=2, **TINY)
    run.stop()
    list(run)
    np.testing.assert_array_equal(run.result, stack.astype(np.float32) - 100)


@pytest.mark.parametrize("offset", [float("nan"), float("inf"), "100", True, None])
def test_a_camera_offset_that_is_not_a_finite_number_is_refused_before_computing(small_noisy, offset, monkeypatch):
    monkeypatch.setattr(DenoiseRun, "__iter__", lambda self: pytest.fail("computing started"))
    with pytest.raises(ValueError, match="camera_offset must be a finite number") as refused:
        denoise(small_noisy, "mpi-fast", camera_offset=offset, **TINY)
    assert "\n" not in str(refused.value)


def test_the_api_the_cli_and_speed_default_to_the_one_recommended_preset(small_noisy):
    from napari_zsdenoise.cli import build_parser
    from napari_zsdenoise.methods.registry import recommended_method

    run = DenoiseRun(small_noisy, iterations=1, device="cpu")
    assert run.spec.name == recommended_method()
    parser = build_parser()
    assert parser.parse_args(["denoise", "in.tif", "-o", "out.tif"]).method == recommended_method()
    assert parser.parse_args(["speed"]).method == recommended_method()
