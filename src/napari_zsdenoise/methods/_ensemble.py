"""Running ensembles of blind-spot predictions, and their blend with the noisy plane.

MPI (and INS-BSN here) average the network's predictions at the pixels hidden from it
in each iteration. A prediction made while a pixel is hidden never saw that pixel's
noisy value, so the noisy value still holds independent information about the clean
one; the best linear combination of the two weighs each by the inverse of its error.
With ``y`` the noisy plane, ``mu`` the ensemble, ``s2`` the noise variance and ``e`` the
ensemble's error variance, ``mu + k (y - mu)`` with ``k = e / (e + s2)`` has the least
expected squared error, and since ``E[(y - mu)^2] = e + s2`` for a blind-spot ``mu``,
``k = 1 - s2 / E[(y - mu)^2]``: only the noise variance has to be estimated.

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
# Above this correlation between neighbouring residuals the noise is taken to be
# spatially correlated: the variance estimate below then misses much of the noise (on
# FMD WideField crops, residual correlation 0.45, blending cost 6 dB), so nothing is
# blended. Independent noise measured 0.08-0.17 on FMD confocal/two-photon crops.
MAX_RESIDUAL_CORRELATION = 0.3


def masked_ema_update(ema: torch.Tensor, prediction: torch.Tensor, hidden: torch.Tensor, beta: float) -> torch.Tensor:
    """MPI's Eq. 8: blend ``prediction`` into ``ema`` where ``hidden`` is True, keep ``ema`` elsewhere."""
    return torch.where(hidden, beta * ema + (1.0 - beta) * prediction, ema)


def estimate_noise_variance(plane: np.ndarray) -> float:
    """Variance of additive white noise in a 2-D ``plane``, in the plane's units squared.

    Immerkaer's estimator (CVIU 1996): the mean absolute response to the difference of
    two Laplacians, which cancels locally linear signal. Noise correlated between
    neighbouring pixels is partly cancelled too, so its variance is underestimated.
    """
    values = torch.from_numpy(np.ascontiguousarray(plane, dtype=np.float64))[None, None]
    if values.shape[-1] < 3 or values.shape[-2] < 3:
        raise ValueError(f"noise estimation needs a plane of at least 3x3 pixels, got {tuple(plane.shape)}")
    kernel = torch.tensor([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]], dtype=torch.float64)
    response = F.conv2d(values, kernel[None, None])
    return float((np.sqrt(np.pi / 2.0) * response.abs().mean() / 6.0) ** 2)


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
    """Share ``k`` of the noisy plane in ``estimate + k (noisy - estimate)``, in [0, 1].

    0 when the residual is spatially correlated (see ``MAX_RESIDUAL_CORRELATION``).
    """
    residual = float(torch.mean((noisy - estimate) ** 2))
    if residual <= 0.0 or residual_correlation(noisy, estimate) > MAX_RESIDUAL_CORRELATION:
        return 0.0
    return float(min(max(1.0 - noise_variance / residual, 0.0), 1.0))


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

    def update(self, prediction: torch.Tensor, hidden: torch.Tensor) -> None:
        """Fold ``prediction`` in at the ``hidden`` pixels."""
        self.average = masked_ema_update(self.average, prediction, hidden, self.beta)
        if self.weight is not None:
            self.weight = masked_ema_update(self.weight, torch.ones_like(prediction), hidden, self.beta)

    def mean(self) -> torch.Tensor:
        """The ensemble estimate."""
        if self.weight is None:
            return self.average
        seen = self.weight > 0
        return torch.where(seen, self.average / torch.where(seen, self.weight, torch.ones_like(self.weight)), self.noisy)

    def blended(self, noise_variance: float) -> tuple[torch.Tensor, float]:
        """The estimate combined with the noisy plane by :func:`blend_weight`, and that weight."""
        estimate = self.mean()
        weight = blend_weight(self.noisy, estimate, noise_variance)
        return estimate + weight * (self.noisy - estimate), weight
