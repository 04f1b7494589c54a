from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from napari_zsdenoise.io import read_image, read_tiff_metadata, write_tiff_atomic
from napari_zsdenoise.networks.checkpoints import load_hourglass, save_hourglass
from napari_zsdenoise.networks.hourglass import SkipHourglass


def test_atomic_write_round_trip_and_no_overwrite(tmp_path):
    path = tmp_path / "out.tif"
    data = np.arange(2 * 5 * 6, dtype=np.float32).reshape(2, 5, 6)
    write_tiff_atomic(path, data, metadata={"method": "mpi-fast", "seed": 3})
    np.testing.assert_array_equal(read_image(path), data)
    assert read_tiff_metadata(path) == {"method": "mpi-fast", "seed": 3}
    with pytest.raises(FileExistsError, match="overwrite"):
        write_tiff_atomic(path, data)
    write_tiff_atomic(path, data * 2, overwrite=True)
    np.testing.assert_array_equal(read_image(path), data * 2)
    assert [p.name for p in tmp_path.iterdir()] == ["out.tif"]  # no temporary left behind
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # an ordinary file, not mkstemp's 0600


def test_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(Exception):
        write_tiff_atomic(tmp_path / "bad.tif", np.zeros((4, 4), dtype=object))
    assert list(tmp_path.iterdir()) == []


def test_unknown_suffix_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="supported suffixes"):
        read_image(tmp_path / "image.jpg")


def test_checkpoint_round_trip_is_bit_exact(tmp_path):
    torch.manual_seed(0)
    network = SkipHourglass(1, 1, width=8, scales=3)
    path = tmp_path / "net.pt"
    save_hourglass(network, path, extra={"recipe": "test"})
    loaded, info = load_hourglass(path)
    for (name, a), (_, b) in zip(network.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name
    assert (loaded.width, loaded.scales) == (8, 3)
    assert len(info["sha256"]) == 64 and info["recipe"] == "test"


def test_malformed_checkpoint_is_rejected_clearly(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"^cannot read weights from .*junk.pt: not a PyTorch checkpoint$"):
        load_hourglass(junk)
    foreign = tmp_path / "foreign.pt"
    torch.save({"something": 1}, foreign)
    with pytest.raises(ValueError, match="foreign.pt: not an MPI hourglass checkpoint"):
        load_hourglass(foreign)
    with pytest.raises(FileNotFoundError):
        load_hourglass(tmp_path / "missing.pt")


def test_denoise_starts_from_a_given_checkpoint(tmp_path, small_noisy):
    from napari_zsdenoise import DenoiseRun

    torch.manual_seed(0)
    path = tmp_path / "net.pt"
    save_hourglass(SkipHourglass(1, 1, width=8, scales=3), path)
    run = DenoiseRun(small_noisy, "mpi-fast", iterations=2, weights=str(path), width=8, scales=3)
    list(run)
    assert run.metadata["weights"]["source"] == "checkpoint"
    assert run.metadata["parameters"]["weights"] == str(path)
