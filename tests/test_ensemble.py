"""Ensembles of blind-spot predictions and their blend with the noisy plane."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_zsdenoise.methods._ensemble import (
    MaskedEnsemble,
    blend_weight,
    blend_weights,
    estimate_noise_variance,
    masked_ema_update,
    noise_response,
    residual_correlation,
    tile_grid,
    tiled_blend_weights,
)


def _ramp(size: int = 256) -> np.ndarray:
    rows, cols = np.mgrid[0:size, 0:size] / size
    return 0.2 + 0.5 * rows + 0.2 * cols


def test_noise_variance_of_white_noise_on_a_smooth_plane():
    noise = np.random.default_rng(0).normal(0.0, 0.05, (256, 256))
    assert estimate_noise_variance(_ramp() + noise) == pytest.approx(0.05**2, rel=0.05)
    assert estimate_noise_variance(_ramp()) == pytest.approx(0.0, abs=1e-12)  # linear signal cancels


def test_noise_variance_needs_three_pixels_per_side():
    with pytest.raises(ValueError, match="at least 3x3"):
        estimate_noise_variance(np.zeros((2, 10)))


def test_blend_weight_from_residual_and_noise_variance():
    noisy = torch.zeros(1, 1, 4, 4)
    estimate = torch.full((1, 1, 4, 4), 0.2)  # residual 0.04 = noise 0.01 + estimate error 0.03
    assert blend_weight(noisy, estimate, 0.01) == pytest.approx(0.75)
    assert blend_weight(noisy, estimate, 0.08) == 0.0  # more noise than residual: keep the estimate
    assert blend_weight(noisy, noisy, 0.01) == 0.0


def test_noise_response_keeps_the_shape_and_ignores_linear_signal():
    ramp = torch.from_numpy(_ramp(32))[None, None]
    response = noise_response(ramp)
    assert response.shape == ramp.shape
    assert float(response[..., 1:-1, 1:-1].abs().max()) < 1e-12


def test_signal_dependent_noise_gets_a_weight_per_intensity_band():
    rng = np.random.default_rng(3)
    clean = np.repeat(np.linspace(0.1, 0.9, 256)[None, :], 256, axis=0)
    # Poisson-like: noise standard deviation grows with the signal; an estimate with a
    # constant independent error gets more of the noisy value where the noise is weak.
    noisy = clean + rng.normal(0.0, 1.0, clean.shape) * 0.1 * np.sqrt(clean)
    estimate = clean + rng.normal(0.0, 0.03, clean.shape)
    as_tensor = lambda a: torch.from_numpy(a.astype(np.float32))[None, None]  # noqa: E731
    weights = blend_weights(as_tensor(noisy), as_tensor(estimate), noise_response(as_tensor(noisy)))[0, 0].numpy()
    dim, bright = weights[:, :32].mean(), weights[:, -32:].mean()
    # Expected e / (e + s2): dim columns s2 ~ 0.01 * 0.1..0.2, bright ~ 0.01 * 0.8..0.9.
    assert dim > 0.25 and bright < 0.15 and dim > 2 * bright
    blended = estimate + weights * (noisy - estimate)
    assert np.mean((blended - clean) ** 2) < np.mean((estimate - clean) ** 2)


def test_zero_start_ensemble_is_a_weighted_mean_of_predictions_only():
    noisy = torch.full((1, 1, 1, 3), 9.0)
    ensemble = MaskedEnsemble(noisy, beta=0.5, start="zero")
    ensemble.update(torch.tensor([[[[1.0, 2.0, 3.0]]]]), torch.tensor([[[[True, True, False]]]]))
    torch.testing.assert_close(ensemble.mean(), torch.tensor([[[[1.0, 2.0, 9.0]]]]))  # never hidden: noisy
    ensemble.update(torch.tensor([[[[5.0, 6.0, 7.0]]]]), torch.tensor([[[[True, False, True]]]]))
    # Hidden twice: (beta * 1 + 5) / (1 + beta); once: that prediction alone.
    torch.testing.assert_close(ensemble.mean(), torch.tensor([[[[(0.5 * 1 + 5) / 1.5, 2.0, 7.0]]]]))


def test_noisy_start_ensemble_is_the_authors_masked_ema():
    generator = torch.Generator().manual_seed(0)
    noisy = torch.rand(1, 1, 8, 8, generator=generator)
    ensemble = MaskedEnsemble(noisy, beta=0.9, start="noisy")
    expected = noisy.clone()
    for _ in range(4):
        prediction = torch.rand(1, 1, 8, 8, generator=generator)
        hidden = torch.rand(1, 1, 8, 8, generator=generator) < 0.85
        ensemble.update(prediction, hidden)
        expected = masked_ema_update(expected, prediction, hidden, 0.9)
    assert torch.equal(ensemble.mean(), expected)


@pytest.mark.parametrize(("beta", "start"), [(1.0, "zero"), (-0.1, "noisy"), (0.9, "middle")])
def test_ensemble_rejects_bad_settings(beta, start):
    with pytest.raises(ValueError):
        MaskedEnsemble(torch.zeros(1, 1, 4, 4), beta=beta, start=start)


def test_blending_an_independent_estimate_with_the_noisy_plane_lowers_the_error():
    rng = np.random.default_rng(1)
    clean = _ramp()
    noisy = clean + rng.normal(0.0, 0.05, clean.shape)
    # An estimate as good as the noisy plane, with independent errors: the best blend halves the error.
    estimate = clean + rng.normal(0.0, 0.05, clean.shape)
    as_tensor = lambda a: torch.from_numpy(a.astype(np.float32))[None, None]  # noqa: E731
    ensemble = MaskedEnsemble(as_tensor(noisy), beta=0.5, start="zero")
    ensemble.update(as_tensor(estimate), torch.ones(1, 1, *clean.shape, dtype=torch.bool))
    blended, weight = ensemble.blended(noise_response(as_tensor(noisy)))
    assert weight == pytest.approx(0.5, abs=0.05)
    error_before = np.mean((estimate - clean) ** 2)
    error_after = np.mean((blended[0, 0].numpy() - clean) ** 2)
    assert error_after < 0.6 * error_before


def test_spatially_correlated_residuals_are_not_blended():
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(2)
    clean = _ramp()
    # Camera-like correlated noise: white noise smoothed over about a pixel.
    noisy = clean + gaussian_filter(rng.normal(0.0, 0.12, clean.shape), 0.8)
    estimate = clean + rng.normal(0.0, 0.02, clean.shape)
    as_tensor = lambda a: torch.from_numpy(a.astype(np.float32))[None, None]  # noqa: E731
    assert residual_correlation(as_tensor(noisy), as_tensor(estimate)) > 0.3
    assert not blend_weights(as_tensor(noisy), as_tensor(estimate), noise_response(as_tensor(noisy))).any()
    # The same estimate with white noise of the same variance is blended.
    white = clean + rng.normal(0.0, float(np.std(noisy - clean)), clean.shape)
    assert residual_correlation(as_tensor(white), as_tensor(estimate)) < 0.1
    assert blend_weights(as_tensor(white), as_tensor(estimate), noise_response(as_tensor(white))).mean() > 0.1  # e / (e + s2) ~ 0.18


def test_binning_ratio_tells_pixel_independent_from_correlated_noise():
    from scipy import ndimage

    from napari_zsdenoise.methods._early_stopping import binning_noise_ratio, looks_spatially_correlated
    from napari_zsdenoise.synthetic import fluorescence_phantom, poisson_gaussian_noise

    white = np.random.default_rng(0).standard_normal((128, 96))
    assert 0.45 < binning_noise_ratio(white) < 0.55  # binning halves white noise
    assert binning_noise_ratio(torch.from_numpy(white)) == binning_noise_ratio(white)
    # Camera-like noise: each pixel shares noise with its neighbours.
    assert looks_spatially_correlated(0.5 + ndimage.gaussian_filter(white, 0.8))
    phantom = fluorescence_phantom((96, 96), seed=3)
    assert not looks_spatially_correlated(poisson_gaussian_noise(phantom, peak_photons=40, seed=4))


def test_an_over_smooth_estimate_of_pixel_independent_noise_is_blended_and_gains():
    """A young ensemble of a high-SNR plane: too smooth, so its residual correlates because it holds signal."""
    from scipy.ndimage import gaussian_filter

    from napari_zsdenoise.synthetic import fluorescence_phantom

    rng = np.random.default_rng(3)
    clean = fluorescence_phantom((128, 128), seed=5)
    clean = clean / clean.max()
    noisy = clean + rng.normal(0.0, 0.02, clean.shape)
    estimate = gaussian_filter(clean, 2.0)
    as_tensor = lambda a: torch.from_numpy(a.astype(np.float32))[None, None]  # noqa: E731
    assert residual_correlation(as_tensor(noisy), as_tensor(estimate)) > 0.3
    ensemble = MaskedEnsemble(as_tensor(noisy), beta=0.5, start="zero")
    ensemble.update(as_tensor(estimate), torch.ones(1, 1, *clean.shape, dtype=torch.bool))
    gated, gated_weight = ensemble.blended(noise_response(as_tensor(noisy)))
    blended, weight = ensemble.blended(noise_response(as_tensor(noisy)), pixel_independent=True)
    assert gated_weight == 0.0 and weight > 0.1

    def error(image: torch.Tensor) -> float:
        return float(np.mean((image[0, 0].numpy() - clean) ** 2))

    assert error(blended) < 0.8 * min(error(gated), float(np.mean((noisy - clean) ** 2))), (error(blended), error(gated))


def test_tile_grid_covers_the_plane_with_tiles_near_the_asked_side():
    counts, tiles = tile_grid((600, 1000), 256)
    assert counts == (2, 4)
    covered = np.zeros((600, 1000), dtype=int)
    for rows, columns in tiles:
        covered[rows, columns] += 1
        assert 200 <= rows.stop - rows.start <= 320 and 200 <= columns.stop - columns.start <= 320
    assert (covered == 1).all()
    assert tile_grid((300, 300), 256) == ((1, 1), [(slice(0, 300), slice(0, 300))])


def _two_noise_levels(seed: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A smooth plane whose left half is four times less noisy than its right half, and an estimate
    of it with an independent error: the best blend weight is 0.5 on the left, 0.06 on the right."""
    rng = np.random.default_rng(seed)
    rows, columns = np.mgrid[0:384, 0:768] / 384
    clean = 0.4 + 0.2 * np.sin(5 * columns) * np.cos(3 * rows)
    sigma = np.where(columns < 1.0, 0.04, 0.16)
    return clean, clean + sigma * rng.standard_normal(clean.shape), clean + 0.04 * rng.standard_normal(clean.shape)


def test_tiled_blend_weights_follow_a_noise_level_that_changes_across_the_plane():
    clean, noisy, estimate = _two_noise_levels()
    as_tensor = lambda a: torch.from_numpy(a.astype(np.float32))[None, None]  # noqa: E731
    response = noise_response(as_tensor(noisy))
    whole = blend_weights(as_tensor(noisy), as_tensor(estimate), response)[0, 0].numpy()
    tiled = tiled_blend_weights(as_tensor(noisy), as_tensor(estimate), response, tile=128,
                                independent_blocks=[True] * 72)[0, 0].numpy()
    # One weight per band for the whole plane lands between the two halves' best weights.
    assert abs(whole[:, :256].mean() - whole[:, -256:].mean()) < 0.1
    assert tiled[:, :256].mean() == pytest.approx(0.5, abs=0.08)
    assert tiled[:, -256:].mean() == pytest.approx(1 / 17, abs=0.05)

    def error(weights: np.ndarray) -> float:
        return float(np.mean((estimate + weights * (noisy - estimate) - clean) ** 2))

    assert error(tiled) < 0.9 * error(whole)
    # Interpolated between tiles' centres: the mean weight of a column changes in small steps, no seam.
    assert np.abs(np.diff(tiled.mean(axis=0))).max() < 0.03


def test_blocks_of_correlated_noise_blend_nothing_while_the_rest_of_the_plane_blends():
    from scipy.ndimage import gaussian_filter

    from napari_zsdenoise.methods._early_stopping import looks_spatially_correlated, pixel_independent_blocks

    clean, noisy, estimate = _two_noise_levels(5)
    rng = np.random.default_rng(6)
    # Camera-like noise on the right, from a column that is no tile's edge: one 384² tile straddles both kinds.
    noisy[:, 448:] = clean[:, 448:] + gaussian_filter(rng.normal(0.0, 0.3, (384, 320)), 0.8)
    independent = pixel_independent_blocks(noisy)
    assert independent == [column < 7 for _ in range(6) for column in range(12)]  # blocks of 64
    as_tensor = lambda a: torch.from_numpy(a.astype(np.float32))[None, None]  # noqa: E731
    weights = tiled_blend_weights(as_tensor(noisy), as_tensor(estimate), noise_response(as_tensor(noisy)), tile=384,
                                  independent_blocks=independent)[0, 0].numpy()
    assert weights[:, :448].mean() > 0.3
    assert weights[:, 448:].max() == 0.0
    # The whole plane looks pixel-independent, so one set of weights for it blends the camera part too.
    whole = blend_weights(as_tensor(noisy), as_tensor(estimate), noise_response(as_tensor(noisy)),
                          pixel_independent=not looks_spatially_correlated(noisy))[0, 0].numpy()
    assert whole[:, 448:].mean() > 0.3


def test_a_blend_tile_holds_a_noise_block_at_least():
    from napari_zsdenoise.methods._ensemble import NOISE_BLOCK
    from napari_zsdenoise.methods.mpi.settings import MIN_BLEND_TILE, MPIConfig

    assert MIN_BLEND_TILE == NOISE_BLOCK
    with pytest.raises(ValueError, match="blend_tile must be 0 .* or at least 64 pixels; got 16"):
        MPIConfig(blend_tile=16)
    assert MPIConfig(blend_tile=0).blend_tile == 0
