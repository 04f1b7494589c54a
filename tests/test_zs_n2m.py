"""Zero-Shot Noise2Mean: the random-mask downsampler, the stage-1 losses, both stages end to end."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from napari_zsdenoise import DenoiseRun
from napari_zsdenoise.config import ZSN2MConfig
from napari_zsdenoise.methods.zs_n2m import balanced_mask, contrast_similarity, local_mean, mix_pair, stage1_losses
from napari_zsdenoise.methods.zs_n2n import pair_downsample
from napari_zsdenoise.networks.noise_predictor import NoisePredictor


def test_balanced_masks_hide_exactly_half_and_differ():
    generator = torch.Generator().manual_seed(0)
    first = balanced_mask((1, 1, 6, 7), generator, torch.device("cpu"))
    second = balanced_mask((1, 1, 6, 7), generator, torch.device("cpu"))
    assert first.sum() == 21 and second.sum() == 21
    assert not torch.equal(first, second)


def test_every_random_mask_pair_has_the_same_mean_image():
    noisy = torch.rand(1, 1, 16, 12, generator=torch.Generator().manual_seed(1))
    expected = F.avg_pool2d(noisy, 2)
    generator = torch.Generator().manual_seed(2)
    pairs = []
    for _ in range(5):
        first, second = mix_pair(*pair_downsample(noisy), balanced_mask((1, 1, 8, 6), generator, torch.device("cpu")))
        torch.testing.assert_close((first + second) / 2, expected)
        pairs.append(first)
    assert not torch.equal(pairs[0], pairs[1])  # the pairs themselves differ


def test_contrast_similarity_is_one_for_equal_textures_and_small_for_flat_against_noise():
    texture = torch.rand(1, 1, 20, 20, generator=torch.Generator().manual_seed(3))
    same = contrast_similarity(texture, texture, 5, 9e-4)
    assert float(same.min()) > 0.95
    flat = torch.full_like(texture, 0.5)
    assert float(contrast_similarity(flat, texture, 5, 9e-4).max()) < 1e-3
    torch.testing.assert_close(local_mean(flat, 5), flat)


def test_stage1_loss_is_the_weighted_sum_of_the_three_terms():
    torch.manual_seed(0)
    network = NoisePredictor(1, 4)
    noisy = torch.rand(1, 1, 16, 16)
    mask = balanced_mask((1, 1, 8, 8), torch.Generator().manual_seed(0), torch.device("cpu"))
    config = ZSN2MConfig(alpha_ie=1.0, alpha_cm=0.0, alpha_id=0.0)
    loss, full = stage1_losses(network, noisy, mask, config)
    first, second = mix_pair(*pair_downsample(noisy), mask)
    g1, g2 = mix_pair(*pair_downsample(network.denoise(noisy)), mask)
    expected = ((network.denoise(first) - g2) ** 2).mean() + ((network.denoise(second) - g1) ** 2).mean()
    torch.testing.assert_close(loss, expected)
    cross_only, _ = stage1_losses(network, noisy, mask, ZSN2MConfig(alpha_ie=0.0, alpha_cm=1.0, alpha_id=0.0))
    expected_cross = ((network.denoise(first) - second) ** 2).mean() + ((network.denoise(second) - first) ** 2).mean()
    torch.testing.assert_close(cross_only, expected_cross)


def test_presets_split_iterations_between_the_stages():
    from napari_zsdenoise.methods import get_method_spec

    full = get_method_spec("zs-n2m").default_config
    fast = get_method_spec("zs-n2m-fast").default_config
    assert (full.iterations - full.refine_iterations, full.refine_iterations) == (2000, 500)
    assert (fast.iterations, fast.refine_iterations) == (2000, 0)


@pytest.mark.parametrize("settings", [{"refine_share": 1.0}, {"window": 4}, {"alpha_cm": -1.0}, {"iterations": 0}])
def test_bad_settings_are_refused(settings, small_noisy):
    with pytest.raises((ValueError, TypeError)):
        DenoiseRun(small_noisy, "zs-n2m", **settings)
