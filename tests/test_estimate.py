"""The duration estimate: scaling from the probe, and the probe cache."""

from __future__ import annotations

import json
import threading

import pytest

from napari_zsdenoise import estimate
from napari_zsdenoise.methods import get_method_spec

from conftest import TINY


@pytest.fixture
def probes(monkeypatch, tmp_path):
    """A cache in tmp_path and a probe that answers at once: 0.1 s per iteration at any size,
    recording what it was asked."""
    monkeypatch.setenv(estimate.CACHE_ENV, str(tmp_path / "cache"))
    calls = []

    def fake_probe(method, size, **kwargs):
        calls.append((method, size, kwargs))
        return 0.1

    monkeypatch.setattr(estimate, "probe_seconds_per_iteration", fake_probe)
    return calls


def test_seconds_per_iteration_scale_with_the_planes_pixel_count(probes):
    result = estimate.estimate_duration("mpi-fast", (256, 512), device="cpu", precision="fp32")
    assert probes[0][1] == estimate.PROBE_SIZE
    pixels_ratio = 256 * 512 / estimate.PROBE_SIZE**2
    assert result.seconds_per_iteration == pytest.approx(0.1 * pixels_ratio)
    assert result.plane_shape == (256, 512) and result.planes == 1
    assert result.iterations == get_method_spec("mpi-fast").default_config.iterations
    assert result.total_seconds == pytest.approx(result.iterations * 0.1 * pixels_ratio)
    assert not result.can_end_sooner and not result.from_cache
    assert result.device == "cpu" and result.precision == "fp32"


def test_a_stack_counts_every_plane_and_overrides_set_the_budget(probes):
    result = estimate.estimate_duration("mpi-fast", (2, 3, 128, 128), device="cpu", overrides={"iterations": 50})
    assert result.planes == 6 and result.iterations == 50 and result.total_iterations == 300
    assert result.total_seconds == pytest.approx(300 * 0.1)
    assert "6 planes" in result.describe() and "6 × 50 it" in result.describe()


def test_early_stopping_makes_the_budget_a_maximum(probes):
    stopping = estimate.estimate_duration("mpi", (128, 128), device="cpu")
    assert stopping.can_end_sooner
    assert stopping.describe().startswith("up to ") and "≤ 1000 it × 0.1 s" in stopping.describe()
    fixed = estimate.estimate_duration("mpi-fast", (128, 128), device="cpu")
    assert not fixed.can_end_sooner and not fixed.describe().startswith("up to")
    assert fixed.describe() == "20 s on cpu (1 plane, 200 it × 0.1 s)"


def test_a_warm_start_gives_later_planes_their_own_budget(probes):
    result = estimate.estimate_duration("bsn-quick", (4, 128, 128), device="cpu", overrides={"warm_start": True})
    assert result.iterations == 1000 and result.later_iterations == 100
    assert result.total_iterations == 1000 + 3 * 100
    assert "1000 + 3 × 100 it" in result.describe()


def test_a_training_crop_caps_the_pixels_an_iteration_works_on(probes):
    crop = 2 * estimate.PROBE_SIZE
    small = estimate.estimate_duration("mpi-fast", (crop, crop), device="cpu", overrides={"training_crop": crop})
    large = estimate.estimate_duration("mpi-fast", (4 * crop, 4 * crop), device="cpu",
                                       overrides={"training_crop": crop})
    assert large.seconds_per_iteration == pytest.approx(small.seconds_per_iteration)
    # The probe's plane lay within the crop: all of its pixels were worked on.
    assert small.seconds_per_iteration == pytest.approx(0.1 * crop**2 / estimate.PROBE_SIZE**2)


def test_the_probe_runs_once_then_the_cache_answers(probes):
    first = estimate.estimate_duration("mpi-fast", (64, 64), device="cpu", precision="fp32")
    again = estimate.estimate_duration("mpi-fast", (512, 512), device="cpu", precision="fp32",
                                       overrides={"iterations": 7, "mask_ratio": 0.5})
    assert len(probes) == 1 and not first.from_cache and again.from_cache
    assert again.seconds_per_iteration == pytest.approx(0.1 * 512**2 / estimate.PROBE_SIZE**2)
    assert estimate.cache_file().parent == estimate.cache_dir()
    assert estimate.cache_file().is_file()


@pytest.mark.parametrize("change", [
    {"method": "mpi"},
    {"precision": "bf16"},
    {"overrides": {"width": 16}},
    {"probe_size": estimate.PROBE_SIZE // 2},
])
def test_each_part_of_the_key_gets_its_own_probe(probes, change):
    choice = {"method": "mpi-fast", "precision": "fp32", "overrides": None, "probe_size": estimate.PROBE_SIZE}
    estimate.estimate_duration(choice["method"], (64, 64), device="cpu", precision=choice["precision"],
                               overrides=choice["overrides"], probe_size=choice["probe_size"])
    choice.update(change)
    result = estimate.estimate_duration(choice["method"], (64, 64), device="cpu", precision=choice["precision"],
                                        overrides=choice["overrides"], probe_size=choice["probe_size"])
    assert len(probes) == 2 and not result.from_cache


def test_the_torch_thread_count_is_part_of_the_key(probes):
    import torch

    threads = torch.get_num_threads()
    key = estimate.probe_key("mpi-fast", device="cpu", precision="fp32")
    torch.set_num_threads(threads + 1)
    try:
        assert estimate.probe_key("mpi-fast", device="cpu", precision="fp32") != key
    finally:
        torch.set_num_threads(threads)
    assert estimate.probe_key("mpi-fast", device="cpu", precision="fp32") == key


def test_probe_size_is_raised_to_the_methods_minimum(probes):
    result = estimate.estimate_duration("mpi-fast", (600, 600), device="cpu", overrides={"scales": 8},
                                        probe_size=32)
    minimum = get_method_spec("mpi-fast").make_config(scales=8).min_size
    assert probes[0][1] == minimum == result.probe_size


def test_without_a_cached_figure_and_no_probe_allowed_there_is_no_estimate(probes):
    assert estimate.estimate_duration("mpi-fast", (64, 64), device="cpu", probe=False) is None
    assert probes == []
    estimate.estimate_duration("mpi-fast", (64, 64), device="cpu")
    assert estimate.estimate_duration("mpi-fast", (64, 64), device="cpu", probe=False).from_cache


@pytest.mark.parametrize("content", ["{not json", json.dumps([1, 2]), json.dumps({"version": 1, "entries": 3}),
                                     json.dumps({"version": 1, "entries": {}}).replace("{}", '{"k": "x"}')])
def test_a_corrupt_cache_file_is_ignored_and_replaced(probes, content):
    estimate.cache_dir().mkdir(parents=True)
    estimate.cache_file().write_text(content)
    result = estimate.estimate_duration("mpi-fast", (64, 64), device="cpu")
    assert result is not None and not result.from_cache
    assert estimate.estimate_duration("mpi-fast", (64, 64), device="cpu").from_cache


def test_a_corrupt_entry_is_measured_again(probes):
    key = estimate.probe_key("mpi-fast", device="cpu")
    estimate.cache_dir().mkdir(parents=True)
    estimate.cache_file().write_text(json.dumps({"version": 1, "entries": {key: {"seconds_per_iteration": -1}}}))
    assert not estimate.estimate_duration("mpi-fast", (64, 64), device="cpu").from_cache
    assert len(probes) == 1


def test_a_cache_folder_that_cannot_be_written_is_not_fatal(probes, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv(estimate.CACHE_ENV, str(blocker / "cache"))
    result = estimate.estimate_duration("mpi-fast", (64, 64), device="cpu")
    assert result is not None and not result.from_cache


def test_the_cache_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv(estimate.CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert estimate.cache_dir() == tmp_path / "xdg" / "napari-zsdenoise"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert estimate.cache_dir() == tmp_path / "home" / ".cache" / "napari-zsdenoise"
    monkeypatch.setenv(estimate.CACHE_ENV, str(tmp_path / "mine"))
    assert estimate.cache_dir() == tmp_path / "mine"


def test_bad_choices_raise_before_any_probe(probes):
    with pytest.raises(ValueError):
        estimate.estimate_duration("no-such-method", (64, 64))
    with pytest.raises(TypeError):
        estimate.estimate_duration("mpi-fast", (64, 64), overrides={"no_such_setting": 1})
    with pytest.raises(ValueError):
        estimate.estimate_duration("mpi-fast", (64,))
    assert probes == []


@pytest.mark.parametrize("seconds, text", [(0.4, "< 1 s"), (42, "42 s"), (7 * 60 + 10, "7 min"),
                                           (2 * 3600 + 5 * 60, "2 h 05 min")])
def test_durations_read_as_people_plan(seconds, text):
    assert estimate.format_duration(seconds) == text


def test_the_real_probe_times_iterations_and_can_be_cancelled():
    seconds = estimate.probe_seconds_per_iteration("mpi-fast", 32, device="cpu", overrides=TINY, iterations=2)
    assert seconds is not None and seconds > 0
    cancel = threading.Event()
    cancel.set()
    assert estimate.probe_seconds_per_iteration("mpi-fast", 32, device="cpu", overrides=TINY, cancel=cancel) is None


def test_a_method_that_needs_a_model_file_is_probed_with_the_chosen_one(mid_model_file):
    with pytest.raises(ValueError, match="model file"):
        estimate.probe_seconds_per_iteration("mid", 32, device="cpu")
    seconds = estimate.probe_seconds_per_iteration("mid", 32, device="cpu", overrides={"weights": mid_model_file},
                                                   iterations=2, warmup=1)
    assert seconds is not None and seconds > 0


def test_mids_probe_needs_the_model_file_and_then_times_its_passes(mid_model_file):
    with pytest.raises(ValueError, match="model file of your own"):
        estimate.probe_seconds_per_iteration("mid", 64, device="cpu", iterations=1, warmup=0)
    seconds = estimate.probe_seconds_per_iteration("mid", 64, device="cpu", iterations=2, warmup=0,
                                                   overrides={"weights": str(mid_model_file)})
    assert seconds is not None and seconds > 0


def test_a_start_crop_is_estimated_at_the_crops_size_then_the_whole_planes(probes):
    side = 2 * estimate.PROBE_SIZE
    overrides = {"start_crop": side, "whole_plane_iterations": 100}
    result = estimate.estimate_duration("bsn-quick", (4 * side, 2 * side), device="cpu", overrides=overrides)
    crop_step = 0.1 * side**2 / estimate.PROBE_SIZE**2
    assert result.start_crop_planes == 1 and result.start_crop_iterations == 900  # every plane (no warm start)...
    assert result.start_crop_seconds_per_iteration == pytest.approx(crop_step)
    assert result.iterations == 100 and result.seconds_per_iteration == pytest.approx(8 * crop_step)
    assert result.total_seconds == pytest.approx(900 * crop_step + 100 * 8 * crop_step)
    assert "900 it × " in result.describe() and " on a crop + 100 it × " in result.describe()
    stack = estimate.estimate_duration("bsn-quick", (3, 4 * side, 2 * side), device="cpu", overrides=overrides)
    assert stack.start_crop_planes == 3 and stack.later_iterations == 100  # ...each plane starts on its crop
    warm = estimate.estimate_duration("bsn-quick", (3, 4 * side, 2 * side), device="cpu",
                                      overrides={**overrides, "warm_start": True})
    assert warm.start_crop_planes == 1 and warm.total_iterations == 300  # later planes continue, whole
    small = estimate.estimate_duration("bsn-quick", (side, side), device="cpu", overrides=overrides)
    assert small.start_crop_planes == 0 and small.iterations == 1000


def test_the_plan_of_a_plane_is_declared_by_the_settings_and_needs_no_torch():
    config = get_method_spec("bsn-balanced").default_config
    large = config.plan((512, 512))
    assert [(phase.name, phase.shape) for phase in large.phases] == [("start crop", (256, 256)),
                                                                      ("whole plane", (512, 512))]
    assert large.iterations == config.iterations and large.can_end_sooner
    warm = config.plan((512, 512), warm=True)
    assert [(phase.name, phase.iterations) for phase in warm.phases] == [("warm start", config.warm_iterations)]
    assert config.plan((256, 256)).phases[0].name == "whole plane"  # no crop for a plane of the crop's size
    cropped = get_method_spec("mpi-fast").make_config(training_crop=128).plan((512, 384))
    assert cropped.phases[0].shape == (128, 128) and not cropped.can_end_sooner


def test_what_a_setting_needs_and_costs_is_declared_with_it():
    from napari_zsdenoise.settings import describe_settings

    infos = {info.name: info for info in describe_settings(get_method_spec("bsn-balanced").default_config)}
    assert infos["patience"].applies_when == ("early_stopping",) and not infos["patience"].changes_step_cost
    assert infos["warm_iterations"].applies_when == ("warm_start",)
    assert infos["whole_plane_iterations"].applies_when == ("start_crop",)
    assert infos["width"].changes_step_cost and infos["width"].applies_when == ()
    assert not infos["patience"].applies({"early_stopping": False}) and infos["patience"].applies({"early_stopping": True})
