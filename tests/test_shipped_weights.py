"""The MPI weights this project pre-trained, shipped inside the package."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_zsdenoise import DenoiseRun
from napari_zsdenoise.cli import main
from napari_zsdenoise.methods import get_method_spec
from napari_zsdenoise.networks.checkpoints import file_sha256, load_weights
from napari_zsdenoise.networks.hourglass import SkipHourglass
from napari_zsdenoise.synthetic import fluorescence_phantom
from napari_zsdenoise.weights import SHIPPED, shipped_model_card, shipped_weights_path


def test_shipped_checkpoint_matches_its_model_card():
    path = shipped_weights_path()
    card = shipped_model_card()
    assert card["sha256"] == file_sha256(path) and card["file"] == path.name
    for key in ("recipe", "corpus", "iterations", "batch", "crop", "seed", "wall_time_seconds", "device", "command"):
        assert card[key] not in (None, "", {}), key
    assert card["recipe"]["mask"] == "80-95"
    assert path.stat().st_size < 8 * 2**20  # a few MB


@pytest.mark.parametrize("preset", ["mpi", "mpi-fast"])
def test_mpi_presets_default_to_the_shipped_weights(preset, small_noisy):
    assert get_method_spec(preset).default_config.weights == SHIPPED
    run = DenoiseRun(small_noisy, preset, iterations=1, device="cpu")
    list(run)
    weights = run.metadata["weights"]
    assert weights["source"] == "shipped"
    assert weights["sha256"] == shipped_model_card()["sha256"]


def test_weights_none_means_random_initialisation(small_noisy):
    run = DenoiseRun(small_noisy, "mpi-fast", iterations=1, device="cpu", weights=None)
    list(run)
    assert run.metadata["weights"]["source"] == "random initialisation"


def test_weights_that_do_not_fit_the_settings_are_refused(small_noisy):
    # Refused when the run is set up, before any computing.
    with pytest.raises(ValueError, match="width 64"):
        DenoiseRun(small_noisy, "mpi-fast", iterations=1, device="cpu", width=8)


def test_cli_weights_option_selects_shipped_none_or_file(tmp_path, small_noisy):
    import tifffile

    source = tmp_path / "in.tif"
    tifffile.imwrite(source, small_noisy)
    for option, expected in (("shipped", "shipped"), ("none", "random initialisation"), (str(shipped_weights_path()), "checkpoint")):
        out = tmp_path / f"out-{expected[:4]}.tif"
        assert main(["denoise", str(source), "-o", str(out), "--method", "mpi", "--iterations", "1", "--weights", option, "-q"]) == 0
        from napari_zsdenoise.io import read_tiff_metadata

        assert read_tiff_metadata(out)["weights"]["source"] == expected


def test_shipped_weights_fill_masked_fluorescence_better_than_random():
    # The phantom generator is not the procedural generator used for pre-training.
    clean = torch.from_numpy(fluorescence_phantom((128, 128), seed=77).astype(np.float32))[None, None] * 0.8 + 0.1
    generator = torch.Generator().manual_seed(0)
    keep = (torch.rand(clean.shape, generator=generator) >= 0.85).float()
    trained, _ = load_weights(SHIPPED)
    torch.manual_seed(0)
    random = SkipHourglass(1, 1)
    errors = {}
    for name, network in (("shipped", trained), ("random", random)):
        network.train()
        with torch.no_grad():
            filled = network(clean * keep, keep)
        errors[name] = float(((filled - clean)[keep == 0] ** 2).mean())
    print(errors)
    assert errors["shipped"] < 0.2 * errors["random"]


def test_shipped_weights_give_a_better_short_run_than_random_initialisation():
    from skimage.metrics import peak_signal_noise_ratio

    from napari_zsdenoise.synthetic import poisson_gaussian_noise

    clean = fluorescence_phantom((64, 64), seed=21)
    noisy = np.round(poisson_gaussian_noise(clean, peak_photons=20.0, read_noise=2.0, offset=100.0, seed=22))
    truth = clean * 20.0 + 100.0
    scores = {}
    for weights in (SHIPPED, None):
        run = DenoiseRun(noisy, "mpi-fast", iterations=60, seed=0, device="cpu", weights=weights)
        list(run)
        scores[weights] = peak_signal_noise_ratio(truth, run.result.astype(np.float64), data_range=float(truth.max() - truth.min()))
    # Measured: 21.71 dB (shipped) vs 19.56 dB (random initialisation).
    print(scores)
    assert scores[SHIPPED] >= scores[None] + 1.0
