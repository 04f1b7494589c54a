"""The `zsdenoise` command line: denoise files and folders, bench pairs, list methods."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

import napari_zsdenoise
from napari_zsdenoise.cli import build_parser, main
from napari_zsdenoise.io import read_tiff_metadata
from napari_zsdenoise.methods import method_names

from conftest import FMD_TEST

FAST = ["--iterations", "2", "--seed", "1"]


def test_denoise_file_round_trip(tmp_path, small_noisy, capsys):
    source, target = tmp_path / "in.tif", tmp_path / "out.tif"
    tifffile.imwrite(source, small_noisy)
    assert main(["denoise", str(source), "-o", str(target), "--method", "mpi-fast", *FAST]) == 0
    result = tifffile.imread(target)
    assert result.shape == small_noisy.shape and result.dtype == np.float32
    meta = read_tiff_metadata(target)
    assert meta["method"] == "mpi-fast" and meta["seed"] == 1 and meta["source"] == str(source)
    assert meta["parameters"]["iterations"] == 2
    err = capsys.readouterr().err  # progress and the summary go to stderr
    assert f"denoised in.tif -> {target}: mpi-fast, 1 plane, 2 iterations, " in err and " on cpu" in err

    # The same command again finds the work done and says so; other settings do not
    # overwrite without --overwrite, and the existing file is left untouched.
    before = target.read_bytes()
    assert main(["denoise", str(source), "-o", str(target), "--method", "mpi-fast", *FAST]) == 0
    assert "skipped" in capsys.readouterr().err
    assert main(["denoise", str(source), "-o", str(target), "--iterations", "3"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert target.read_bytes() == before
    assert main(["denoise", str(source), "-o", str(target), "--overwrite", "-q", *FAST]) == 0


def test_denoise_folder_of_stacks(tmp_path, small_noisy):
    folder, out = tmp_path / "raw", tmp_path / "denoised"
    folder.mkdir()
    tifffile.imwrite(folder / "a.tif", np.stack([small_noisy, small_noisy]))
    tifffile.imwrite(folder / "b.tiff", small_noisy)
    (folder / "notes.txt").write_text("not an image")
    assert main(["denoise", str(folder), "-o", str(out), "-q", *FAST]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.tif", "b.tif"]
    assert tifffile.imread(out / "a.tif").shape == (2, *small_noisy.shape)


def test_denoise_one_plane(tmp_path, small_noisy):
    source, target = tmp_path / "stack.tif", tmp_path / "plane.tif"
    larger = np.tile(small_noisy, (2, 2))  # a shuffle factor of 2 needs planes of 66 pixels or more
    tifffile.imwrite(source, np.stack([larger, larger]))
    argv = ["denoise", str(source), "-o", str(target), "--plane", "1", "--shuffle-factor", "2", "--mask-ratio", "0.3", "-q", *FAST]
    assert main(argv) == 0
    assert tifffile.imread(target).shape == larger.shape
    parameters = read_tiff_metadata(target)["parameters"]
    assert parameters["shuffle_factor"] == 2 and parameters["mask_ratio"] == 0.3


def test_bad_input_gives_an_error_message_not_a_traceback(tmp_path, capsys):
    source = tmp_path / "nan.tif"
    tifffile.imwrite(source, np.full((64, 64), np.nan, dtype=np.float32))
    # A file that fails is reported by name (exit 1); a command that cannot start exits 2.
    assert main(["denoise", str(source), "-o", str(tmp_path / "o.tif"), *FAST]) == 1
    assert f"error: {source}: image contains" in capsys.readouterr().err
    assert main(["denoise", str(tmp_path / "missing.tif"), "-o", str(tmp_path / "o.tif")]) == 2
    assert not (tmp_path / "o.tif").exists()


def test_methods_lists_every_preset_and_says_which_is_recommended_and_why(capsys):
    from napari_zsdenoise import get_method_spec, recommended_method

    assert main(["methods"]) == 0
    lines = capsys.readouterr().out.splitlines()
    listed = {line.split()[0] for line in lines if line.strip() and not line.startswith(" ")}
    assert listed == set(method_names())  # which methods the registry must hold: test_all_methods.py
    advice = [line.strip() for line in lines if "recommended:" in line]
    assert advice == [f"recommended: {get_method_spec(recommended_method()).recommendation}"]
    # Each preset's menu hint is on its line, as in the dock's method menu.
    for name in method_names():
        line = next(line for line in lines if line.split()[:1] == [name])
        assert f"[{get_method_spec(name).hint}]" in line
    assert build_parser().parse_args(["denoise", "in.tif", "-o", "out.tif"]).method == recommended_method()


def test_only_one_preset_can_be_recommended():
    import dataclasses

    from napari_zsdenoise import get_method_spec, recommended_method
    from napari_zsdenoise.methods import register_method

    second = dataclasses.replace(get_method_spec(recommended_method()), name="another-recommended")
    with pytest.raises(ValueError, match="only one preset is recommended"):
        register_method(second)


def test_an_unknown_method_is_an_error_message_naming_the_choices(tmp_path, small_noisy, capsys):
    source = tmp_path / "in.tif"
    tifffile.imwrite(source, small_noisy)
    assert main(["denoise", str(source), "-o", str(tmp_path / "out.tif"), "--method", "n2v"]) != 0
    err = capsys.readouterr().err
    assert "unknown method 'n2v'" in err and "zs-n2m-fast" in err
    assert not (tmp_path / "out.tif").exists()


def _write_synthetic_pairs(folder, count=2, side=72):
    from napari_zsdenoise.synthetic import fluorescence_phantom, poisson_gaussian_noise

    (folder / "raw").mkdir()
    (folder / "gt").mkdir()
    for i in range(count):
        clean = fluorescence_phantom((side, side), seed=i)
        noisy = poisson_gaussian_noise(clean, peak_photons=30, offset=0, seed=10 + i) / 30
        tifffile.imwrite(folder / "raw" / f"img_{i}.tif", (np.clip(noisy, 0, 1) * 255).astype(np.uint8))
        tifffile.imwrite(folder / "gt" / f"img_{i}.tif", (clean * 255).astype(np.uint8))


def test_bench_on_synthetic_pairs_writes_json(tmp_path, capsys):
    _write_synthetic_pairs(tmp_path)
    report = tmp_path / "bench.json"
    argv = ["bench", str(tmp_path), "--method", "mpi-fast", "--crop", "64", "--json", str(report), *FAST]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "img_0" in out and "img_1" in out and "mean over 2 image(s)" in out
    summary = json.loads(report.read_text())
    assert summary["count"] == 2 and summary["crop"] == 64
    assert {"mean_psnr", "mean_ssim", "mean_noisy_psnr", "mean_seconds"} <= set(summary)
    assert all(np.isfinite(e["psnr"]) for e in summary["images"])


def test_an_interrupted_bench_continues_from_its_per_image_figures(tmp_path, capsys):
    pairs, per_image = tmp_path / "pairs", tmp_path / "per-image"
    pairs.mkdir()
    _write_synthetic_pairs(pairs)
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    common = ["bench", str(pairs), "--method", "mpi-fast", "--crop", "64", "--per-image-dir", str(per_image), *FAST]
    assert main([*common, "--limit", "1", "--json", str(first)]) == 0  # "interrupted" after one image
    assert sorted(p.name for p in per_image.iterdir()) == ["img_0.tif.json"]
    stored = json.loads((per_image / "img_0.tif.json").read_text())["metadata"]
    assert stored["version"] == napari_zsdenoise.__version__ and stored["torch_threads"] >= 1
    assert main([*common, "--json", str(second)]) == 0
    before, after = json.loads(first.read_text()), json.loads(second.read_text())
    # The first image is read back, not run again (same figures, same seconds); the second is new.
    assert after["images"][0] == before["images"][0]
    assert after["count"] == 2 and sorted(p.name for p in per_image.iterdir()) == ["img_0.tif.json", "img_1.tif.json"]

    # Figures made with other settings are never mixed in.
    capsys.readouterr()
    assert main(["bench", str(pairs), "--method", "mpi-fast", "--crop", "48", "--per-image-dir", str(per_image), *FAST]) != 0
    assert "scored with other settings" in capsys.readouterr().err


def test_bench_refuses_figures_made_before_the_method_parameters_changed(tmp_path, capsys):
    pairs, per_image = tmp_path / "pairs", tmp_path / "per-image"
    pairs.mkdir()
    _write_synthetic_pairs(pairs, count=1)
    command = ["bench", str(pairs), "--method", "mpi-fast", "--crop", "64", "--per-image-dir", str(per_image), *FAST]
    assert main(command) == 0
    record_path = per_image / "img_0.tif.json"
    record = json.loads(record_path.read_text())
    assert main(command) == 0  # unchanged parameters: the record is reused

    # Same command line, but the record says it was made when the preset had another ema_beta.
    record["metadata"]["parameters"]["ema_beta"] = 0.5
    record_path.write_text(json.dumps(record))
    capsys.readouterr()
    assert main(command) != 0
    error = capsys.readouterr().err
    assert "other mpi-fast parameters" in error and "ema_beta: 0.5 then" in error


def test_bench_traces_the_preview_that_an_early_stop_would_return(tmp_path):
    pairs = tmp_path / "pairs"
    pairs.mkdir()
    _write_synthetic_pairs(pairs, count=1)
    traced, short = tmp_path / "traced.json", tmp_path / "short.json"
    common = ["bench", str(pairs), "--method", "mpi-fast", "--crop", "64", "--seed", "3"]
    assert main([*common, "--iterations", "6", "--trace-every", "2", "--json", str(traced)]) == 0
    assert main([*common, "--iterations", "4", "--json", str(short)]) == 0
    image = json.loads(traced.read_text())["images"][0]
    assert [row[0] for row in image["trace"]] == [2, 4, 6]
    assert image["trace"][-1][1:3] == [image["psnr"], image["ssim"]]
    seconds = [row[3] for row in image["trace"]]
    assert 0 < seconds[0] < seconds[1] < seconds[2] <= image["seconds"]
    # MPI's preview at iteration 4 of a 6-iteration run is what a 4-iteration run returns.
    assert image["trace"][1][1] == json.loads(short.read_text())["images"][0]["psnr"]


def test_bench_crops_at_the_centre_or_the_top_left_corner(tmp_path):
    from napari_zsdenoise.evaluation import centre_crop

    image = np.arange(6 * 8).reshape(6, 8)
    assert centre_crop(image, 4).tolist() == image[1:5, 2:6].tolist()
    assert centre_crop(image, 4, "top-left").tolist() == image[:4, :4].tolist()
    with pytest.raises(ValueError, match="crop origin"):
        centre_crop(image, 4, "middle")


@pytest.mark.skipif(not FMD_TEST.is_dir(), reason="../shared/data/fmd-test is not present")
def test_bench_reads_the_fmd_layout(tmp_path, capsys):
    report = tmp_path / "fmd.json"
    argv = ["bench", str(FMD_TEST), "--pattern", "*_1.png", "--limit", "1", "--crop", "64", "--json", str(report), *FAST]
    assert main(argv) == 0
    summary = json.loads(report.read_text())
    assert summary["count"] == 1
    assert 20 < summary["mean_noisy_psnr"] < 45  # 8-bit FMD pairs scaled to [0, 1]


def test_speed_prints_milliseconds_per_iteration(capsys):
    assert main(["speed", "--method", "mpi-fast", "--size", "40", "--iterations", "2", "--warmup", "1",
                 "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "mpi-fast 40x40 on cpu:" in out and "ms per iteration" in out


@pytest.mark.parametrize("flag, expected", [("--early-stopping", True), ("--no-early-stopping", False)])
def test_early_stopping_flag_reaches_the_output_metadata(tmp_path, small_noisy, flag, expected):
    source, target = tmp_path / "in.tif", tmp_path / "out.tif"
    tifffile.imwrite(source, small_noisy[0] if small_noisy.ndim > 2 else small_noisy)
    assert main(["denoise", str(source), "-o", str(target), "--method", "mpi-fast", "-q", flag, *FAST]) == 0
    meta = read_tiff_metadata(target)
    assert meta["parameters"]["early_stopping"] is expected
    assert ("best_iteration" in meta["planes"][0]) is expected


def _another_text(spec, info):
    """A valid value other than the preset's, as typed on the command line."""
    if info.kind == "bool":
        return None  # a flag, see below
    if info.kind == "weights":
        return "none" if info.default is not None else "shipped"
    if info.kind == "int":
        # Steps of two, so odd-only settings (a window side) stay odd; the first one the
        # settings' cross-field checks accept (a training crop must fit the network).
        for value in (info.default + 2, info.default - 2, info.default + 64):
            if info.low is not None and value < info.low or info.high is not None and value > info.high:
                continue
            try:
                spec.make_config(**{info.name: value})
            except ValueError:
                continue
            return str(value)
    return repr(info.default * 0.5 if info.default else 0.5)


@pytest.mark.parametrize("method", method_names())
def test_every_setting_of_every_method_is_reachable_from_the_command_line(method):
    from napari_zsdenoise.cli import method_overrides, build_parser
    from napari_zsdenoise.methods import get_method_spec

    spec = get_method_spec(method)
    for info in spec.settings():
        text = _another_text(spec, info)
        by_option = [info.option, text] if text is not None else [
            info.option if not info.default else "--no-" + info.option.removeprefix("--")]
        by_set = ["--set", f"{info.name}={text if text is not None else str(not info.default).lower()}"]
        for words in (by_option, by_set):
            args = build_parser().parse_args(["denoise", "in.tif", "-o", "out.tif", "--method", method, *words])
            overrides = method_overrides(args)
            config = spec.make_config(**overrides)
            assert getattr(config, info.name) != getattr(spec.default_config, info.name), (method, words)


def test_set_names_the_settings_of_the_method_when_one_is_unknown(capsys):
    assert main(["denoise", "in.tif", "-o", "out.tif", "--method", "zs-n2n", "--set", "mask_ratio=0.5"]) == 2
    error = capsys.readouterr().err
    assert "zs-n2n has no setting 'mask_ratio'" in error and "hidden_channels" in error


def test_a_bad_setting_value_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit):
        main(["denoise", "in.tif", "-o", "out.tif", "--mask-ratio", "1.5"])
    assert "mask_ratio must be in (0, 1)" in capsys.readouterr().err


def test_methods_verbose_lists_every_setting_with_its_default(capsys):
    from napari_zsdenoise.methods import get_method_spec

    assert main(["methods", "--verbose"]) == 0
    listing = capsys.readouterr().out
    for method in method_names():
        block = listing.split(f"\n{method} ", 1)[1] if not listing.startswith(method) else listing
        for info in get_method_spec(method).settings():
            assert info.option in block.split("\n\n", 1)[0], (method, info.name)
    assert "advanced" in listing and "basic" in listing and "NeurIPS 2024" in listing


def test_a_folder_runs_on_a_two_worker_local_dask_cluster_as_it_runs_here(tmp_path, small_noisy, capsys):
    pytest.importorskip("distributed")
    import torch

    folder = tmp_path / "in"
    folder.mkdir()
    for index in range(3):
        tifffile.imwrite(folder / f"image{index}.tif", small_noisy + index)
    (folder / "broken.tif").write_bytes(b"not a tiff")
    settings = ["--method", "mpi-fast", "--width", "8", "--scales", "3", "--weights", "none", "-q", *FAST]
    assert main(["denoise", str(folder), "-o", str(tmp_path / "cluster"), "--dask", "local", "--dask-workers", "2",
                 *settings]) == 1
    err = capsys.readouterr().err
    assert "error: " in err and "broken.tif" in err and "3 denoised, 0 skipped (already done), 1 failed" in err
    # The same files denoised here, with the workers' one torch thread, give the same results.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["denoise", str(folder / "image1.tif"), "-o", str(tmp_path / "here.tif"), *settings]) == 0
    finally:
        torch.set_num_threads(threads)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "cluster" / "image1.tif"), tifffile.imread(tmp_path / "here.tif"))


def test_version_is_printed(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"zsdenoise {napari_zsdenoise.__version__}"


TINY_MPI = ["--method", "mpi-fast", "--width", "8", "--scales", "3", "--weights", "none", "--device", "cpu"]


def test_progress_without_a_terminal_is_plain_lines_with_a_summary_per_file(tmp_path, small_noisy, capsys, monkeypatch):
    import napari_zsdenoise.cli_progress as cli_progress

    source = tmp_path / "stack.tif"
    tifffile.imwrite(source, np.stack([small_noisy, small_noisy]))
    command = ["denoise", str(source), "-o", str(tmp_path / "out.tif"), *TINY_MPI, "--iterations", "3"]
    assert main(command) == 0
    err = capsys.readouterr().err  # captured: not a terminal
    assert "\r" not in err and "\x1b" not in err and err.endswith("\n")
    lines = err.splitlines()
    assert lines[0].startswith("stack.tif: plane 1/2 finished after 3/3 iterations, loss ")
    assert lines[1].startswith("stack.tif: plane 2/2 finished after 3/3 iterations, loss ")
    assert "about" in lines[0] and "left" in lines[0] and "elapsed" in lines[1]
    assert lines[2].startswith(f"denoised stack.tif -> {tmp_path / 'out.tif'}: mpi-fast, 2 planes, 3 iterations each, ")
    assert len(lines) == 3

    # Between finished planes, a line at most every PLAIN_PROGRESS_INTERVAL seconds of the run.
    monkeypatch.setattr(cli_progress, "PLAIN_PROGRESS_INTERVAL", 0.0)
    assert main([*command[:3], str(tmp_path / "every.tif"), *command[4:]]) == 0
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(",")[1].strip() for line in lines[:3]] == ["iteration 1/3", "iteration 2/3", "iteration 3/3"]

    # -q: nothing at all on stderr for a file that is simply denoised.
    assert main([*command[:3], str(tmp_path / "quiet.tif"), *command[4:], "-q"]) == 0
    assert capsys.readouterr().err == ""


class _FakeTerminal:
    def __init__(self):
        import io

        self.text = io.StringIO()

    def write(self, text):
        return self.text.write(text)

    def flush(self):
        pass

    def isatty(self):
        return True


def _events(plane, n_planes, iterations, total):
    from napari_zsdenoise import ProgressEvent

    return [ProgressEvent(i, total, 0.5, None, 0.1 * i, plane, n_planes, (plane,)) for i in range(1, iterations + 1)]


@pytest.mark.parametrize("finished", [True, False])
def test_the_bar_of_a_file_ends_full_after_early_stops_and_partial_when_stopped(finished):
    from napari_zsdenoise.cli import StderrProgress

    terminal = _FakeTerminal()
    progress = StderrProgress("cells.tif", quiet=False, stream=terminal)
    assert progress.on_terminal
    # Both planes are stopped early by their held-out check, after 4 and 6 of 10 iterations.
    for event in [*_events(0, 2, 4, 10), *_events(1, 2, 6, 10)]:
        progress(event)
    progress.message("a note")
    progress.close(finished=finished)
    shown = terminal.text.getvalue()
    last = shown.rstrip("\n").split("\r")[-1]
    assert last.startswith("cells.tif 2/2 it 6/10 loss 0.5 "), last
    assert ("100%" in last) is finished
    assert "a note\n" in shown and shown.endswith("\n")


def test_plain_lines_say_the_time_left_the_run_expects(monkeypatch):
    import io

    from napari_zsdenoise import ProgressEvent
    from napari_zsdenoise.cli import StderrProgress

    monkeypatch.setattr("napari_zsdenoise.cli_progress.PLAIN_PROGRESS_INTERVAL", 0.0)
    log = io.StringIO()
    progress = StderrProgress("stack.tif", quiet=False, stream=log)
    # Four planes; the first stopped early after 100 iterations, in 60 s; the run expects 180 s more
    # once it has started the second, and 150 s 30 s later.
    progress(ProgressEvent(100, 1000, 0.5, None, 60.0, 0, 4, (0,), {}, 60.0, None, 1500.0))
    progress(ProgressEvent(1, 1000, 0.5, None, 61.0, 1, 4, (1,), {}, 1.0, 60.0, 180.0))
    progress(ProgressEvent(50, 1000, 0.5, None, 90.0, 1, 4, (1,), {}, 30.0, 60.0, 150.0))
    lines = log.getvalue().splitlines()
    assert lines[-2].endswith("plane 1/4 finished after 100/1000 iterations, loss 0.5, 01:00 elapsed, about 03:00 left")
    assert lines[-1].endswith("plane 2/4, iteration 50/1000, loss 0.5, 01:30 elapsed, about 02:30 left")


def test_the_bar_keeps_plane_iteration_loss_and_time_left_in_80_columns(monkeypatch):
    import io

    from napari_zsdenoise import ProgressEvent
    from napari_zsdenoise.cli import StderrProgress

    log = io.StringIO()
    progress = StderrProgress("a-long-file-name-of-a-real-experiment.tif", quiet=False, stream=log)
    progress.on_terminal = True
    monkeypatch.setattr("napari_zsdenoise.cli_progress.terminal_is_sized", lambda stream: False)  # 80 columns
    progress(ProgressEvent(640, 1000, 0.001234, None, 3725.0, 11, 12, (11,), {}, 300.0, 310.0, 3725.0))
    progress.close(finished=False)
    line = log.getvalue().replace("\r", "\n").strip().splitlines()[-1]
    assert len(line) <= 80, line
    assert "12/12 it 640/1000 loss 0.00123 1:02:05<1:02:05" in line, line
    assert " 50%|" in line  # half of the expected time has passed


def test_the_run_expects_planes_to_take_what_planes_of_their_kind_took(small_noisy):
    from napari_zsdenoise import DenoiseRun

    stack = np.stack([small_noisy] * 12)
    run = DenoiseRun(stack, "bsn-balanced", device="cpu")  # warm start: 100 iterations after the first plane
    budget, warm_budget = run.config.iterations, run.config.warm_iterations
    # 10 iterations into the first plane at 0.5 s each: that plane's budget, then 11 warm budgets.
    assert run.expected_seconds_left(0, 10, 5.0) == pytest.approx(0.5 * ((budget - 10) + 11 * warm_budget))
    # The first plane stopped early after 400 iterations in 200 s; the second has done 10 in 5 s.
    run._finished_this_run.append((False, 400, 200.0))
    assert run.expected_seconds_left(1, 10, 5.0) == pytest.approx(0.5 * (warm_budget - 10) + 0.5 * 10 * warm_budget)
    # Warm planes that stopped after 60 iterations set the pace of those to come.
    run._finished_this_run.append((True, 60, 30.0))
    assert run.expected_seconds_left(2, 10, 5.0) == pytest.approx(0.5 * (60 - 10) + (230 / 460) * 9 * 60)
    # Without a warm start every plane is of one kind: the first plane's 400 iterations set the pace.
    cold = DenoiseRun(stack, "bsn-balanced", device="cpu", warm_start=False)
    cold._finished_this_run.append((False, 400, 200.0))
    assert cold.expected_seconds_left(1, 10, 5.0) == pytest.approx(0.5 * 390 + 0.5 * 10 * 400)


def test_a_file_summary_says_planes_iterations_kept_and_where_it_ran():
    from pathlib import Path

    from napari_zsdenoise.cli import _file_summary

    metadata = {"method": "bsn-quick", "planes_total": 1, "planes": [{"iterations_done": 312, "best_iteration": 262}],
                "camera_offset": 0.0, "seconds": 41.2, "device": "cpu", "precision": "fp32"}
    assert (_file_summary(Path("raw/cells2d_noisy.tif"), Path("out.tif"), metadata)
            == "denoised cells2d_noisy.tif -> out.tif: bsn-quick, 1 plane, 312 iterations (kept 262), "
               "41 s on cpu, fp32")
    stack = {**metadata, "planes_total": 3, "camera_offset": 100.0, "seconds": 250.0, "device": "cuda:0",
             "planes": [{"iterations_done": 400, "resumed": True}, {"iterations_done": 300, "best_iteration": 250},
                        {"iterations_done": 320, "best_iteration": None}]}
    assert (_file_summary(Path("stack.tif"), Path("o.tif"), stack, on_dask=True)
            == "denoised stack.tif -> o.tif: bsn-quick, 3 planes, 300-320 iterations each (kept 250-320), "
               "1 plane(s) from an earlier run, camera offset 100 subtracted, 4 min 10 s on cuda:0 (a Dask worker), "
               "fp32")


def test_dask_runs_report_each_finished_file_with_its_summary(tmp_path, small_noisy, capsys, monkeypatch):
    import napari_zsdenoise.batch as batch

    def files_here(jobs, request, keys, continuing, scheduler, *, workers=None, report):
        # The cluster's part is tested with a real one above; here only what is reported.
        for job in jobs:
            report(job, batch.denoise_file(job, request, keys[job]), None)

    monkeypatch.setattr(batch, "denoise_on_dask", files_here)
    folder = tmp_path / "in"
    folder.mkdir()
    tifffile.imwrite(folder / "a.tif", small_noisy)
    tifffile.imwrite(folder / "b.tif", small_noisy)
    assert main(["denoise", str(folder), "-o", str(tmp_path / "out"), "--dask", "local", *TINY_MPI, *FAST]) == 0
    err = capsys.readouterr().err
    for name in ("a.tif", "b.tif"):
        assert f"denoised {name} -> {tmp_path / 'out' / name}: mpi-fast, 1 plane, 2 iterations, " in err
    assert "on cpu (a Dask worker)" in err and "2 denoised, 0 skipped (already done), 0 failed" in err


def _help_sections(text):
    """The option strings of each titled section of argparse's help text."""
    sections, title = {}, None
    for line in text.splitlines():
        if line and not line[0].isspace() and line.endswith(":"):
            title = line[:-1]
            sections[title] = set()
        elif title and line.startswith("  ") and not line.startswith("   "):
            first = line.split()[0].rstrip(",")
            sections[title].add(first)
            sections[title].update(word.rstrip(",") for word in line.split() if word.startswith("--"))
    return sections


def test_denoise_help_groups_its_options(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    with pytest.raises(SystemExit):
        main(["denoise", "--help"])
    sections = _help_sections(capsys.readouterr().out)
    expected = {
        "input and output": {"input", "-o", "--output", "--plane", "--overwrite", "--normalization", "--camera-offset",
                             "-q", "--quiet"},
        "method": {"--method"},
        "device": {"--device", "--precision"},
        "advanced": {"--set", "--seed", "--dask", "--dask-workers"},
    }
    for title, options in expected.items():
        assert options <= sections[title], (title, options - sections[title])
    assert {"--iterations", "--mask-ratio"} <= sections["method settings"]
    assert list(sections)[-5:] == ["input and output", "method", "method settings", "device", "advanced"]
    # No option is listed twice.
    everywhere = [option for options in sections.values() for option in options if option.startswith("-")]
    assert len(everywhere) == len(set(everywhere))


def test_camera_offset_reaches_the_run_and_the_provenance(tmp_path, small_noisy, capsys):
    source = tmp_path / "in.tif"
    tifffile.imwrite(source, small_noisy)
    before = source.read_bytes()
    common = ["denoise", str(source), *TINY_MPI, "--precision", "fp32", "-q", *FAST]
    assert main([*common, "-o", str(tmp_path / "zero.tif")]) == 0
    assert main([*common, "-o", str(tmp_path / "offset.tif"), "--camera-offset", "100.5"]) == 0
    assert read_tiff_metadata(tmp_path / "offset.tif")["camera_offset"] == 100.5
    assert read_tiff_metadata(tmp_path / "zero.tif")["camera_offset"] == 0.0
    np.testing.assert_allclose(tifffile.imread(tmp_path / "offset.tif"), tifffile.imread(tmp_path / "zero.tif") - 100.5,
                               rtol=0, atol=1e-3)
    assert source.read_bytes() == before
    # Another offset is another result: not skipped as done, and not written over without --overwrite.
    capsys.readouterr()
    assert main([*common, "-o", str(tmp_path / "offset.tif"), "--camera-offset", "90"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main([*common, "-o", str(tmp_path / "offset.tif"), "--camera-offset", "100.5"]) == 0
    assert "skipped" in capsys.readouterr().err


@pytest.mark.parametrize("text", ["nan", "inf", "ADU"])
def test_a_camera_offset_that_is_not_a_finite_number_is_refused_by_the_parser(tmp_path, text, capsys):
    with pytest.raises(SystemExit):
        main(["denoise", str(tmp_path / "missing.tif"), "-o", str(tmp_path / "o.tif"), "--camera-offset", text])
    assert f"--camera-offset: must be a finite number, not {text!r}" in capsys.readouterr().err
