"""Files from the real world: inputs are never touched, finished work is never lost or mixed, and
every refusal comes before any computing, as one line, leaving nothing behind.

The cases are those of docs/failure-catalogue.md ("Inputs and outputs", "Finished work");
each test checks the message a user sees and the files on disk before and after.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tifffile

from napari_zsdenoise import DenoiseRun
from napari_zsdenoise.cli import main
from napari_zsdenoise.io import read_image_info, read_tiff_metadata

from conftest import TINY, killed_at_plane

FAST = ["--method", "mpi-fast", "--iterations", "2", "--width", "8", "--scales", "3", "--weights", "none", "-q"]


def _checksums(*roots):
    """Every file under ``roots`` (files or folders) with a hash of its content."""
    sums = {}
    for root in roots:
        for path in [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file()):
            sums[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return sums


def _listing(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture
def no_computing(monkeypatch):
    """Fails the test if any plane starts computing."""
    monkeypatch.setattr("napari_zsdenoise.engine.DenoiseRun.__iter__",
                        lambda self: pytest.fail("computing started"))


def _stack(tmp_path, small_noisy, name="stack.tif", planes=3, shift=0):
    source = tmp_path / name
    tifffile.imwrite(source, np.stack([small_noisy + i + shift for i in range(planes)]), photometric="minisblack")
    return source


# --- 1. no input is ever modified, replaced or deleted ------------------------------------------------------

def _input_cases(tmp_path, small_noisy):
    """(arguments, the inputs whose bytes must not change, expected words) for each way an output can be an input."""
    single = tmp_path / "a.tif"
    tifffile.imwrite(single, small_noisy)
    folder = tmp_path / "fold"
    folder.mkdir()
    for name in ("b.tif", "c.tif"):
        tifffile.imwrite(folder / name, small_noisy)
    pngs = tmp_path / "pngs"
    pngs.mkdir()
    from PIL import Image

    Image.fromarray((small_noisy // 8).astype(np.uint8)).save(pngs / "c.png")
    store = tmp_path / "d.zarr"
    store.mkdir()
    tifffile.imwrite(store / "in.tif", small_noisy)
    link = tmp_path / "link.tif"
    link.symlink_to(single)
    hard = tmp_path / "hard.tif"
    os.link(single, hard)
    model_folder = tmp_path / "training"
    model_folder.mkdir()
    tifffile.imwrite(model_folder / "t.tif", small_noisy)
    return [
        (["denoise", str(single), "-o", str(single)], [single], "it is the input"),
        (["denoise", str(folder), "-o", str(folder)], [folder], "it is the input"),
        (["denoise", str(pngs), "-o", str(pngs)], [pngs], "lies inside the input folder"),
        (["denoise", str(folder), "-o", str(folder / "denoised")], [folder], "lies inside the input folder"),
        (["denoise", str(store / "in.tif"), "-o", str(store)], [store], "contains the input"),
        (["denoise", str(single), "-o", str(link)], [single, link], "it is the input"),
        (["denoise", str(link), "-o", str(single)], [single, link], "it is the input"),
        (["denoise", str(single), "-o", str(hard)], [single, hard], "it is the input"),
        (["fit-dataset", str(single), "-o", str(single)], [single], "it is the input"),
        (["fit-dataset", str(model_folder), "-o", str(model_folder / "model.pt")], [model_folder],
         "lies inside the input folder"),
        (["fit-dataset", str(store / "in.tif"), "-o", str(store)], [store], "contains the input"),
    ]


@pytest.mark.parametrize("case", range(11))
@pytest.mark.parametrize("overwrite", [False, True])
def test_an_output_that_is_or_holds_an_input_is_refused_whatever_the_options(tmp_path, small_noisy, case, overwrite,
                                                                               no_computing, capsys):
    arguments, inputs, words = _input_cases(tmp_path, small_noisy)[case]
    before, listing = _checksums(*inputs), _listing(tmp_path)
    extra = ["--overwrite"] if overwrite else []
    code = main([*arguments, *extra, *(FAST if arguments[0] == "denoise" else ["-q"])])
    err = capsys.readouterr().err
    assert code == 2 and words in err and "refusing to write" in err and "--overwrite" not in err, err
    assert len(err.strip().splitlines()) == 1
    assert _checksums(*inputs) == before and _listing(tmp_path) == listing


# --- 2. metadata never costs a result ------------------------------------------------------------------------

@pytest.mark.parametrize("planes", [1, 3])
def test_an_ome_tiff_input_with_a_micrometre_unit_is_written_with_its_pixel_size(tmp_path, small_noisy, planes):
    source, target = tmp_path / "in.ome.tif", tmp_path / "out.tif"
    data = small_noisy if planes == 1 else np.stack([small_noisy + i for i in range(planes)])
    tifffile.imwrite(source, data, ome=True, photometric="minisblack",
                     metadata={"axes": "YX" if planes == 1 else "ZYX", "PhysicalSizeX": 0.13, "PhysicalSizeY": 0.13,
                               "PhysicalSizeXUnit": "µm", "PhysicalSizeYUnit": "µm", "PhysicalSizeZ": 0.5,
                               "Description": "Kanäle — 蛍光"})
    assert main(["denoise", str(source), "-o", str(target), *FAST]) == 0
    assert tifffile.imread(target).shape == data.shape
    info = read_image_info(target)
    assert info.pixel_size == pytest.approx((0.13, 0.13))
    assert info.unit in ("micron", "um", "µm")
    assert read_tiff_metadata(target)["method"] == "mpi-fast"


@pytest.mark.parametrize("error", [UnicodeEncodeError("ascii", "µ", 0, 1, "ordinal not in range"),
                                   ValueError("bad metadata"), OSError(28, "No space left on device")])
def test_whatever_fails_while_writing_the_result_is_saved_elsewhere_and_the_message_says_where(
        tmp_path, small_noisy, monkeypatch, capsys, error):
    import napari_zsdenoise.outputs as outputs

    source, target = tmp_path / "a.tif", tmp_path / "out.tif"
    tifffile.imwrite(source, small_noisy)
    real_write = outputs.write_tiff_atomic

    def failing_write(path, *args, **kwargs):
        if path == target:
            raise error
        return real_write(path, *args, **kwargs)

    monkeypatch.setattr(outputs, "write_tiff_atomic", failing_write)
    assert main(["denoise", str(source), "-o", str(target), *FAST]) == 1
    err = capsys.readouterr().err
    assert f"cannot write {target} (" in err and "the result was saved to " in err
    saved = err.split("the result was saved to ")[1].split()[0]
    assert tifffile.imread(saved).shape == small_noisy.shape
    os.unlink(saved)


def test_when_the_metadata_itself_cannot_be_written_the_pixels_are_saved_alone(tmp_path, small_noisy, monkeypatch,
                                                                                capsys):
    import napari_zsdenoise.outputs as outputs

    source, target = tmp_path / "a.tif", tmp_path / "out.tif"
    tifffile.imwrite(source, small_noisy)
    monkeypatch.setattr(outputs, "write_tiff_atomic", lambda *a, **k: (_ for _ in ()).throw(ValueError("broken")))
    assert main(["denoise", str(source), "-o", str(target), *FAST]) == 1
    saved = capsys.readouterr().err.split("the result was saved to ")[1].split()[0]
    assert saved.endswith("-pixels-only.tif") and tifffile.imread(saved).shape == small_noisy.shape
    assert json.loads(open(saved.removesuffix(".tif") + ".json").read())["method"] == "mpi-fast"
    os.unlink(saved)
    os.unlink(saved.removesuffix(".tif") + ".json")


# --- 3. finished work is never discarded or mixed --------------------------------------------------------

def test_a_replaced_input_is_not_skipped_as_done(tmp_path, small_noisy, capsys):
    source, target = tmp_path / "x.tif", tmp_path / "out.tif"
    tifffile.imwrite(source, small_noisy)
    assert main(["denoise", str(source), "-o", str(target), *FAST]) == 0
    assert main(["denoise", str(source), "-o", str(target), *FAST]) == 0
    assert "already denoised" in capsys.readouterr().err
    tifffile.imwrite(source, small_noisy[::-1].copy())  # other data under the same name
    before = _checksums(target)
    assert main(["denoise", str(source), "-o", str(target), *FAST]) == 2
    err = capsys.readouterr().err
    assert "skipped" not in err and "refusing to overwrite" in err and _checksums(target) == before


def test_a_rerun_with_other_settings_keeps_a_killed_runs_planes(tmp_path, small_noisy, monkeypatch, capsys):
    source, target = _stack(tmp_path, small_noisy), tmp_path / "out.tif"
    arguments = ["denoise", str(source), "-o", str(target), *FAST]
    killed_at_plane(monkeypatch, arguments, 2)
    progress = tmp_path / "out.tif.partial"
    before = _checksums(progress)
    capsys.readouterr()
    assert main([*arguments, "--seed", "1"]) == 2
    err = capsys.readouterr().err
    assert "2 plane(s) of mpi-fast" in err and "finished planes of another run" in err
    assert _checksums(progress) == before
    # The killed run's own command still continues them.
    assert main(arguments) == 0
    assert [p.get("resumed", False) for p in read_tiff_metadata(target)["planes"]] == [True, True, False]


def test_a_killed_run_whose_input_was_replaced_is_not_continued_with_the_new_data(tmp_path, small_noisy, monkeypatch,
                                                                                  capsys):
    source, target = _stack(tmp_path, small_noisy), tmp_path / "out.tif"
    arguments = ["denoise", str(source), "-o", str(target), *FAST]
    killed_at_plane(monkeypatch, arguments, 2)
    _stack(tmp_path, small_noisy, shift=7)  # the same name, other data
    capsys.readouterr()
    assert main(arguments) == 2
    assert "finished planes of another run" in capsys.readouterr().err
    assert main([*arguments, "--overwrite"]) == 0
    assert not any(p.get("resumed") for p in read_tiff_metadata(target)["planes"])


def test_an_output_being_written_is_locked_against_a_second_run(tmp_path, small_noisy, capsys, no_computing):
    from napari_zsdenoise.outputs import OutputLock

    source, target = _stack(tmp_path, small_noisy), tmp_path / "out.tif"
    with OutputLock(target):
        for seed in ("0", "1"):
            assert main(["denoise", str(source), "-o", str(target), *FAST, "--seed", seed]) == 2
            err = capsys.readouterr().err
            assert f"{target} is being written by process {os.getpid()}" in err
    assert not (tmp_path / "out.tif.lock").exists() and not (tmp_path / "out.tif.partial").exists()


def test_a_lock_taken_by_another_live_process_is_respected(tmp_path, small_noisy, capsys, no_computing):
    source, target = _stack(tmp_path, small_noisy), tmp_path / "out.tif"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; "
         "from napari_zsdenoise.outputs import OutputLock; lock = OutputLock(Path(sys.argv[1])); lock.acquire(); "
         "print('held', flush=True); time.sleep(60)", str(target)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main(["denoise", str(source), "-o", str(target), *FAST]) == 2
        assert f"is being written by process {holder.pid}" in capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait()


def test_a_stale_lock_of_a_killed_process_is_taken_over(tmp_path, small_noisy, capsys):
    source, target = _stack(tmp_path, small_noisy), tmp_path / "out.tif"
    (tmp_path / "out.tif.lock").write_text(json.dumps({"pid": 999_999_999, "host": "gone", "started": "earlier"}))
    assert main(["denoise", str(source), "-o", str(target), *[a for a in FAST if a != "-q"]]) == 0
    assert "no longer runs" in capsys.readouterr().err
    assert target.exists() and not (tmp_path / "out.tif.lock").exists()


def test_a_rerun_of_a_single_plane_command_is_skipped(tmp_path, small_noisy, capsys):
    source, target = _stack(tmp_path, small_noisy), tmp_path / "plane1.tif"
    arguments = ["denoise", str(source), "-o", str(target), "--plane", "1", *FAST]
    assert main(arguments) == 0
    assert main(arguments) == 0
    assert "already denoised" in capsys.readouterr().err
    assert main([*arguments[:5], "2", *FAST]) == 2  # another plane is another result


# --- 4. no silent wrong results ------------------------------------------------------------------------------

def test_ragged_tiff_pages_are_refused_before_computing(tmp_path, small_noisy, capsys, no_computing):
    source = tmp_path / "ragged.tif"
    with tifffile.TiffWriter(source) as writer:
        writer.write(small_noisy, photometric="minisblack")
        writer.write(small_noisy[:32, :32], photometric="minisblack")
    assert main(["denoise", str(source), "-o", str(tmp_path / "o.tif"), *FAST]) != 0
    err = capsys.readouterr().err
    assert "different shapes" in err and len(err.strip().splitlines()) <= 2
    assert _listing(tmp_path) == ["ragged.tif"]


@pytest.mark.parametrize(("offset", "words"), [("1e300", "less the camera offset 1e+300 holds values up to 1e+300, beyond float32's range"),
                                              ("1e12", "varies by only"), ("-5", "must be >= 0")])
def test_an_absurd_camera_offset_is_refused_before_computing(tmp_path, small_noisy, capsys, offset, words,
                                                            no_computing):
    source = tmp_path / "a.tif"
    tifffile.imwrite(source, small_noisy)
    with pytest.raises(SystemExit) if offset.startswith("-") else contextlib.nullcontext():
        assert main(["denoise", str(source), "-o", str(tmp_path / "o.tif"), "--camera-offset", offset, *FAST]) != 0
    assert words in capsys.readouterr().err
    assert _listing(tmp_path) == ["a.tif"]


@pytest.mark.parametrize("method", ["mpi-fast", "zs-n2n", "bsn-fast"])
def test_a_constant_plane_comes_back_constant(method):
    image = np.full((3, 48, 40), 1000, dtype=np.uint16)
    image[1] = 7
    settings = TINY if method != "zs-n2n" else {}
    run = DenoiseRun(image, method, iterations=3, camera_offset=0, **settings)
    list(run)
    assert np.all(run.result[0] == 1000) and np.all(run.result[1] == 7) and np.all(run.result[2] == 1000)
    assert [plane.get("constant_plane") for plane in run.metadata["planes"]] == [True, True, True]


def test_a_non_finite_result_is_refused_and_nothing_is_written(tmp_path, small_noisy, monkeypatch, capsys):
    from napari_zsdenoise.methods.mpi.method import MPIMethod

    source, target = _stack(tmp_path, small_noisy), tmp_path / "out.tif"
    real_result = MPIMethod.result
    calls = []

    def diverging(self):
        calls.append(1)
        estimate = real_result(self)
        return estimate * np.nan if len(calls) == 2 else estimate

    monkeypatch.setattr(MPIMethod, "result", diverging)
    assert main(["denoise", str(source), "-o", str(target), *FAST]) == 1
    err = capsys.readouterr().err
    assert "NaN or infinite" in err and "diverged" in err and not target.exists()
    # The plane finished before it is kept for the next run.
    progress = json.loads((tmp_path / "out.tif.partial" / "progress.json").read_text())
    assert [plane["index"] for plane in progress["planes"]] == [[0]]


# --- 5. every check before computing ----------------------------------------------------------------------

def test_a_setting_is_parsed_with_the_chosen_methods_own_range(tmp_path, capsys):
    from napari_zsdenoise.cli import method_overrides, build_parser

    args = build_parser().parse_args(["denoise", "in.tif", "-o", "o.tif", "--method", "mid", "--mask-ratio", "0"])
    assert method_overrides(args) == {"mask_ratio": 0.0}
    with pytest.raises(SystemExit):
        main(["denoise", "in.tif", "-o", "o.tif", "--method", "mpi", "--mask-ratio", "0"])
    assert "mask_ratio must be in (0, 1)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["denoise", "in.tif", "-o", "o.tif", "--method", "zs-n2n", "--mask-ratio", "0.5"])
    assert "--mask-ratio is not a setting of zs-n2n" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["denoise", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "(0, 1) for mpi" in help_text and "[0, 1) for mid" in help_text


@pytest.mark.parametrize(("arguments", "words"), [
    (["--seed", str(2**70)], "seed must be in [0,"),
    (["--seed", "-1"], "seed must be in [0,"),
    (["--dask", "local", "--dask-workers", "-1"], "must be between 1 and"),
    (["--dask", "local", "--dask-workers", "0"], "must be between 1 and"),
    (["--dask-workers", "2"], "needs --dask local"),
])
def test_run_options_out_of_range_are_refused_by_the_parser(tmp_path, small_noisy, capsys, arguments, words):
    source = tmp_path / "a.tif"
    tifffile.imwrite(source, small_noisy)
    with pytest.raises(SystemExit):
        main(["denoise", str(source), "-o", str(tmp_path / "o.tif"), *arguments])
    assert words in capsys.readouterr().err
    assert _listing(tmp_path) == ["a.tif"]


def test_a_lazy_stack_with_nan_in_a_later_plane_is_refused_before_the_first_plane(small_noisy):
    da = pytest.importorskip("dask.array")
    stack = np.stack([small_noisy.astype(np.float32)] * 3)
    stack[2, 5, 5] = np.nan
    with pytest.raises(ValueError, match=r"plane \(2,\) contains 1 NaN"):
        DenoiseRun(da.from_array(stack, chunks=(1, 48, 40)), "mpi-fast", **TINY)


def test_fit_dataset_checks_its_output_before_training(tmp_path, small_noisy, monkeypatch, capsys):
    import napari_zsdenoise.methods.mid.training as training

    monkeypatch.setattr(training, "fit_dataset", lambda *a, **k: pytest.fail("training started"))
    source = _stack(tmp_path, small_noisy)
    (tmp_path / "existing").mkdir()
    (tmp_path / "a-file").write_text("x")
    cases = [([str(tmp_path / "existing"), "--overwrite"], "is a folder"),
             ([str(tmp_path / "a-file" / "m.pt")], "a-file is a file"),
             ([str(tmp_path / "m.tif")], "names an image")]
    for output, words in cases:
        assert main(["fit-dataset", str(source), "-o", *output, "-q"]) == 2
        assert words in capsys.readouterr().err
    import tempfile

    def read_only(*args, **kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(tempfile, "TemporaryFile", read_only)
    assert main(["fit-dataset", str(source), "-o", str(tmp_path / "m.pt"), "-q"]) == 2
    assert "Read-only file system" in capsys.readouterr().err


# --- 6. quiet means quiet; nothing left behind -----------------------------------------------------------

def test_a_refused_input_leaves_nothing_behind(tmp_path, small_noisy, capsys):
    stack = np.stack([small_noisy.astype(np.float32)] * 3)
    stack[1, 0, 0] = np.nan
    source = tmp_path / "nan.tif"
    tifffile.imwrite(source, stack, photometric="minisblack")
    for output in ("out.tif", "out.ome.zarr", "new/sub/out.tif"):
        assert main(["denoise", str(source), "-o", str(tmp_path / output), *FAST]) == 1
        assert "NaN" in capsys.readouterr().err
        assert _listing(tmp_path) == ["nan.tif"], output


def test_a_folder_input_with_a_file_output_is_refused_and_creates_nothing(tmp_path, small_noisy, capsys):
    folder = tmp_path / "fold"
    folder.mkdir()
    tifffile.imwrite(folder / "a.tif", small_noisy)
    assert main(["denoise", str(folder), "-o", str(tmp_path / "sub.tif"), *FAST]) == 2
    assert "names a file" in capsys.readouterr().err
    assert _listing(tmp_path) == ["fold", "fold/a.tif"]


def test_quiet_prints_nothing_when_a_run_continues(tmp_path, small_noisy, monkeypatch, capsys):
    source, target = _stack(tmp_path, small_noisy), tmp_path / "out.tif"
    arguments = ["denoise", str(source), "-o", str(target), *FAST]
    killed_at_plane(monkeypatch, arguments, 2)
    capsys.readouterr()
    assert main(arguments) == 0
    assert capsys.readouterr().err == ""


def test_a_dask_batch_with_a_bad_file_prints_one_line_for_it_and_no_traceback(tmp_path, small_noisy):
    pytest.importorskip("distributed")
    folder = tmp_path / "in"
    folder.mkdir()
    tifffile.imwrite(folder / "good.tif", small_noisy)
    bad = small_noisy.astype(np.float32)
    bad[3, 3] = np.nan
    tifffile.imwrite(folder / "bad.tif", bad)
    done = subprocess.run([sys.executable, "-m", "napari_zsdenoise.cli", "denoise", str(folder), "-o",
                           str(tmp_path / "out"), *FAST, "--dask", "local", "--dask-workers", "1"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and "Compute Failed" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert any(line.startswith("error: ") and "bad.tif" in line and "NaN" in line for line in lines), lines
    assert (tmp_path / "out" / "good.tif").exists()
