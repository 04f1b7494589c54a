"""The noise MID adds to clean patches: Gaussian in the first round, then a bank of harvested residuals.

The bank of round k+1 holds residuals ``r = y - D_k(M * y)`` of the user's noisy planes
``y`` under random masks ``M`` (the paper's Eq. 4): predictions made from masked inputs,
because an unmasked prediction has seen the noise it should leave in the residual.

Fluorescence noise is signal dependent (Poisson photon noise plus Gaussian read noise),
so a residual cut from a bright structure is too strong for a dim clean patch. With
``signal_dependent`` the bank fits ``var(r | s) = a*s + b`` against the masked prediction
``s``, keeps residual patches divided by ``sqrt(a*s + b)`` (unit variance, spatial
correlation kept) and multiplies them by ``sqrt(a*x + b)`` of the clean patch ``x`` they
are added to. Everything is in normalised units (see ``normalization.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

#: Intensity bins, equally populated, over which the residual variance is measured.
VARIANCE_BINS = 16
# Pixels of each residual map used for the variance fit: enough per bin, bounded memory.
FIT_PIXELS_PER_MAP = 2**16
# The model variance never drops below this share of the mean residual variance, so that
# whitening a residual where the fit reaches zero (dark pixels, pure photon noise) stays finite.
VARIANCE_FLOOR_SHARE = 1e-3
# Median absolute deviation of a standard normal variable.
_MAD_TO_SIGMA = 1.4826


def robust_noise_sigma(planes: Iterable[np.ndarray]) -> float:
    """Standard deviation of the noise in ``planes``: the median over planes of the MAD of a high-pass.

    The high-pass is the difference of horizontal neighbours divided by sqrt(2), which
    keeps the variance of pixel-independent noise and cancels smooth signal; the median
    absolute deviation ignores the few large differences at edges.
    """
    sigmas = []
    for plane in planes:
        plane = np.asarray(plane, dtype=np.float64)
        if plane.shape[-1] < 2:
            continue
        difference = np.diff(plane, axis=-1) / math.sqrt(2.0)
        sigmas.append(_MAD_TO_SIGMA * float(np.median(np.abs(difference - np.median(difference)))))
    if not sigmas:
        raise ValueError("cannot estimate the noise of planes narrower than 2 pixels")
    return float(np.median(sigmas))


@dataclass(frozen=True)
class NoiseModel:
    """Noise variance ``max(a*s + b, floor)`` at clean intensity ``s`` (normalised units)."""

    a: float
    b: float
    floor: float

    def variance(self, signal: Any) -> Any:
        """The variance at ``signal`` (numpy array or torch tensor)."""
        if isinstance(signal, torch.Tensor):
            return torch.clamp(self.a * signal + self.b, min=self.floor)
        return np.maximum(self.a * np.asarray(signal, dtype=np.float64) + self.b, self.floor)

    def to_dict(self) -> dict[str, float]:
        return {"a": self.a, "b": self.b, "floor": self.floor}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> NoiseModel:
        return cls(float(values["a"]), float(values["b"]), float(values["floor"]))


def fit_noise_model(signal: np.ndarray, residual: np.ndarray, *, signal_dependent: bool = True,
                    bins: int = VARIANCE_BINS) -> NoiseModel:
    """Fit ``var(residual | signal) = a*signal + b`` with ``a, b >= 0``.

    The pixels are split into ``bins`` equally populated intensity bins; each bin gives its
    mean signal and the variance of its residuals, and ``a, b`` minimise the squared
    misfit of those variances (every bin has the same weight, since each holds the same
    number of pixels). Without ``signal_dependent``: ``a = 0`` and ``b`` the overall variance.
    """
    from scipy.optimize import nnls

    signal = np.asarray(signal, dtype=np.float64).ravel()
    residual = np.asarray(residual, dtype=np.float64).ravel()
    if signal.shape != residual.shape or signal.size < 2:
        raise ValueError("need matching signal and residual samples, at least two")
    overall = float(np.var(residual))
    floor = max(VARIANCE_FLOOR_SHARE * overall, 1e-12)
    if not signal_dependent:
        return NoiseModel(0.0, max(overall, floor), floor)
    order = np.argsort(signal, kind="stable")
    groups = [group for group in np.array_split(order, min(bins, signal.size // 2)) if group.size >= 2]
    means = np.array([signal[group].mean() for group in groups])
    variances = np.array([residual[group].var(ddof=1) for group in groups])
    (a, b), _ = nnls(np.stack([means, np.ones_like(means)], axis=1), variances)
    return NoiseModel(float(a), float(b), floor)


@dataclass(frozen=True)
class Harvest:
    """One masked prediction of a noisy plane and its residual (all in normalised units)."""

    plane: int
    mask: int
    keep: np.ndarray  # True where the network saw the pixel
    prediction: np.ndarray  # D(M * y)
    residual: np.ndarray  # y - D(M * y)


Predict = Callable[[np.ndarray, np.ndarray], np.ndarray]


def harvest_residuals(predict: Predict, planes: Sequence[np.ndarray], *, masks_per_plane: int, mask_ratio: float,
                      rng: np.random.Generator) -> Iterator[Harvest]:
    """The residuals ``y - predict(y, keep)`` of every plane under ``masks_per_plane`` random masks.

    ``predict(plane, keep)`` must see only ``plane * keep`` (and the mask): it is the
    denoiser applied to the masked plane, as in the paper's Eq. 4.
    """
    for index, plane in enumerate(planes):
        plane = np.asarray(plane, dtype=np.float32)
        for mask in range(masks_per_plane):
            keep = rng.random(plane.shape) >= mask_ratio
            prediction = np.asarray(predict(plane, keep), dtype=np.float32)
            yield Harvest(index, mask, keep, prediction, plane - prediction)


class GaussianNoise:
    """White Gaussian noise of one standard deviation: the first round's noise (the paper's N_0)."""

    def __init__(self, sigma: float) -> None:
        if not sigma >= 0:
            raise ValueError(f"sigma must be >= 0; got {sigma}")
        self.sigma = float(sigma)
        self.model = NoiseModel(0.0, self.sigma**2, 0.0)

    def sample(self, clean: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Noise for the (CPU) batch ``clean``."""
        return self.sigma * torch.randn(clean.shape, generator=generator, dtype=clean.dtype)

    def unit_draws(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        """Independent unit-variance draws, to be scaled by the model's standard deviation."""
        return rng.standard_normal(shape)

    def describe(self) -> dict[str, Any]:
        return {"kind": "gaussian", "sigma": self.sigma, **self.model.to_dict(), "signal_dependent": False}


class NoiseBank:
    """Whitened residual patches and the variance model that rescales them onto clean patches.

    Attributes
    ----------
    patches : torch.Tensor
        (N, P, P) float32 on the CPU: residual patches divided by the model's standard
        deviation at their masked prediction.
    model : NoiseModel
    sources : torch.Tensor
        (N, 4) int64: plane, mask, top and left of each patch.
    signal_dependent : bool
    """

    def __init__(self, patches: torch.Tensor, model: NoiseModel, sources: torch.Tensor, signal_dependent: bool) -> None:
        if patches.ndim != 3 or len(patches) == 0 or len(sources) != len(patches):
            raise ValueError("a noise bank needs (N, P, P) patches, N >= 1, with one source row each")
        self.patches = patches.to(torch.float32).contiguous()
        self.model = model
        self.sources = sources.to(torch.int64)
        self.signal_dependent = bool(signal_dependent)

    def __len__(self) -> int:
        return len(self.patches)

    @classmethod
    def from_harvests(cls, harvests: Iterable[Harvest], *, maps: int, patch_size: int, count: int,
                      signal_dependent: bool, rng: np.random.Generator) -> NoiseBank:
        """Cut about ``count`` patches, evenly over the ``maps`` residual maps, and fit the variance model.

        Each whitened patch is shifted to zero mean: what a residual has on average over a
        patch is the masked prediction's error, not noise.

        The maps are read once: each gives its share of patches (residual and prediction)
        and a sample of pixels for the fit, so the bank never holds a whole stack.
        """
        per_map = max(1, math.ceil(count / max(maps, 1)))
        residual_patches, signal_patches, sources = [], [], []
        fit_signal, fit_residual = [], []
        for harvest in harvests:
            height, width = harvest.residual.shape
            if min(height, width) < patch_size:
                raise ValueError(f"noisy plane {harvest.plane} ({height}x{width}) is smaller than the "
                                 f"{patch_size}-pixel noise patches")
            for _ in range(per_map):
                top, left = int(rng.integers(0, height - patch_size + 1)), int(rng.integers(0, width - patch_size + 1))
                window = (slice(top, top + patch_size), slice(left, left + patch_size))
                residual_patches.append(harvest.residual[window])
                signal_patches.append(harvest.prediction[window])
                sources.append((harvest.plane, harvest.mask, top, left))
            chosen = rng.choice(harvest.residual.size, size=min(FIT_PIXELS_PER_MAP, harvest.residual.size),
                                replace=False)
            fit_signal.append(harvest.prediction.ravel()[chosen])
            fit_residual.append(harvest.residual.ravel()[chosen])
        if not residual_patches:
            raise ValueError("no residuals to build a noise bank from")
        model = fit_noise_model(np.concatenate(fit_signal), np.concatenate(fit_residual),
                                signal_dependent=signal_dependent)
        kept = np.sort(rng.permutation(len(residual_patches))[:count])
        residuals = np.stack([residual_patches[i] for i in kept]).astype(np.float64)
        signals = np.stack([signal_patches[i] for i in kept])
        whitened = residuals / np.sqrt(model.variance(signals))
        # Noise has zero mean, so a patch's mean residual is the prediction's error there. Kept, it
        # would teach the next network the opposite offset, which the next bank then doubles.
        whitened -= whitened.mean(axis=(1, 2), keepdims=True)
        return cls(torch.from_numpy(whitened.astype(np.float32)), model,
                   torch.tensor([sources[i] for i in kept], dtype=torch.int64), signal_dependent)

    def sample(self, clean: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Noise for the (CPU) batch ``clean`` (B, 1, P, P): a random bank patch each, scaled to its intensities."""
        batch = clean.shape[0]
        if tuple(clean.shape[-2:]) != tuple(self.patches.shape[-2:]):
            raise ValueError(f"clean patches of {tuple(clean.shape[-2:])} do not match the bank's "
                             f"{tuple(self.patches.shape[-2:])}")
        chosen = torch.randint(0, len(self.patches), (batch,), generator=generator)
        whitened = self.patches[chosen].unsqueeze(1)
        return whitened * torch.sqrt(self.model.variance(clean))

    def unit_draws(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        """Values of whitened bank pixels drawn at random (their spatial arrangement lost)."""
        values = self.patches.reshape(-1).numpy()
        return values[rng.integers(0, values.size, size=shape)].astype(np.float64)

    def describe(self) -> dict[str, Any]:
        return {"kind": "bank", "patches": len(self), "patch_size": int(self.patches.shape[-1]),
                **self.model.to_dict(), "signal_dependent": self.signal_dependent}

    def state(self) -> dict[str, Any]:
        """Plain containers and tensors, for a resumable training state."""
        return {"patches": self.patches, "model": self.model.to_dict(), "sources": self.sources,
                "signal_dependent": self.signal_dependent}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> NoiseBank:
        return cls(state["patches"], NoiseModel.from_dict(state["model"]), state["sources"], state["signal_dependent"])
