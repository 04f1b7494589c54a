"""Robust, exactly invertible intensity scaling between the user's units and [0, 1]."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class IntensityScaling:
    """Affine map ``normalized = (raw - offset) / scale``.

    ``offset`` and ``scale`` are in the input's intensity units.
    """

    offset: float
    scale: float

    @classmethod
    def fit(
        cls,
        image: np.ndarray,
        *,
        low_percentile: float = 0.1,
        high_percentile: float = 99.9,
        headroom: float = 0.1,
    ) -> IntensityScaling:
        """Map the ``low``/``high`` percentiles to ``headroom`` and ``1 - headroom``.

        The margin keeps real signal (bright structures above the high percentile,
        noise below the background) inside the open interval a sigmoid can reach.
        """
        if not 0 <= low_percentile < high_percentile <= 100:
            raise ValueError("need 0 <= low_percentile < high_percentile <= 100")
        if not 0 <= headroom < 0.5:
            raise ValueError("headroom must be in [0, 0.5)")
        low, high = np.percentile(np.asarray(image, dtype=np.float64), [low_percentile, high_percentile])
        span = float(high - low)
        if not np.isfinite(span) or span <= 0:
            # A flat image has nothing to stretch; keep unit gain so the inverse stays exact.
            span = max(abs(float(high)), 1.0) * (1 - 2 * headroom)
        scale = span / (1 - 2 * headroom)
        offset = float(low) - headroom * scale
        return cls(offset=offset, scale=scale)

    def normalize(self, image: np.ndarray) -> np.ndarray:
        """Return a new float32 array in normalised units."""
        return _in_row_blocks(image, lambda block: (block - self.offset) / self.scale)

    def denormalize(self, image: np.ndarray) -> np.ndarray:
        """Return a new float32 array in the original intensity units."""
        return _in_row_blocks(image, lambda block: block * self.scale + self.offset)

    def for_baseline_removed(self, baseline: float) -> IntensityScaling:
        """The map that treats ``raw - baseline`` exactly as this one treats ``raw``.

        A percentile fit moves with a constant subtracted from its input, so this is the
        fit of ``raw - baseline`` without forming that shifted copy of the image.
        """
        return IntensityScaling(offset=self.offset - baseline, scale=self.scale)


def subtract_baseline(image: np.ndarray, baseline: float) -> np.ndarray:
    """Return a new float32 array of ``image - baseline`` (e.g. a camera's constant offset)."""
    return _in_row_blocks(image, lambda block: block - baseline)


# Rows computed in float64 at a time: a large plane never needs a float64 copy of itself.
_BLOCK_VALUES = 2**20


def _in_row_blocks(image: np.ndarray, affine) -> np.ndarray:
    """``affine`` of ``image`` in float64, stored as a new float32 array, a block of rows at a time."""
    image = np.asarray(image)
    out = np.empty(image.shape, dtype=np.float32)
    if image.ndim == 0:
        out[...] = affine(image.astype(np.float64))
        return out
    rows = max(1, _BLOCK_VALUES // max(1, int(np.prod(image.shape[1:]))))
    for start in range(0, image.shape[0], rows):
        out[start:start + rows] = affine(image[start:start + rows].astype(np.float64))
    return out


#: Choices of the run-level ``normalization`` setting: each plane scaled by its own
#: percentiles, or every plane of a stack by the same ones.
NORMALIZATIONS = ("plane", "stack")
# Pixels read to fit a stack's scaling: evenly spaced planes up to about this many pixels,
# so that a long stack is not read whole before the first iteration.
_STACK_SAMPLE_PIXELS = 2**24


def stack_sample(image, plane_indices: list[tuple[int, ...]]) -> np.ndarray:
    """Evenly spaced planes of ``image`` (all when few enough), stacked, for fitting one scaling."""
    plane_pixels = int(np.prod(image.shape[-2:]))
    count = max(1, min(len(plane_indices), _STACK_SAMPLE_PIXELS // max(plane_pixels, 1)))
    chosen = [plane_indices[i] for i in np.linspace(0, len(plane_indices) - 1, count).round().astype(int)]
    return np.stack([np.asarray(image[index] if index else image) for index in chosen])
