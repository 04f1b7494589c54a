from __future__ import annotations

import numpy as np
import pytest

from napari_zsdenoise.normalization import IntensityScaling


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.float32, np.float64])
def test_round_trip_is_exact_to_float32_precision(rng, dtype):
    info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else None
    high = min(info.max, 5000) if info else 1e4
    low = max(info.min, -200) if info else -50.0
    image = rng.uniform(low, high, (37, 53)).astype(dtype)
    scaling = IntensityScaling.fit(image)
    restored = scaling.denormalize(scaling.normalize(image))
    assert restored.dtype == np.float32
    np.testing.assert_allclose(restored, image.astype(np.float64), rtol=1e-6, atol=1e-6 * float(high - low))


def test_percentiles_land_inside_the_headroom(rng):
    image = rng.gamma(2.0, 300.0, (128, 128))
    scaling = IntensityScaling.fit(image, headroom=0.1)
    normalized = scaling.normalize(image)
    low, high = np.percentile(normalized, [0.1, 99.9])
    assert low == pytest.approx(0.1, abs=1e-5)
    assert high == pytest.approx(0.9, abs=1e-5)
    # Only the extreme tail may leave the interval a sigmoid reaches comfortably.
    assert np.mean((normalized < 0.0) | (normalized > 1.0)) < 0.002


def test_flat_image_keeps_a_finite_invertible_scaling():
    image = np.full((40, 40), 7.0)
    scaling = IntensityScaling.fit(image)
    assert np.isfinite(scaling.scale) and scaling.scale > 0
    np.testing.assert_allclose(scaling.denormalize(scaling.normalize(image)), image, rtol=1e-6)


def test_fit_does_not_modify_input(rng):
    image = rng.uniform(0, 1, (32, 32))
    before = image.copy()
    scaling = IntensityScaling.fit(image)
    scaling.normalize(image)
    np.testing.assert_array_equal(image, before)


def test_the_fit_moves_with_a_baseline_subtracted_from_the_image(rng):
    from napari_zsdenoise.normalization import subtract_baseline

    image = rng.poisson(30, (40, 50)).astype(np.uint16) + 100
    fitted = IntensityScaling.fit(image).for_baseline_removed(100.0)
    refitted = IntensityScaling.fit(image.astype(np.float64) - 100)
    assert fitted.scale == pytest.approx(refitted.scale) and fitted.offset == pytest.approx(refitted.offset)
    shifted = subtract_baseline(image, 100.0)
    assert shifted.dtype == np.float32
    np.testing.assert_array_equal(shifted, image.astype(np.float32) - 100)
    np.testing.assert_allclose(fitted.normalize(shifted), IntensityScaling.fit(image).normalize(image), atol=1e-6)
