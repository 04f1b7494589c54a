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
    ordered = torch.sort(estimate.flatten()).values
    positions = [round((ordered.numel() - 1) * i / bands) for i in range(1, bands)]
    band = torch.bucketize(estimate, ordered[positions].contiguous())
    for index in range(bands):
        members = band == index
        if not bool(members.any()):
            continue
        variance = float((_RESPONSE_TO_SIGMA * response[members].mean()) ** 2)
        weights[members] = blend_weight(noisy[members], estimate[members], variance)
    return weights


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
                pixel_independent: bool = False) -> tuple[torch.Tensor, float]:
        """The estimate combined with the noisy plane by :func:`blend_weights`, and the mean weight.

        ``response`` is :func:`noise_response` of the noisy plane; ``estimate`` defaults
        to :meth:`mean` (pass an earlier snapshot of it to blend that instead);
        ``pixel_independent``: see :func:`blend_weights`.
        """
        estimate = self.mean() if estimate is None else estimate
        weights = blend_weights(self.noisy, estimate, response, pixel_independent=pixel_independent)
        return estimate + weights * (self.noisy - estimate), float(weights.mean())
