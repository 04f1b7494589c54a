"""The failure catalogue: what happens with bad input, bad settings and faults, case by case.

Each case asserts the message a user sees and that nothing was lost or left behind. The
list is the project's promise, written out in docs/failure-catalogue.md.
"""

from __future__ import annotations

import json
import os
import signal

import numpy as np
import pytest
import tifffile

from napari_zsdenoise import DenoiseRun
from napari_zsdenoise.cli import main
from napari_zsdenoise.io import read_image_info, read_tiff_metadata

from conftest import TINY, killed_at_plane

FAST = ["--method", "mpi-fast", "--iterations", "2", "--width", "8", "--scales", "3", "--weights", "none", "-q"]


def _loud(arguments):
    """``arguments`` without -q, for a test that reads what is said beside errors."""
    return [argument for argument in arguments if argument != "-q"]


def _tmp_files(folder):
    return sorted(p.name for p in folder.rglob("*") if p.name.startswith(".") or p.suffix == ".tmp")


# --- settings ----------------------------------------------------------------------------

@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("name", ["mask_ratio", "ema_beta", "learning_rate", "holdout_fraction"])
def test_a_float_setting_must_be_finite(small_noisy, name, value):
    with pytest.raises(ValueError, match=f"{name} must be a finite number"):
        DenoiseRun(small_noisy, "mpi", **{name: value})


def test_an_unbounded_float_setting_must_be_finite_too(small_noisy):
    with pytest.raises(ValueError, match="alpha_ie must be a finite number"):
        DenoiseRun(small_noisy, "zs-n2m", alpha_ie=float("inf"))


def test_nan_on_the_command_line_is_refused_before_reading_anything(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["denoise", str(tmp_path / "missing.tif"), "-o", str(tmp_path / "o.tif"), "--mask-ratio", "nan"])
    assert "mask_ratio must be a finite number" in capsys.readouterr().err


def test_numpy_scalar_settings_are_accepted_as_plain_numbers(small_noisy):
    run = DenoiseRun(small_noisy, "mpi-fast", iterations=np.int64(2), mask_ratio=np.float32(0.5), **TINY)
    list(run)
    assert run.metadata["parameters"]["iterations"] == 2 and type(run.config.iterations) is int
    assert run.metadata["parameters"]["mask_ratio"] == pytest.approx(0.5)


# --- input arrays ------------------------------------------------------------------------

def test_colour_input_says_colour_is_not_supported_and_how_to_split_it():
    rgb = np.zeros((64, 64, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"colour is not supported.*image\[\.\.\., 0\]"):
        DenoiseRun(rgb, "mpi-fast")


@pytest.mark.parametrize(("image", "message"), [
    (np.full((64, 64), 1e39, dtype=np.float64), "beyond float32's range"),
    (np.arange(64 * 64, dtype=np.int64).reshape(64, 64) % 3 + 2**40, "subtract an offset"),
])
def test_values_float32_output_cannot_hold_are_refused(image, message):
    with pytest.raises(ValueError, match=message):
        DenoiseRun(image, "mpi-fast")


def test_a_torch_tensor_is_accepted(small_noisy):
    import torch

    tensor = torch.from_numpy(small_noisy.astype(np.float32))
    run = DenoiseRun(tensor, "mpi-fast", iterations=1, **TINY)
    list(run)
    assert run.result.shape == small_noisy.shape and run.metadata["input_dtype"] == "float32"


def test_stop_before_iterating_returns_the_input_marked_as_not_denoised(small_noisy):
    stack = np.stack([small_noisy, small_noisy])
    run = DenoiseRun(stack, "mpi-fast", iterations=3, **TINY)
    run.stop()
    assert list(run) == []
    np.testing.assert_array_equal(run.result, stack.astype(np.float32))
    assert run.stopped_early and run.metadata["planes_not_denoised"] == [[0], [1]]
    np.testing.assert_array_equal(stack, np.stack([small_noisy, small_noisy]))  # input untouched


def test_a_run_runs_once(small_noisy):
    run = DenoiseRun(small_noisy, "mpi-fast", iterations=1, **TINY)
    list(run)
    first = run.result.copy()
    with pytest.raises(RuntimeError, match="runs once"):
        list(run)
    np.testing.assert_array_equal(run.result, first)


# --- files in, files out -----------------------------------------------------------------

def test_a_batch_goes_on_past_bad_files_and_names_them(tmp_path, small_noisy, capsys):
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    tifffile.imwrite(folder / "a.tif", small_noisy)
    tifffile.imwrite(folder / "b.tif", np.full(small_noisy.shape, np.nan, dtype=np.float32))
    (folder / "c.png").write_bytes(b"not a png")
    tifffile.imwrite(folder / "d.tif", small_noisy)
    assert main(["denoise", str(folder), "-o", str(out), *FAST]) == 1
    err = capsys.readouterr().err
    assert f"error: {folder / 'b.tif'}: image contains" in err
    # Each failed file is named once on its error line (a message that names it is not prefixed again).
    assert [line.count(str(folder / "c.png")) for line in err.splitlines() if line.startswith("error:")
            and "c.png" in line] == [1]
    assert "2 denoised, 0 skipped (already done), 2 failed" in err
    assert sorted(p.name for p in out.iterdir()) == ["a.tif", "d.tif"]
    # Run again: the finished files are skipped, the bad ones reported again.
    assert main(["denoise", str(folder), "-o", str(out), *FAST]) == 1
    assert "0 denoised, 2 skipped (already done), 2 failed" in capsys.readouterr().err


def test_two_inputs_for_one_output_are_refused_before_computing(tmp_path, small_noisy, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    tifffile.imwrite(folder / "a.tif", small_noisy)
    from skimage.io import imsave

    imsave(folder / "a.png", small_noisy.astype(np.uint16), check_contrast=False)
    assert main(["denoise", str(folder), "-o", str(tmp_path / "out"), *FAST]) == 2
    assert "a.png and a.tif -> " in capsys.readouterr().err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_an_output_that_is_not_tiff_is_refused(tmp_path, small_noisy, capsys):
    source = tmp_path / "a.tif"
    tifffile.imwrite(source, small_noisy)
    assert main(["denoise", str(source), "-o", str(tmp_path / "x.png"), *FAST]) == 2
    assert "name the output TIFF (.tif, .tiff) or OME-Zarr" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_an_output_ending_with_a_separator_is_a_folder(tmp_path, small_noisy):
    source = tmp_path / "a.png"
    from skimage.io import imsave

    imsave(source, small_noisy.astype(np.uint16), check_contrast=False)
    assert main(["denoise", str(source), "-o", str(tmp_path / "newdir") + os.sep, *FAST]) == 0
    assert (tmp_path / "newdir" / "a.tif").is_file()  # PNG in, TIFF out with a .tif name


def test_an_unwritable_output_folder_is_found_before_computing(tmp_path, small_noisy, monkeypatch, capsys):
    import napari_zsdenoise.batch as batch

    source = tmp_path / "a.tif"
    tifffile.imwrite(source, small_noisy)
    monkeypatch.setattr(batch.os, "access", lambda path, mode: False)  # root ignores file modes
    monkeypatch.setattr("napari_zsdenoise.engine.DenoiseRun.__iter__", lambda self: pytest.fail("computing started"))
    assert main(["denoise", str(source), "-o", str(tmp_path / "out" / "a.tif"), *FAST]) == 2
    assert "cannot write to the output folder" in capsys.readouterr().err


def test_a_full_disk_is_found_before_computing(tmp_path, small_noisy, monkeypatch, capsys):
    import shutil

    import napari_zsdenoise.batch as batch

    source = tmp_path / "a.tif"
    tifffile.imwrite(source, small_noisy)
    monkeypatch.setattr(batch.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(1, 1, 1000))
    assert main(["denoise", str(source), "-o", str(tmp_path / "a_out.tif"), *FAST]) == 2
    assert "MB free" in capsys.readouterr().err


def test_a_write_error_keeps_the_result_and_says_where(tmp_path, small_noisy, monkeypatch, capsys):
    import napari_zsdenoise.outputs as io

    source, target = tmp_path / "a.tif", tmp_path / "out.tif"
    tifffile.imwrite(source, small_noisy)
    real_write = io.write_tiff_atomic

    def failing_write(path, *args, **kwargs):
        if path == target:
            raise OSError(28, "No space left on device")
        return real_write(path, *args, **kwargs)

    monkeypatch.setattr(io, "write_tiff_atomic", failing_write)
    assert main(["denoise", str(source), "-o", str(target), *FAST]) == 1
    err = capsys.readouterr().err
    assert f"cannot write {target} (No space left on device); the result was saved to " in err
    saved = err.split("the result was saved to ")[1].split()[0]
    assert tifffile.imread(saved).shape == small_noisy.shape
    os.unlink(saved)


@pytest.mark.parametrize("planes", [3, 4])
def test_a_grey_stack_of_three_or_four_planes_is_written_grey_with_its_physical_layout(tmp_path, small_noisy, planes):
    source, target = tmp_path / "stack.tif", tmp_path / "out.tif"
    stack = np.stack([small_noisy] * planes)
    tifffile.imwrite(source, stack, imagej=True, resolution=(1 / 0.2, 1 / 0.2),
                     metadata={"axes": "ZYX", "spacing": 0.5, "unit": "um"})
    assert main(["denoise", str(source), "-o", str(target), *FAST]) == 0
    with tifffile.TiffFile(target) as tif:
        assert tif.pages[0].photometric == tifffile.PHOTOMETRIC.MINISBLACK
        assert tif.series[0].shape == stack.shape and tif.series[0].axes == "ZYX"
    info = read_image_info(target)
    assert info.pixel_size == pytest.approx((0.2, 0.2)) and info.z_spacing == 0.5 and info.unit == "um"
    assert read_tiff_metadata(target)["method"] == "mpi-fast"


def test_sigterm_during_a_stack_keeps_the_finished_planes_and_no_temporary_file(tmp_path, small_noisy, monkeypatch, capsys):
    import napari_zsdenoise.cli_progress as cli_progress

    source, target = tmp_path / "stack.tif", tmp_path / "out.tif"
    tifffile.imwrite(source, np.stack([small_noisy] * 3), photometric="minisblack")
    real_progress = cli_progress.StderrProgress.__call__

    def progress(self, event):
        real_progress(self, event)
        if event.plane == 1 and event.iteration == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(cli_progress.StderrProgress, "__call__", progress)
    arguments = ["denoise", str(source), "-o", str(target), "--iterations", "50", "--width", "8", "--scales", "3",
                 "--weights", "none"]
    assert main(arguments) == 130
    assert "stopping after this iteration" in capsys.readouterr().err
    meta = read_tiff_metadata(target)
    assert meta["stopped_early"] and meta["planes_not_denoised"] == [[2]]
    assert [plane["iterations_done"] for plane in meta["planes"]] == [50, 2]
    assert _tmp_files(tmp_path) == []
    # The same command again continues from the first unfinished plane.
    monkeypatch.setattr(cli_progress.StderrProgress, "__call__", real_progress)
    assert main(arguments) == 0
    assert "continuing" in capsys.readouterr().err
    meta = read_tiff_metadata(target)
    assert not meta["planes_not_denoised"] and not meta["stopped_early"]
    assert [plane.get("resumed", False) for plane in meta["planes"]] == [True, False, False]
    assert [plane["iterations_done"] for plane in meta["planes"]] == [50, 50, 50]
    assert not (tmp_path / "out.tif.partial").exists() and _tmp_files(tmp_path) == []


def _stack_source(tmp_path, small_noisy, planes=3):
    source = tmp_path / "stack.tif"
    tifffile.imwrite(source, np.stack([small_noisy + i for i in range(planes)]), imagej=True,
                     resolution=(1 / 0.2, 1 / 0.2), metadata={"axes": "ZYX", "spacing": 0.5, "unit": "um"})
    return source


def test_a_killed_stack_run_is_continued_from_its_saved_planes(tmp_path, small_noisy, monkeypatch, capsys):
    source, target = _stack_source(tmp_path, small_noisy), tmp_path / "out.tif"
    arguments = ["denoise", str(source), "-o", str(target), *FAST]
    killed_at_plane(monkeypatch, arguments, 2)
    # Killed before the TIFF was written: the two finished planes wait in the progress folder.
    assert not target.exists()
    progress = json.loads((tmp_path / "out.tif.partial" / "progress.json").read_text())
    assert [plane["index"] for plane in progress["planes"]] == [[0], [1]]
    capsys.readouterr()
    assert main(_loud(arguments)) == 0
    assert "2 of 3 plane(s) already denoised" in capsys.readouterr().err
    meta = read_tiff_metadata(target)
    assert [plane.get("resumed", False) for plane in meta["planes"]] == [True, True, False]
    assert not (tmp_path / "out.tif.partial").exists()
    # Continuing gives what one uninterrupted run gives.
    assert main(["denoise", str(source), "-o", str(tmp_path / "whole.tif"), *FAST]) == 0
    np.testing.assert_array_equal(tifffile.imread(target), tifffile.imread(tmp_path / "whole.tif"))


def test_a_stack_is_written_as_ome_zarr_with_its_physical_layout(tmp_path, small_noisy):
    import zarr

    source, target = _stack_source(tmp_path, small_noisy), tmp_path / "out.ome.zarr"
    assert main(["denoise", str(source), "-o", str(target), *FAST]) == 0
    group = zarr.open_group(str(target), mode="r")
    (multiscale,) = group.attrs["multiscales"]
    assert [axis["name"] for axis in multiscale["axes"]] == ["z", "y", "x"]
    assert {axis.get("unit") for axis in multiscale["axes"]} == {"micrometer"}
    assert multiscale["datasets"][0]["coordinateTransformations"][0]["scale"] == pytest.approx([0.5, 0.2, 0.2])
    provenance = group.attrs["napari_zsdenoise"]
    assert provenance["complete"] and provenance["method"] == "mpi-fast"
    assert main(["denoise", str(source), "-o", str(tmp_path / "out.tif"), *FAST]) == 0
    np.testing.assert_array_equal(np.asarray(group["0"]), tifffile.imread(tmp_path / "out.tif"))


def test_an_ome_zarr_stack_is_written_plane_by_plane_and_continued(tmp_path, small_noisy, monkeypatch, capsys):
    import zarr

    source, target = _stack_source(tmp_path, small_noisy), tmp_path / "out.ome.zarr"
    arguments = ["denoise", str(source), "-o", str(target), *FAST]
    killed_at_plane(monkeypatch, arguments, 1)
    provenance = zarr.open_group(str(target), mode="r").attrs["napari_zsdenoise"]
    assert not provenance["complete"] and [p["index"] for p in provenance["finished_planes"]] == [[0]]
    assert main(_loud(arguments)) == 0
    assert "continuing" in capsys.readouterr().err
    provenance = zarr.open_group(str(target), mode="r").attrs["napari_zsdenoise"]
    assert provenance["complete"] and [p.get("resumed", False) for p in provenance["planes"]] == [True, False, False]
    # The same command once more has nothing left to do.
    assert main(arguments) == 0
    assert "already denoised with these settings" in capsys.readouterr().err


def test_an_ome_zarr_output_with_more_than_five_axes_is_refused_before_computing(tmp_path, small_noisy, monkeypatch,
                                                                                 capsys):
    source = tmp_path / "six.tif"
    tifffile.imwrite(source, small_noisy[:33, :33].reshape((1,) * 4 + (33, 33)).repeat(2, axis=0)[None],
                     photometric="minisblack")
    monkeypatch.setattr("napari_zsdenoise.engine.DenoiseRun.__iter__", lambda self: pytest.fail("computing started"))
    assert main(["denoise", str(source), "-o", str(tmp_path / "out.ome.zarr"), *FAST]) == 2
    assert "OME-Zarr holds at most 5 axes" in capsys.readouterr().err


def test_provenance_of_earlier_releases_is_still_read(tmp_path):
    path = tmp_path / "old.tif"
    tifffile.imwrite(path, np.zeros((8, 8), np.float32), description=json.dumps({"method": "mpi"}), metadata=None)
    assert read_tiff_metadata(path) == {"method": "mpi"}


def test_a_truncated_tiff_is_named_in_the_error(tmp_path):
    from napari_zsdenoise.io import read_image

    path = tmp_path / "cut.tif"
    tifffile.imwrite(path, np.zeros((64, 64), np.uint16))
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match=f"cannot read {path}"):
        read_image(path)


def test_a_folder_given_as_weights_says_so(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["denoise", "in.tif", "-o", "out.tif", "--weights", str(tmp_path)])
    assert "not a folder" in capsys.readouterr().err


def test_a_plane_that_cannot_be_saved_as_it_finishes_is_written_at_the_end(tmp_path, small_noisy, monkeypatch, capsys):
    from napari_zsdenoise.outputs import TiffResultWriter

    def full_disk(self, index, estimate, record):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(TiffResultWriter, "save_plane", full_disk)
    source, target = _stack_source(tmp_path, small_noisy), tmp_path / "out.tif"
    assert main(["denoise", str(source), "-o", str(target), *FAST]) == 0
    err = capsys.readouterr().err
    assert err.count("cannot save finished planes") == 1 and "No space left on device" in err
    assert tifffile.imread(target).shape == (3, *small_noisy.shape)
    assert not read_tiff_metadata(target)["stopped_early"]


def test_ctrl_c_in_a_folder_batch_keeps_the_finished_files_and_the_same_command_continues(tmp_path, small_noisy,
                                                                                          monkeypatch, capsys):
    import napari_zsdenoise.cli_progress as cli_progress

    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    for name in ("a", "b", "c"):
        tifffile.imwrite(folder / f"{name}.tif", small_noisy)
    real_progress, seen = cli_progress.StderrProgress.__call__, []

    def progress(self, event):
        real_progress(self, event)
        seen.append(self)
        if len({id(p) for p in seen}) == 2:  # the second file has started
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(cli_progress.StderrProgress, "__call__", progress)
    arguments = ["denoise", str(folder), "-o", str(out), *FAST]
    assert main(arguments) == 130
    assert "interrupted: 1 of 3 file(s) finished and kept" in capsys.readouterr().err
    assert not read_tiff_metadata(out / "a.tif")["stopped_early"]
    monkeypatch.setattr(cli_progress.StderrProgress, "__call__", real_progress)
    assert main(_loud(arguments)) == 0
    err = capsys.readouterr().err
    assert f"skipped {folder / 'a.tif'}" in err and f"continuing {folder / 'b.tif'}" in err
    assert "2 denoised, 1 skipped (already done), 0 failed" in err
    assert _tmp_files(tmp_path) == [] and sorted(p.name for p in out.iterdir()) == ["a.tif", "b.tif", "c.tif"]


@pytest.mark.parametrize("suffix", [".tif", ".ome.zarr"])
def test_a_stack_is_read_and_written_plane_by_plane_not_held_in_memory(tmp_path, small_noisy, monkeypatch, suffix):
    import zarr

    import napari_zsdenoise.engine as engine

    seen = {}
    real_init = engine.DenoiseRun.__init__

    def recording_init(self, image, *args, **kwargs):
        seen["image"], seen["output"] = image, kwargs.get("output")
        real_init(self, image, *args, **kwargs)

    monkeypatch.setattr(engine.DenoiseRun, "__init__", recording_init)
    source, target = _stack_source(tmp_path, small_noisy), tmp_path / f"out{suffix}"
    assert main(["denoise", str(source), "-o", str(target), *FAST]) == 0
    assert isinstance(seen["image"], np.memmap)  # the input, mapped from the file
    assert isinstance(seen["output"], np.memmap if suffix == ".tif" else zarr.Array)  # the result, on disk


def test_an_output_written_before_the_camera_offset_existed_is_still_skipped(tmp_path, small_noisy, capsys):
    import zarr

    source, target = _stack_source(tmp_path, small_noisy), tmp_path / "out.ome.zarr"
    arguments = ["denoise", str(source), "-o", str(target), *FAST]
    assert main(arguments) == 0
    # What an earlier release wrote: the same provenance without the camera offset.
    group = zarr.open_group(str(target), mode="r+")
    provenance = dict(group.attrs["napari_zsdenoise"])
    del provenance["camera_offset"]
    group.attrs["napari_zsdenoise"] = provenance
    capsys.readouterr()
    assert main(arguments) == 0
    assert "already denoised with these settings" in capsys.readouterr().err
    # Asked for an offset it was not computed with, it is another result: refused without --overwrite.
    assert main([*arguments, "--camera-offset", "100"]) != 0
