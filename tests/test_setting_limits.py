"""Limits of settings and weights files: absurd sizes, tiles and unreadable files are refused in one line
before any computing, and running out of memory says what helps the method at hand."""

from __future__ import annotations

import argparse
import re
import zipfile

import numpy as np
import pytest
import tifffile
import torch

from napari_zsdenoise import DenoiseRun
from napari_zsdenoise.cli import main
from napari_zsdenoise.devices import OutOfDeviceMemory, is_out_of_memory, out_of_memory_error
from napari_zsdenoise.methods.registry import get_method_spec, method_names
from napari_zsdenoise.settings import describe_settings

from conftest import TINY

CPU = torch.device("cpu")

# --- network sizes ------------------------------------------------------------------------

#: Every setting that sizes a network or an allocation, and those whose bound keeps 8 times the default.
NETWORK_SIZES = {"width", "scales", "siren_width", "siren_layers", "hidden_channels", "views_per_step",
                 "shuffle_factor", "context_planes", "dilation"}
WIDE_HEADROOM = {"width", "siren_width", "siren_layers", "hidden_channels"}
TRAINING_SIZES = {"width", "scales", "batch_size", "patch_size", "bank_patches", "procedural_images",
                  "procedural_side", "masks_per_plane", "pixel_shuffle", "rounds"}


def test_every_network_size_of_every_preset_has_an_upper_bound_with_headroom():
    seen = set()
    for name in method_names():
        for info in get_method_spec(name).settings():
            if info.name in NETWORK_SIZES:
                seen.add(info.name)
                assert info.high is not None, f"{name}: {info.name} has no upper bound"
                if info.name in WIDE_HEADROOM:  # what papers and presets use stays far inside
                    assert info.high >= 8 * info.default, (name, info.name)
    assert seen == NETWORK_SIZES


def test_every_training_size_of_mid_has_an_upper_bound_with_headroom():
    from napari_zsdenoise.methods.mid.settings import MIDTrainingSettings

    infos = {info.name: info for info in describe_settings(MIDTrainingSettings)}
    for name in TRAINING_SIZES:
        assert infos[name].high is not None, name
    for name in ("width", "batch_size", "patch_size", "bank_patches", "procedural_images", "procedural_side",
                 "masks_per_plane"):
        assert infos[name].high >= 8 * infos[name].default, name


@pytest.mark.parametrize(("method", "name", "value", "bound"), [
    ("bsn-fast", "width", 1_000_000, "[1, 512]"),
    ("mpi", "scales", 9, "[1, 8]"),
    ("ins-bsn", "siren_width", 100_000, "[1, 1024]"),
    ("ins-bsn", "siren_layers", 3000, "[1, 24]"),
    ("zs-n2n", "hidden_channels", 100_000, "[1, 384]"),
    ("zs-n2m", "hidden_channels", 100_000, "[1, 384]"),
])
def test_an_absurd_network_size_is_refused_before_any_computing(small_noisy, method, name, value, bound):
    with pytest.raises(ValueError, match=f"^{re.escape(f'{name} must be in {bound}; got {value}')}$"):
        DenoiseRun(small_noisy, method, device="cpu", **{name: value})


@pytest.mark.parametrize(("method", "name", "value"), [
    ("bsn", "width", 512), ("ins-bsn", "siren_width", 1024), ("ins-bsn", "siren_layers", 24),
    ("zs-n2n", "hidden_channels", 384), ("zs-n2m", "hidden_channels", 384),
])
def test_the_largest_allowed_sizes_are_accepted(method, name, value):
    assert getattr(get_method_spec(method).make_config(**{name: value}), name) == value


@pytest.mark.parametrize(("arguments", "message"), [
    (["--method", "bsn-fast", "--width", "1000000"], "width must be in [1, 512]; got 1000000"),
    (["--method", "ins-bsn", "--siren-layers", "3000"], "siren_layers must be in [1, 24]; got 3000"),
    (["--method", "zs-n2n", "--hidden-channels", "5000"], "hidden_channels must be in [1, 384]; got 5000"),
])
def test_the_command_line_refuses_absurd_sizes_before_reading_anything(tmp_path, capsys, arguments, message):
    with pytest.raises(SystemExit):
        main(["denoise", str(tmp_path / "missing.tif"), "-o", str(tmp_path / "o.tif"), *arguments])
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(("settings", "message"), [
    ({"batch_size": 256, "patch_size": 512, "procedural_side": 512}, r"^a step would hold 256 patches of 512x512"),
    ({"bank_patches": 16384, "patch_size": 256, "procedural_side": 256}, r"^the noise bank would hold 16384 patches"),
    ({"procedural_images": 1024, "procedural_side": 2048}, r"^the procedural scenes would hold 1024 scenes"),
])
def test_mid_training_refuses_sizes_whose_product_no_memory_holds(settings, message):
    from napari_zsdenoise.methods.mid.settings import MIDTrainingSettings

    with pytest.raises(ValueError, match=message + r".*lower "):
        MIDTrainingSettings(**settings)
    MIDTrainingSettings(batch_size=64, patch_size=256, procedural_side=256)  # the paper's scale of batch fits


def test_fit_dataset_refuses_an_absurd_batch_before_reading_anything(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["fit-dataset", str(tmp_path / "missing"), "-o", str(tmp_path / "m.pt"), "--batch-size", "100000"])
    assert "batch_size must be in [1, 256]; got 100000" in capsys.readouterr().err


def _giant_allocation(*args, **kwargs):
    return torch.empty(2**60, dtype=torch.uint8)  # fails at once: "DefaultCPUAllocator: can't allocate memory"


def test_running_out_of_memory_loading_mpi_weights_is_one_line(monkeypatch, small_noisy):
    import napari_zsdenoise.methods.mpi.method as mpi_method

    monkeypatch.setattr(mpi_method, "load_weights", _giant_allocation)
    with pytest.raises(OutOfDeviceMemory) as caught:
        DenoiseRun(small_noisy, "mpi-fast", device="cpu")
    message = str(caught.value)
    assert message.startswith("cpu ran out of memory while loading the weights shipped: free some")
    assert "\n" not in message and "allocate" not in message and "another device" not in message


def test_running_out_of_memory_loading_a_mid_model_is_one_line(monkeypatch, small_noisy, mid_model_file):
    import napari_zsdenoise.methods.mid.method as mid_method

    monkeypatch.setattr(mid_method, "load_model", lambda path: np.empty(2**60, dtype=np.uint8))  # numpy's MemoryError
    with pytest.raises(OutOfDeviceMemory, match=r"^cpu ran out of memory while loading the model .*tiny-mid.pt: "):
        DenoiseRun(small_noisy, "mid", device="cpu", weights=str(mid_model_file))


def test_other_setup_errors_pass_as_they_are(monkeypatch, small_noisy):
    import napari_zsdenoise.methods.mpi.method as mpi_method

    def broken(weights):
        raise RuntimeError("shapes cannot be multiplied")

    monkeypatch.setattr(mpi_method, "load_weights", broken)
    with pytest.raises(RuntimeError, match="^shapes cannot be multiplied$"):
        DenoiseRun(small_noisy, "mpi-fast", device="cpu")


@pytest.mark.parametrize(("error", "expected"), [
    (MemoryError(), True),
    (MemoryError("Unable to allocate 1.00 EiB for an array"), True),
    (RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 10 bytes"), True),
    (OutOfDeviceMemory("cpu ran out of memory on a 4x4 plane: denoise a smaller region of the image"), False),
    (RuntimeError("index out of range"), False),
])
def test_allocation_failures_are_recognised_and_one_line_errors_pass_on(error, expected):
    assert is_out_of_memory(error) is expected


# --- out-of-memory advice -----------------------------------------------------------------

@pytest.mark.parametrize(("method", "settings", "advice"), [
    ("mpi-fast", {}, "train on crops (training_crop=256, CLI --training-crop 256)"),
    ("bsn", {"training_crop": 256}, "train on smaller crops (training_crop=128, CLI --training-crop 128)"),
    ("ins-bsn", {}, ("use a smaller SIREN (siren_width=64, siren_layers=2, CLI --siren-width 64 --siren-layers 2), "
                     "or denoise a smaller region of the image (INS-BSN trains on the whole plane)")),
    ("zs-n2n", {}, "use fewer feature channels (hidden_channels=24, CLI --hidden-channels 24)"),
    ("zs-n2m", {}, "use fewer feature channels (hidden_channels=24, CLI --hidden-channels 24)"),
    ("mid", {}, "predict in tiles (tile=256, CLI --tile 256)"),
    ("mid", {"tile": 256}, "predict in smaller tiles (tile=128, CLI --tile 128)"),
])
def test_out_of_memory_advice_fits_the_method_and_a_run_on_the_cpu_is_not_sent_to_the_cpu(method, settings, advice):
    config = get_method_spec(method).make_config(**settings)
    message = str(out_of_memory_error(CPU, (1, 2048, 1024), advice=config.out_of_memory_advice))
    assert message.startswith(f"cpu ran out of memory on a 2048x1024 plane: {advice}")
    assert "\n" not in message and "another device" not in message and "device='cpu'" not in message
    if not method.startswith(("mpi", "bsn")):
        assert "training_crop" not in message


def test_a_run_on_a_gpu_is_also_offered_the_cpu(monkeypatch):
    from napari_zsdenoise import devices

    monkeypatch.setattr(devices, "free_memory_bytes", lambda device: 300 * 2**20)
    monkeypatch.setattr(devices, "release_cached_memory", lambda device: None)
    advice = get_method_spec("mid").default_config.out_of_memory_advice
    message = str(out_of_memory_error(torch.device("cuda:0"), (4096, 4096), advice=advice))
    assert message == ("cuda:0 (300 MB free after clearing its cache) ran out of memory on a 4096x4096 plane: "
                       "predict in tiles (tile=256, CLI --tile 256), or run on another device (device='cpu', "
                       "CLI --device cpu)")


def test_the_engine_s_call_without_advice_still_gives_one_line():
    message = str(out_of_memory_error(CPU, (48, 40)))
    assert message == "cpu ran out of memory on a 48x40 plane: denoise a smaller region of the image, or choose a " \
                      "smaller network in the settings"


# --- tiles and crops ----------------------------------------------------------------------

def test_a_one_pixel_mid_tile_is_refused_in_one_line(small_noisy, mid_model_file):
    with pytest.raises(ValueError, match=r"^tile must be 0 \(the whole plane\) or at least 64 pixels; got 1$"):
        DenoiseRun(small_noisy, "mid", device="cpu", weights=str(mid_model_file), tile=1)
    assert DenoiseRun(small_noisy, "mid", device="cpu", weights=str(mid_model_file), tile=64).config.tile == 64


def _no_computing(monkeypatch):
    monkeypatch.setattr("napari_zsdenoise.engine.DenoiseRun.__iter__", lambda self: pytest.fail("computing started"))


def test_the_command_line_refuses_a_one_pixel_mid_tile_before_computing(tmp_path, small_noisy, mid_model_file,
                                                                        monkeypatch, capsys):
    source = tmp_path / "a.tif"
    tifffile.imwrite(source, small_noisy)
    _no_computing(monkeypatch)
    code = main(["denoise", str(source), "-o", str(tmp_path / "o.tif"), "--method", "mid", "--weights",
                 str(mid_model_file), "--tile", "1", "-q"])
    err = capsys.readouterr().err
    assert code == 2 and "tile must be 0 (the whole plane) or at least 64 pixels; got 1" in err
    assert err.count("tile must be") == 1


@pytest.mark.parametrize("tile", [1, 32, 63])
def test_mpi_fill_tiles_below_64_pixels_are_refused(small_noisy, tile):
    with pytest.raises(ValueError, match=rf"^fill_tile must be 0 \(the whole plane\) or at least 64 pixels; "
                                         rf"got {tile}$"):
        DenoiseRun(small_noisy, "bsn", device="cpu", fill_tile=tile, **TINY)


def test_crops_and_tiles_that_larger_scales_cannot_take_name_the_scales(small_noisy):
    with pytest.raises(ValueError, match=r"^scales=7 needs tiles of at least 129 pixels .*fill_tile is 100: lower "
                                         r"scales, or set fill_tile to 0 \(the whole plane\) or at least 129$"):
        get_method_spec("bsn").make_config(scales=7, fill_tile=100)
    with pytest.raises(ValueError, match=r"^scales=5 and shuffle_factor=2 need crops of at least 66 pixels .*"
                                         r"training_crop is 40: lower scales or shuffle_factor"):
        get_method_spec("bsn").make_config(shuffle_factor=2, training_crop=40)
    assert get_method_spec("bsn").make_config(fill_tile=64, training_crop=33).fill_tile == 64


# --- a preset's start crop and larger scales ----------------------------------------------

def test_more_scales_than_a_preset_s_start_crop_holds_names_the_scales_first(small_noisy):
    with pytest.raises(ValueError, match=r"^scales=8 needs crops of at least 257 pixels \(2\*\*scales \+ 1\), but "
                                         r"start_crop is 256: lower scales, or set start_crop to 0 \(off\) or at "
                                         r"least 257$"):
        DenoiseRun(small_noisy, "bsn-fast", device="cpu", scales=8)
    # Either way out works: fewer scales, or the start crop off.
    assert get_method_spec("bsn-fast").make_config(scales=8, start_crop=0).scales == 8


def test_the_command_line_says_what_to_change_for_scales_8_on_bsn_fast(tmp_path, small_noisy, monkeypatch, capsys):
    source = tmp_path / "img.tif"
    tifffile.imwrite(source, small_noisy)
    _no_computing(monkeypatch)
    assert main(["denoise", str(source), "-o", str(tmp_path / "out.tif"), "--method", "bsn-fast", "--scales", "8",
                 "-q"]) == 2
    err = capsys.readouterr().err
    assert "error: scales=8 needs crops of at least 257 pixels" in err and "start_crop is 256" in err
    assert "start_crop must be" not in err and len(err.strip().splitlines()) == 1


# --- weights files ------------------------------------------------------------------------

def _text(path):
    path.write_text("hello\n")


def _empty(path):
    path.write_bytes(b"")


def _truncated(path):
    from napari_zsdenoise.networks.checkpoints import save_hourglass
    from napari_zsdenoise.networks.hourglass import SkipHourglass

    save_hourglass(SkipHourglass(1, 1, width=8, scales=3), path)
    path.write_bytes(path.read_bytes()[:3000])


def _unsafe_pickle(path):
    torch.save({"params": argparse.Namespace(width=8)}, path)  # needs weights_only=False


def _plain_zip(path):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("notes.txt", "not a checkpoint")


def _mid_model(path):
    from napari_zsdenoise.methods.mid.model import new_network, save_model

    save_model(new_network(8, 3, seed=0), path, noise_model={}, model_card={})


def _mpi_checkpoint(path):
    from napari_zsdenoise.networks.checkpoints import save_hourglass
    from napari_zsdenoise.networks.hourglass import SkipHourglass

    save_hourglass(SkipHourglass(1, 1, width=8, scales=3), path)


def _foreign_tensors(path):
    from napari_zsdenoise.networks.checkpoints import CHECKPOINT_FORMAT
    from napari_zsdenoise.networks.hourglass import SkipHourglass

    state = SkipHourglass(1, 1, width=16, scales=3).state_dict()  # tensors of a wider network
    torch.save({"format": CHECKPOINT_FORMAT, "version": 1, "state_dict": state,
                "architecture": {"image_channels": 1, "mask_channels": 1, "width": 8, "scales": 3}}, path)


def _giant_architecture(path):
    from napari_zsdenoise.networks.checkpoints import CHECKPOINT_FORMAT

    torch.save({"format": CHECKPOINT_FORMAT, "version": 1, "state_dict": {},
                "architecture": {"image_channels": 1, "mask_channels": 1, "width": 10**6, "scales": 3}}, path)


@pytest.mark.parametrize(("method", "make", "reason"), [
    ("mpi-fast", _text, "not a PyTorch checkpoint"),
    ("mpi-fast", _empty, "the file is empty"),
    ("mpi-fast", _truncated, "the file is cut short or damaged"),
    ("mpi-fast", _unsafe_pickle, "it holds Python objects besides tensors"),
    ("mpi-fast", _plain_zip, "a zip archive, but not a PyTorch checkpoint"),
    ("mpi-fast", _mid_model, "it is a MID model file"),
    ("mpi-fast", _foreign_tensors, "its tensors do not fit the MPI hourglass (103 of another shape"),
    ("mpi-fast", _giant_architecture, "its MPI hourglass has width 1000000, above the 512 this package builds"),
    ("mid", _text, "not a PyTorch checkpoint"),
    ("mid", _truncated, "the file is cut short or damaged"),
    ("mid", _unsafe_pickle, "it holds Python objects besides tensors"),
    ("mid", _mpi_checkpoint, "not a MID model file"),
])
def test_an_unusable_weights_file_is_one_line_before_any_computing(tmp_path, small_noisy, method, make, reason):
    path = tmp_path / "w.pt"
    make(path)
    with pytest.raises(ValueError) as caught:
        DenoiseRun(small_noisy, method, device="cpu", weights=str(path), width=8, scales=3) if method != "mid" else \
            DenoiseRun(small_noisy, method, device="cpu", weights=str(path))
    message = str(caught.value)
    assert message.startswith(f"cannot read weights from {path}: {reason}")
    assert "\n" not in message and "weights_only" not in message and "Weights only" not in message


@pytest.mark.parametrize("method", ["mpi-fast", "mid"])
def test_a_text_file_given_as_weights_is_refused_once_as_the_options_are_read(tmp_path, small_noisy, method,
                                                                             monkeypatch, capsys):
    source, weights = tmp_path / "img.tif", tmp_path / "w.pt"
    tifffile.imwrite(source, small_noisy)
    weights.write_text("hello\n")
    _no_computing(monkeypatch)
    with pytest.raises(SystemExit) as caught:
        main(["denoise", str(source), "-o", str(tmp_path / "o.tif"), "--method", method, "--weights", str(weights)])
    err = capsys.readouterr().err
    assert caught.value.code == 2
    assert f"cannot read weights from {weights}: not a PyTorch checkpoint" in err
    assert err.count("cannot read weights") == 1 and "weights_only" not in err


def test_a_pickle_needing_unsafe_loading_is_named_in_one_line_on_the_command_line(tmp_path, small_noisy, capsys):
    source, weights = tmp_path / "img.tif", tmp_path / "w.pt"
    tifffile.imwrite(source, small_noisy)
    _unsafe_pickle(weights)
    assert main(["denoise", str(source), "-o", str(tmp_path / "o.tif"), "--method", "mpi-fast", "--weights",
                 str(weights), "-q"]) != 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "cannot read weights" in line]
    assert lines and all(f"cannot read weights from {weights}: it holds Python objects" in line for line in lines)
    assert "weights_only" not in err and "Weights only" not in err and not (tmp_path / "o.tif").exists()
