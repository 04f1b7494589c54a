"""MID (Mask, Inpaint and Denoise): noise bank, rounds, model file, K-pass inference, CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from napari_zsdenoise.methods.mid.noise_bank import (
    GaussianNoise,
    Harvest,
    NoiseBank,
    fit_noise_model,
    harvest_residuals,
    robust_noise_sigma,
)


def _local_mean_of_visible(plane: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """A stand-in denoiser that sees only the visible pixels: their 3x3 mean."""
    visible = ndimage.uniform_filter(plane * keep, 3, mode="reflect")
    weight = ndimage.uniform_filter(keep.astype(np.float32), 3, mode="reflect")
    return (visible / np.maximum(weight, 1e-6)).astype(np.float32)


def test_the_bank_holds_residuals_of_masked_predictions_not_unmasked_ones():
    rng = np.random.default_rng(0)
    planes = [rng.normal(0.5, 0.1, (40, 36)).astype(np.float32) for _ in range(2)]
    seen = []

    def predict(plane, keep):
        seen.append(keep)
        return _local_mean_of_visible(plane, keep)

    harvests = list(harvest_residuals(predict, planes, masks_per_plane=3, mask_ratio=0.7, rng=rng))
    assert [(h.plane, h.mask) for h in harvests] == [(p, m) for p in range(2) for m in range(3)]
    for harvest, keep in zip(harvests, seen):
        plane = planes[harvest.plane]
        assert harvest.keep is keep and 0.6 < 1 - keep.mean() < 0.8
        np.testing.assert_allclose(harvest.residual, plane - _local_mean_of_visible(plane, keep), atol=1e-6)
        unmasked = plane - _local_mean_of_visible(plane, np.ones_like(keep))
        assert np.abs(harvest.residual - unmasked).mean() > 0.01
    assert not np.array_equal(seen[0], seen[1])

    # Without the variance model the bank keeps the residuals as they are, scaled by one constant.
    bank = NoiseBank.from_harvests(iter(harvests), maps=len(harvests), patch_size=16, count=12, signal_dependent=False,
                                   rng=rng)
    assert len(bank) == 12 and bank.model.a == 0
    for patch, (plane, mask, top, left) in zip(bank.patches.numpy(), bank.sources.tolist()):
        harvest = harvests[3 * plane + mask]
        expected = harvest.residual[top:top + 16, left:left + 16] / np.sqrt(bank.model.b)
        np.testing.assert_allclose(patch, expected, rtol=1e-5, atol=1e-6)


def test_the_poisson_gaussian_fit_recovers_a_and_b_and_synthesised_noise_has_their_variance():
    rng = np.random.default_rng(1)
    a, b = 0.01, 0.0004
    signal = rng.uniform(0.0, 1.0, 200_000)
    residual = rng.normal(0.0, np.sqrt(a * signal + b))
    model = fit_noise_model(signal, residual)
    assert model.a == pytest.approx(a, rel=0.1) and model.b == pytest.approx(b, rel=0.25)

    # A bank whitened by the fit puts back the variance of the clean patch's own intensity.
    shape = (64, 64)
    maps = []
    for index in range(4):
        prediction = rng.uniform(0.0, 1.0, shape).astype(np.float32)
        noise = rng.normal(0.0, np.sqrt(a * prediction + b)).astype(np.float32)
        maps.append(Harvest(index, 0, np.ones(shape, bool), prediction, noise))
    bank = NoiseBank.from_harvests(maps, maps=4, patch_size=32, count=64, signal_dependent=True, rng=rng)
    generator = torch.Generator().manual_seed(0)
    for level in (0.1, 0.8):
        clean = torch.full((256, 1, 32, 32), level)
        noise = bank.sample(clean, generator)
        assert float(noise.var()) == pytest.approx(a * level + b, rel=0.15)
    # Without the model, the same residuals would keep one variance whatever the intensity.
    flat = NoiseBank.from_harvests(maps, maps=4, patch_size=32, count=64, signal_dependent=False, rng=rng)
    dim, bright = (float(flat.sample(torch.full((256, 1, 32, 32), level), generator).var()) for level in (0.1, 0.8))
    assert dim == pytest.approx(bright, rel=0.15)


def test_the_first_round_noise_level_is_a_robust_estimate_in_normalised_units():
    rng = np.random.default_rng(2)
    ramp = np.linspace(0, 1, 128, dtype=np.float32)[None, :] * np.ones((96, 1), np.float32)
    planes = [ramp + rng.normal(0, 0.05, ramp.shape).astype(np.float32) for _ in range(3)]
    planes[0][40:60, 40:60] += 0.5  # edges the high-pass sees, and the MAD ignores
    assert robust_noise_sigma(planes) == pytest.approx(0.05, rel=0.1)
    noise = GaussianNoise(0.05).sample(torch.zeros(64, 1, 32, 32), torch.Generator().manual_seed(0))
    assert float(noise.std()) == pytest.approx(0.05, rel=0.05)
