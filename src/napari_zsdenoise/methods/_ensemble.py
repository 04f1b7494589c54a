"""Running ensembles of blind-spot predictions, and their blend with the noisy plane.

MPI (and INS-BSN here) average the network's predictions at the pixels hidden from it
in each iteration. A prediction made while a pixel is hidden never saw that pixel's
noisy value, so the noisy value still holds independent information about the clean
one; the best linear combination of the two weighs each by the inverse of its error.
With ``y`` the noisy plane, ``mu`` the ensemble, ``s2`` the noise variance and ``e`` the
ensemble's error variance, ``mu + k (y - mu)`` with ``k = e / (e + s2)`` has the least
expected squared error, and since ``E[(y - mu)^2] = e + s2`` for a blind-spot ``mu``,
``k = 1 - s2 / E[(y - mu)^2]``: only the noise variance has to be estimated. Both are
taken per intensity band, because fluorescence noise grows with the signal.

The authors' masked EMA starts at the noisy plane, which blends the noisy values in by
``beta**n`` (n: times the pixel was hidden): a weight set by the iteration count rather
than by the errors. The ``zero``-start ensemble divides out that start-up weight instead,
so the blend weight is the only place the noisy values enter.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

ENSEMBLE_STARTS = ("noisy", "zero")
# A rectangle of a plane: (rows, columns).
Region = tuple[slice, slice]
# Above this correlation between neighbouring residuals the noise is taken to be
# spatially correlated: the variance estimate below then misses much of the noise, so
# nothing is blended (docs/design-notes.md, "Correlated noise").
MAX_RESIDUAL_CORRELATION = 0.3


def masked_ema_update(ema: torch.Tensor, prediction: torch.Tensor, hidden: torch.Tensor, beta: float) -> torch.Tensor:
    """MPI's Eq. 8: blend ``prediction`` into ``ema`` where ``hidden`` is True, keep ``ema`` elsewhere."""
    return torch.where(hidden, beta * ema + (1.0 - beta) * prediction, ema)


_LAPLACIAN_DIFFERENCE = ((1.0, -2.0, 1.0), (-2.0, 4.0, -2.0), (1.0, -2.0, 1.0))
# Immerkaer: for white noise of standard deviation s the mean absolute response is s * 6 / sqrt(pi / 2).
_RESPONSE_TO_SIGMA = float(np.sqrt(np.pi / 2.0) / 6.0)


def noise_response(plane: torch.Tensor) -> torch.Tensor:
    """Absolute response of ``plane`` (..., H, W) to the difference of two Laplacians.

    The kernel cancels locally linear signal, so what remains is mostly noise; the
    border is padded by replication, so the map has the plane's shape.
    """
    if plane.shape[-1] < 3 or plane.shape[-2] < 3:
        raise ValueError(f"noise estimation needs a plane of at least 3x3 pixels, got {tuple(plane.shape[-2:])}")
    height, width = plane.shape[-2:]
    values = plane.reshape(-1, 1, height, width).to(torch.float64)
    kernel = torch.tensor(_LAPLACIAN_DIFFERENCE, dtype=torch.float64, device=plane.device)[None, None]
    response = F.conv2d(F.pad(values, (1, 1, 1, 1), mode="replicate"), kernel).abs()
    return response.reshape(plane.shape).to(plane.dtype)


def estimate_noise_variance(plane: np.ndarray) -> float:
    """Variance of additive white noise in a 2-D ``plane``, in the plane's units squared.

    Immerkaer's estimator (CVIU 1996) on the interior pixels. Noise correlated between
    neighbouring pixels is partly cancelled by the kernel, so its variance is
    underestimated; so is the mean variance of signal-dependent noise (the estimator
    averages standard deviations), which is why :func:`blend_weights` applies it per
    intensity band.
    """
    response = noise_response(torch.from_numpy(np.ascontiguousarray(plane, dtype=np.float64)))
    return float((_RESPONSE_TO_SIGMA * response[1:-1, 1:-1].mean()) ** 2)


def residual_correlation(noisy: torch.Tensor, estimate: torch.Tensor) -> float:
    """Mean correlation of ``noisy - estimate`` between horizontal and vertical neighbours."""
    residual = (noisy - estimate).to(torch.float64)
    residual = residual - residual.mean()

    def correlation(first: torch.Tensor, second: torch.Tensor) -> float:
        denominator = float(torch.sqrt((first * first).mean() * (second * second).mean()))
        return float((first * second).mean()) / denominator if denominator > 0 else 0.0

    horizontal = correlation(residual[..., :, 1:], residual[..., :, :-1])
    vertical = correlation(residual[..., 1:, :], residual[..., :-1, :])
    return 0.5 * (horizontal + vertical)


def blend_weight(noisy: torch.Tensor, estimate: torch.Tensor, noise_variance: float) -> float:
    """Share ``k = 1 - s2 / E[(noisy - estimate)^2]`` of the noisy values, clipped to [0, 1]."""
    residual = float(torch.mean((noisy - estimate) ** 2))
    if residual <= 0.0:
        return 0.0
    return float(min(max(1.0 - noise_variance / residual, 0.0), 1.0))


def intensity_bands(estimate: torch.Tensor, bands: int) -> torch.Tensor:
    """Index (0 .. ``bands`` - 1) of each pixel's band among ``bands`` equally populated bands of ``estimate``."""
    ordered = torch.sort(estimate.flatten()).values
    positions = [round((ordered.numel() - 1) * i / bands) for i in range(1, bands)]
    return torch.bucketize(estimate, ordered[positions].contiguous())


def band_blend_weight(noisy: torch.Tensor, estimate: torch.Tensor, response: torch.Tensor,
                      members: torch.Tensor) -> float:
    """:func:`blend_weight` of the ``members`` pixels, with the noise variance from their ``response``."""
    variance = float((_RESPONSE_TO_SIGMA * response[members].mean()) ** 2)
    return blend_weight(noisy[members], estimate[members], variance)


def blend_weights(noisy: torch.Tensor, estimate: torch.Tensor, response: torch.Tensor, bands: int = 8,
                  pixel_independent: bool = False) -> torch.Tensor:
    """Per-pixel share of the noisy values, from the noise and residual of its intensity band.

    Fluorescence noise grows with the signal (photon counts), so the pixels are split
    into ``bands`` equally populated bands of ``estimate`` and each gets its own noise
    variance (from ``response``, see :func:`noise_response`) and weight. All zero when
    the residual is spatially correlated (see ``MAX_RESIDUAL_CORRELATION``), unless the
    noise is known to be ``pixel_independent``: the residual of a young, over-smooth
    ensemble then correlates because it holds signal, which is when blending helps most.
    """
    weights = torch.zeros_like(estimate)
    if not pixel_independent and residual_correlation(noisy, estimate) > MAX_RESIDUAL_CORRELATION:
        return weights
    band = intensity_bands(estimate, bands)
    for index in range(bands):
        members = band == index
        if bool(members.any()):
            weights[members] = band_blend_weight(noisy, estimate, response, members)
    return weights


def tile_grid(shape: tuple[int, int], tile: int) -> tuple[tuple[int, int], list[Region]]:
    """The (rows, columns) of a grid of tiles of about ``tile`` pixels a side over ``shape``, and the
    tiles, row by row; a side shorter than one and a half tiles is one tile."""
    counts = tuple(max(1, round(length / tile)) for length in shape)
    edges = [[round(length * i / count) for i in range(count + 1)] for length, count in zip(shape, counts)]
    regions = [(slice(top, bottom), slice(left, right))
               for top, bottom in zip(edges[0], edges[0][1:]) for left, right in zip(edges[1], edges[1][1:])]
    return counts, regions


# A band with fewer pixels in a tile takes the band's weight over the whole plane: a
# ratio of two means over so few pixels is too noisy to trust.
MIN_TILE_BAND_PIXELS = 512
# Side of the blocks whose noise is judged one by one (pixel-independent or not) for the
# tiled blend: much smaller than a tile, so that a tile over fields of both kinds blends
# only the right ones, and still large enough for the binning test, which told every
# block of 48² and more of the FMD test images as it tells the whole image.
NOISE_BLOCK = 64


def blendable_pixels(noisy: torch.Tensor, estimate: torch.Tensor, independent_blocks: list[bool]) -> torch.Tensor:
    """Pixels that may take some of their noisy value: all but those of the blocks (of
    :data:`NOISE_BLOCK`, :func:`tile_grid`'s order) not known to be pixel-independent whose
    residual is spatially correlated (see ``MAX_RESIDUAL_CORRELATION``)."""
    _, blocks = tile_grid(tuple(estimate.shape[-2:]), NOISE_BLOCK)
    if len(blocks) != len(independent_blocks):
        raise ValueError(f"{len(independent_blocks)} block flags for a plane of {len(blocks)} blocks")
    blendable = torch.ones_like(estimate, dtype=torch.bool)
    for independent, (rows, columns) in zip(independent_blocks, blocks):
        if not independent and residual_correlation(noisy[..., rows, columns],
                                                    estimate[..., rows, columns]) > MAX_RESIDUAL_CORRELATION:
            blendable[..., rows, columns] = False
    return blendable


def tiled_blend_weights(noisy: torch.Tensor, estimate: torch.Tensor, response: torch.Tensor, tile: int,
                        independent_blocks: list[bool], bands: int = 8) -> torch.Tensor:
    """:func:`blend_weights` estimated tile by tile and interpolated between the tiles' centres.

    The weight of a band depends on the noise and on how good the ensemble is, and both change
    across a large plane (illumination, structure, parts trained longer than others, fields of
    different noise side by side), which one weight per band for the whole plane averages away.
    The bands are the whole plane's, so that the weights of neighbouring tiles describe the same
    intensities and can be interpolated (bilinearly, no seams). Spatially correlated noise is
    judged per block (``independent_blocks``, see :func:`blendable_pixels`): its pixels blend
    nothing and take no part in the tiles' weights.
    """
    counts, regions = tile_grid(tuple(estimate.shape[-2:]), tile)
    blendable = blendable_pixels(noisy, estimate, independent_blocks)
    band = intensity_bands(estimate, bands)
    plane_weights = []
    for index in range(bands):
        members = (band == index) & blendable
        plane_weights.append(band_blend_weight(noisy, estimate, response, members) if bool(members.any()) else 0.0)
    grid = torch.zeros(bands, len(regions), dtype=torch.float32)
    for number, (rows, columns) in enumerate(regions):
        part = (noisy[..., rows, columns], estimate[..., rows, columns], response[..., rows, columns])
        tile_band, tile_blendable = band[..., rows, columns], blendable[..., rows, columns]
        for index in range(bands):
            members = (tile_band == index) & tile_blendable
            grid[index, number] = (band_blend_weight(*part, members) if int(members.sum()) >= MIN_TILE_BAND_PIXELS
                                   else plane_weights[index])
    maps = F.interpolate(grid.reshape(1, bands, *counts), size=tuple(estimate.shape[-2:]), mode="bilinear",
                         align_corners=False)[0].to(device=estimate.device, dtype=estimate.dtype)
    leading = band.reshape(-1, *band.shape[-2:])
    weights = maps.expand(leading.shape[0], *maps.shape).gather(1, leading[:, None]).reshape(estimate.shape)
    return torch.where(blendable, weights, torch.zeros_like(weights))


class MaskedEnsemble:
    """Exponential moving average of predictions at hidden pixels (per pixel).

    Parameters
    ----------
    noisy : torch.Tensor
        The noisy plane(s) being denoised, in normalised units.
    beta : float
        Weight of the running average at each update, in [0, 1).
    start : {"noisy", "zero"}
        ``"noisy"``: start at the noisy plane (the MPI authors' rule). ``"zero"``: start
        empty and divide by the accumulated weight, so the estimate is a weighted mean of
        predictions only (pixels never hidden yet show their noisy value).
    """

    def __init__(self, noisy: torch.Tensor, beta: float, start: str = "noisy") -> None:
        if start not in ENSEMBLE_STARTS:
            raise ValueError(f"start must be one of {ENSEMBLE_STARTS}, not {start!r}")
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"beta must be in [0, 1); got {beta}")
        self.noisy = noisy
        self.beta = beta
        self.start = start
        self.average = noisy.clone() if start == "noisy" else torch.zeros_like(noisy)
        self.weight = None if start == "noisy" else torch.zeros_like(noisy)

    def update(self, prediction: torch.Tensor, hidden: torch.Tensor, region: Region | None = None) -> None:
        """Fold ``prediction`` in at the ``hidden`` pixels, of the whole plane or of ``region`` (rows, columns)."""
        if region is None:
            self.average = masked_ema_update(self.average, prediction, hidden, self.beta)
            if self.weight is not None:
                self.weight = masked_ema_update(self.weight, torch.ones_like(prediction), hidden, self.beta)
            return
        rows, columns = region
        self.average[..., rows, columns] = masked_ema_update(
            self.average[..., rows, columns], prediction, hidden, self.beta)
        if self.weight is not None:
            self.weight[..., rows, columns] = masked_ema_update(
                self.weight[..., rows, columns], torch.ones_like(prediction), hidden, self.beta)

    def mean(self) -> torch.Tensor:
        """The ensemble estimate."""
        if self.weight is None:
            return self.average
        seen = self.weight > 0
        return torch.where(seen, self.average / torch.where(seen, self.weight, torch.ones_like(self.weight)), self.noisy)

    def blended(self, response: torch.Tensor, estimate: torch.Tensor | None = None, *,
                pixel_independent: bool | list[bool] = False, tile: int = 0) -> tuple[torch.Tensor, float]:
        """The estimate combined with the noisy plane, and the mean weight.

        ``response`` is :func:`noise_response` of the noisy plane; ``estimate`` defaults
        to :meth:`mean` (pass an earlier snapshot of it to blend that instead). ``tile`` 0:
        one set of weights for the whole plane (:func:`blend_weights`; ``pixel_independent``
        a flag for the plane); otherwise :func:`tiled_blend_weights` (``pixel_independent``
        a flag per block of :data:`NOISE_BLOCK`).
        """
        estimate = self.mean() if estimate is None else estimate
        if tile:
            weights = tiled_blend_weights(self.noisy, estimate, response, tile, list(pixel_independent))
        else:
            weights = blend_weights(self.noisy, estimate, response, pixel_independent=bool(pixel_independent))
        return estimate + weights * (self.noisy - estimate), float(weights.mean())
