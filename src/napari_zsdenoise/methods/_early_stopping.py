"""Early stopping of blind-spot ensembles on held-out pixels (MPI and INS-BSN).

A random few pixels never enter any loss, so the network never learns their noise and
the ensemble's error against their noisy values tracks its error against the clean
image (plus the constant noise variance). That error is checked every few iterations;
the result is the ensemble at the best check, and the run ends once ``patience``
iterations pass without a better one.

When the noise is spatially correlated the network predicts part of a held-out pixel's
noise from its neighbours, and that error keeps falling while the result gets worse
(FMD widefield). The score is then the residual's neighbour correlation, with its sign
flipped: it falls as the ensemble starts to reproduce the noise. The noise counts as
correlated when that correlation stays above ``MAX_RESIDUAL_CORRELATION`` for the first
``CORRELATION_CHECKS`` checks; until then the held-out error decides, and both bests
are kept. A method whose young ensemble is still far from the signal (its residual
then correlates because of signal, not noise) decides up front instead, from the noisy
plane alone (:func:`looks_spatially_correlated`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from napari_zsdenoise.methods._ensemble import (
    MAX_RESIDUAL_CORRELATION,
    MaskedEnsemble,
    estimate_noise_variance,
    residual_correlation,
)

# FMD 256² crops, MPI: widefield from our weights 0.445, 0.443, 0.441, 0.441 and from
# random initialisation 0.509, 0.480, 0.467, 0.461 (its best iteration was the first
# check); Confocal_BPAE_B_1 from random initialisation 0.411, 0.319, 0.270 (signal the
# young ensemble had not captured yet, not noise: its best iteration was 575).
CORRELATION_CHECKS = 4
# Offset of the held-out set's seed from the run's seed: its own random stream, so the
# masks drawn during filling are the same with or without early stopping.
HOLDOUT_SEED_OFFSET = 7919


# Ratio of the high-frequency noise level after and before 2x2 binning (see
# binning_noise_ratio). Pixel-independent noise: 0.5 in theory. FMD test set, all 48 raw
# images, full size and 256² centre crops: confocal and two-photon 0.53-0.73, widefield
# (neighbour correlation of raw - gt 0.57-0.64) 1.53-1.63.
MAX_PIXEL_INDEPENDENT_BINNING_RATIO = 1.0


def binning_noise_ratio(plane: np.ndarray | torch.Tensor) -> float:
    """Noise standard deviation of the 2x2-binned ``plane`` (2-D) over that of the plane.

    Both from Immerkaer's estimator, which sees only high spatial frequencies. Binning
    pixel-independent noise halves its standard deviation (ratio 0.5, a little more
    where signal leaks in). Noise correlated between neighbours is largely cancelled by
    the estimator's kernel at full resolution but much less after binning, so the ratio
    exceeds 1.
    """
    values = torch.as_tensor(plane).detach().to(device="cpu", dtype=torch.float64)
    height, width = (values.shape[-2] // 2) * 2, (values.shape[-1] // 2) * 2
    binned = F.avg_pool2d(values.reshape(1, 1, *values.shape[-2:])[..., :height, :width], 2)[0, 0]
    full, coarse = estimate_noise_variance(values.reshape(values.shape[-2:]).numpy()), estimate_noise_variance(binned.numpy())
    return float(np.sqrt(coarse / full)) if full > 0 else 0.0


def looks_spatially_correlated(plane: np.ndarray | torch.Tensor) -> bool:
    """Whether the noise of a 2-D ``plane`` is spatially correlated (camera-like, FMD widefield)."""
    return binning_noise_ratio(plane) > MAX_PIXEL_INDEPENDENT_BINNING_RATIO


def is_correlated_noise(correlations: list[float]) -> bool | None:
    """Whether the residual correlations of the first checks show spatially correlated noise.

    None while fewer than ``CORRELATION_CHECKS`` checks are in and none has ruled it out.
    """
    if any(value <= MAX_RESIDUAL_CORRELATION for value in correlations[:CORRELATION_CHECKS]):
        return False
    return True if len(correlations) >= CORRELATION_CHECKS else None


class HoldoutEarlyStopping:
    """Held-out pixels of one plane (batch) and the running choice of the best ensemble.

    Parameters
    ----------
    noisy : torch.Tensor
        The noisy plane(s) the ensemble estimates, in normalised units.
    holdout_fraction : float
        Probability that a pixel is held out, in (0, 0.5).
    patience : int
        Iterations without a better score before :attr:`finished` turns True.
    validation_every : int
        Iterations between checks (see :meth:`after_step`).
    seed : int
        The run's seed; the held-out set is drawn on the CPU from its own generator.
    correlated_noise : bool or None
        Whether the noise is spatially correlated, decided up front (for example by
        :func:`looks_spatially_correlated`); None: decided from the residual
        correlation of the first checks (:func:`is_correlated_noise`).
    """

    def __init__(self, noisy: torch.Tensor, *, holdout_fraction: float, patience: int, validation_every: int,
                 seed: int, correlated_noise: bool | None = None) -> None:
        self.noisy = noisy
        self.patience = patience
        self.validation_every = validation_every
        generator = torch.Generator(device="cpu")
        generator.manual_seed(seed + HOLDOUT_SEED_OFFSET)
        holdout = torch.rand(noisy.shape, generator=generator) < holdout_fraction
        # A plane too small to hold any pixel out is simply not stopped early.
        self.holdout: torch.Tensor | None = holdout.to(noisy.device) if bool(holdout.any()) else None
        self.finished = False
        self.best_iteration: int | None = None
        self.correlated_noise: bool | None = correlated_noise
        # (iteration, held-out mean squared error, residual neighbour correlation)
        self.validation_trace: list[tuple[int, float, float]] = []
        self._best_estimate: torch.Tensor | None = None
        # Per stopping signal: [best score, its iteration, the ensemble then].
        self._bests: dict[str, list[Any]] = {"error": [float("inf"), None, None],
                                             "correlation": [float("inf"), None, None]}

    @property
    def active(self) -> bool:
        return self.holdout is not None

    def trainable(self, pixels: torch.Tensor) -> torch.Tensor:
        """``pixels`` (a boolean mask) without the held-out ones."""
        return pixels if self.holdout is None else pixels & ~self.holdout

    def loss_weight(self) -> torch.Tensor | None:
        """1 where a pixel may enter a loss, 0 where it is held out (None: no holdout)."""
        return None if self.holdout is None else (~self.holdout).to(self.noisy.dtype)

    def after_step(self, iteration: int, ensemble: MaskedEnsemble) -> None:
        """Check the ensemble when ``iteration`` (1-based, just finished) is due."""
        if self.holdout is not None and iteration % self.validation_every == 0:
            self.check(iteration, ensemble)

    def check(self, iteration: int, ensemble: MaskedEnsemble) -> None:
        """Score the ensemble; keep it if best, finish if no better one came for ``patience``."""
        if self.holdout is None:
            return
        estimate = ensemble.mean()
        scored = self.holdout & (ensemble.weight > 0) if ensemble.weight is not None else self.holdout
        if not bool(scored.any()):
            return
        error = float(((estimate - self.noisy)[scored] ** 2).mean())
        correlation = residual_correlation(self.noisy, estimate)
        self.validation_trace.append((iteration, error, correlation))
        snapshot = None
        for signal, score in (("error", error), ("correlation", -correlation)):
            if score < self._bests[signal][0]:
                snapshot = estimate.clone() if snapshot is None else snapshot
                self._bests[signal] = [score, iteration, snapshot]
        if self.correlated_noise is None:
            self.correlated_noise = is_correlated_noise([row[2] for row in self.validation_trace])
        _, self.best_iteration, self._best_estimate = self._bests["correlation" if self.correlated_noise else "error"]
        if iteration - self.best_iteration >= self.patience:
            self.finished = True

    def best_estimate(self, iteration: int, ensemble: MaskedEnsemble) -> torch.Tensor | None:
        """The ensemble at the best check, checking first if the run ended between checks.

        None when no check could score anything (the caller then uses the current ensemble).
        """
        last_check = self.validation_trace[-1][0] if self.validation_trace else 0
        if self.holdout is not None and last_check < iteration:
            self.check(iteration, ensemble)
        return self._best_estimate

    def facts(self) -> dict[str, Any]:
        """Per-plane provenance: best iteration, whether the holdout ended the run, the signal used."""
        signal = (None if self.correlated_noise is None else
                  "residual correlation (spatially correlated noise)" if self.correlated_noise else "held-out error")
        return {"best_iteration": self.best_iteration, "stopped_by_holdout": self.finished, "stopping_signal": signal}


class EnsembleOutputMethod:
    """Step bookkeeping and output rule of the methods whose estimate is a masked ensemble.

    MPI and INS-BSN share them: the preview is the current ensemble; the result is the
    ensemble at the best held-out check when the run is stopped early, else the current
    one. A subclass sets ``early_stopping`` and ``_ensemble`` in ``prepare``, calls
    :meth:`_count_step` at the end of each ``step`` and implements ``_to_plane``.
    """

    early_stopping: HoldoutEarlyStopping | None = None
    iterations_done: int = 0
    _ensemble: MaskedEnsemble

    def _to_plane(self, estimate: torch.Tensor) -> np.ndarray:
        raise NotImplementedError

    def _count_step(self) -> None:
        self.iterations_done += 1
        if self.early_stopping is not None:
            self.early_stopping.after_step(self.iterations_done, self._ensemble)

    @property
    def finished(self) -> bool:
        """True once early stopping has ended the plane; the engine then moves on."""
        return self.early_stopping is not None and self.early_stopping.finished

    def preview(self) -> np.ndarray:
        """The current ensemble (with early stopping, not necessarily the best one so far)."""
        return self._to_plane(self._ensemble.mean())

    def result(self) -> np.ndarray:
        """The current ensemble, or with early stopping the one at the best held-out check."""
        best = None if self.early_stopping is None else self.early_stopping.best_estimate(self.iterations_done, self._ensemble)
        return self.preview() if best is None else self._to_plane(best)
