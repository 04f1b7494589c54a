"""Zero-Shot Noise2Noise: the downsampler pair, the losses and a measured denoising gain."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_zsdenoise import DenoiseRun, denoise
from napari_zsdenoise.methods.zs_n2n import pair_downsample, zs_n2n_losses
from napari_zsdenoise.networks.noise_predictor import NoisePredictor


def test_downsamplers_average_the_two_diagonals_of_each_block():
    image = torch.arange(16, dtype=torch.float32).reshape(1, 1, 4, 4)
    first, second = pair_downsample(image)
    expected_first = torch.tensor([[(0 + 5) / 2, (2 + 7) / 2], [(8 + 13) / 2, (10 + 15) / 2]])
    expected_second = torch.tensor([[(1 + 4) / 2, (3 + 6) / 2], [(9 + 12) / 2, (11 + 14) / 2]])
    torch.testing.assert_close(first[0, 0], expected_first)
    torch.testing.assert_close(second[0, 0], expected_second)
    # Together they use every pixel exactly once, so their mean is the 2x2 block mean.
    torch.testing.assert_close((first + second) / 2, torch.nn.functional.avg_pool2d(image, 2))


def test_losses_are_the_residual_and_consistency_terms():
    torch.manual_seed(0)
    network = NoisePredictor(1, 4)
    noisy = torch.rand(1, 1, 8, 8)
    loss, full = zs_n2n_losses(network, noisy)
    d1, d2 = pair_downsample(noisy)
    f1, f2 = network.denoise(d1), network.denoise(d2)
    g1, g2 = pair_downsample(network.denoise(noisy))
    expected = 0.5 * (((d1 - f2) ** 2).mean() + ((d2 - f1) ** 2).mean()) + 0.5 * (((f1 - g1) ** 2).mean() + ((f2 - g2) ** 2).mean())
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(full, network.denoise(noisy))


def test_odd_sized_planes_keep_their_shape(small_noisy):
    odd = small_noisy[:47, :39]
    result = denoise(odd, "zs-n2n", iterations=3, seed=0, device="cpu")
    assert result.shape == odd.shape and result.dtype == np.float32


def test_seeded_runs_repeat_and_preview_is_the_current_estimate(small_noisy):
    first = denoise(small_noisy, "zs-n2n", iterations=5, seed=2, device="cpu")
    again = denoise(small_noisy, "zs-n2n", iterations=5, seed=2, device="cpu")
    np.testing.assert_array_equal(first, again)
    run = DenoiseRun(small_noisy, "zs-n2n", iterations=4, preview_every=2, device="cpu")
    previews = [e.preview for e in run if e.preview is not None]
    assert len(previews) >= 2 and not np.array_equal(previews[0], previews[-1])


@pytest.mark.parametrize("settings", [{"iterations": 0}, {"gamma": 0.0}, {"learning_rate": -1.0}, {"hidden_channels": 1.5}])
def test_bad_settings_are_refused(settings, small_noisy):
    with pytest.raises((ValueError, TypeError)):
        DenoiseRun(small_noisy, "zs-n2n", **settings)
