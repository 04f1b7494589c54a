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

On FMD widefield crops both scores fall monotonically while the result first improves
and then degrades, so the residual correlation keeps the first check whether or not the
ensemble is still young. A configuration can instead keep the ensemble at a fixed
iteration on correlated noise (``correlated_noise_iterations``; the curves behind it:
docs/time-to-quality.md).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from napari_zsdenoise.methods.base import DenoisingMethod, StepRecord
from napari_zsdenoise.run_record import (
    BEST_ITERATION,
    ESTIMATED_GAIN_DB,
    HELD_OUT_GAIN,
    HOLDOUT_ERROR,
    RESIDUAL_CORRELATION,
    STOP_REASON,
    STOPPING_SIGNAL,
)
from napari_zsdenoise.methods._ensemble import (
    MAX_RESIDUAL_CORRELATION,
    NOISE_BLOCK,
    MaskedEnsemble,
    estimate_noise_variance,
    residual_correlation,
    tile_grid,
)

# How many checks the residual correlation must stay high to call the noise correlated
# (the figures behind it: docs/design-notes.md, "Correlated noise").
CORRELATION_CHECKS = 4
# Offset of the held-out set's seed from the run's seed: its own random stream, so the
# masks drawn during filling are the same with or without early stopping.
HOLDOUT_SEED_OFFSET = 7919


# Ratio of the high-frequency noise level after and before 2x2 binning (see
# binning_noise_ratio): 0.5 in theory for pixel-independent noise, well above 1 for
# camera-like correlated noise (measured values: docs/design-notes.md, "Correlated noise").
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


def pixel_independent_blocks(plane: np.ndarray | torch.Tensor, factor: int = 1) -> list[bool]:
    """Per block of :data:`NOISE_BLOCK` pixels of ``plane``'s sub-images (``factor`` a side, as the
    shuffle splits it), :func:`tile_grid`'s order: whether its part of the plane does not look
    spatially correlated."""
    height, width = plane.shape[-2:]
    _, blocks = tile_grid((-(-height // factor), -(-width // factor)), NOISE_BLOCK)
    return [not looks_spatially_correlated(plane[..., rows.start * factor: rows.stop * factor,
                                                 columns.start * factor: columns.stop * factor])
            for rows, columns in blocks]


def is_correlated_noise(correlations: list[float]) -> bool | None:
    """Whether the residual correlations of the first checks show spatially correlated noise.

    None while fewer than ``CORRELATION_CHECKS`` checks are in and none has ruled it out.
    """
    if any(value <= MAX_RESIDUAL_CORRELATION for value in correlations[:CORRELATION_CHECKS]):
        return False
    return True if len(correlations) >= CORRELATION_CHECKS else None


class StoppingRule:
    """The early-stopping decision from a sequence of held-out checks; no tensors involved.

    The product (:class:`HoldoutEarlyStopping`) and the studies that replay recorded
    checks feed the same rule, so a replay decides exactly as a run would.

    Parameters
    ----------
    patience : int
        Iterations without a better score before :attr:`finished` turns True.
    correlated_noise : bool or None
        Decided up front, or None: decided from the first checks (:func:`is_correlated_noise`).
    correlated_noise_iterations : int
        On correlated noise, keep the ensemble at the last check at or before this
        iteration and end the run there; 0: the check with the highest residual correlation.
    rising_checks : int
        With the held-out error deciding: after ``patience`` iterations without a better check the run
        ends only once the error has risen at this many consecutive checks: past a peak it climbs check
        after check, on a plateau it wobbles and then falls on. 0: it ends then whatever the error did
        (the rule of the earlier releases).
    plateau_patience : int
        With ``rising_checks``: iterations without a better check after which the run ends even on a
        flat error (a plateau); at least ``patience``.
    max_residual_anticorrelation : float
        With the held-out error deciding: a check whose residual correlation falls below minus this
        (from at or above it at an earlier check) is not kept and ends the run (reason "copies noise"). Pixel-independent noise leaves a residual
        uncorrelated between neighbours; once the network predicts a pixel from its neighbours' noise, the
        residual anti-correlates, while the held-out error can fall on for a while. 0: off.
    """

    SIGNALS = ("error", "correlation", "budget")

    def __init__(self, patience: int, correlated_noise: bool | None = None, correlated_noise_iterations: int = 0,
                 *, rising_checks: int = 0, plateau_patience: int = 0,
                 max_residual_anticorrelation: float = 0.0) -> None:
        self.patience = patience
        self.correlated_noise = correlated_noise
        self.correlated_noise_iterations = correlated_noise_iterations
        self.rising_checks = rising_checks
        self.plateau_patience = max(plateau_patience, patience)
        self.max_residual_anticorrelation = max_residual_anticorrelation
        self.best_scores = {signal: float("inf") for signal in self.SIGNALS}
        self.best_iterations: dict[str, int | None] = {signal: None for signal in self.SIGNALS}
        self.correlations: list[float] = []
        self.first_error: float | None = None
        self.last_error: float | None = None
        #: Consecutive checks, since the best, at which the held-out error rose over the check before.
        self.rises = 0
        self.best_iteration: int | None = None
        self.finished = False
        #: Why the run ended (None while it goes on): see :meth:`summary`.
        self.reason: str | None = None

    @property
    def signal(self) -> str:
        """The signal that decides: for correlated noise the fixed budget or else the residual
        correlation, otherwise the held-out error."""
        if not self.correlated_noise:
            return "error"
        return "budget" if self.correlated_noise_iterations else "correlation"

    def observe(self, iteration: int, error: float, correlation: float) -> list[str]:
        """Take one check; return the signals whose best it improved."""
        self.correlations.append(correlation)
        improved = []
        # The budget's "score" only says whether the check counts: the latest one within the budget wins,
        # and a budget shorter than the first check keeps that check.
        counts = iteration <= self.correlated_noise_iterations or self.best_iterations["budget"] is None
        within_budget = -float(iteration) if counts else float("inf")
        # Only a fall through the limit counts: a warm-started plane can start below it, and the first
        # check is kept whatever its correlation, as a run must keep something.
        limit = -self.max_residual_anticorrelation
        copies_noise = (self.max_residual_anticorrelation > 0 and correlation < limit
                        and any(earlier >= limit for earlier in self.correlations[:-1])
                        and self.best_iterations["error"] is not None)
        for signal, score in (("error", error), ("correlation", -correlation), ("budget", within_budget)):
            if signal == "error" and copies_noise:
                continue
            if score < self.best_scores[signal]:
                self.best_scores[signal], self.best_iterations[signal] = score, iteration
                improved.append(signal)
        if self.first_error is None:
            self.first_error = error
        self.rises = self.rises + 1 if self.last_error is not None and error > self.last_error else 0
        self.last_error = error
        if self.correlated_noise is None:
            self.correlated_noise = is_correlated_noise(self.correlations)
        self.best_iteration = self.best_iterations[self.signal]
        since_best = iteration - self.best_iteration
        if self.signal == "error" and copies_noise:
            self.finished, self.reason = True, "copies noise"
        elif self.signal == "budget":
            if iteration >= self.correlated_noise_iterations:
                self.finished, self.reason = True, "budget"
        elif since_best >= self.patience:
            if self.signal != "error" or self.rising_checks <= 0 or self.rises >= self.rising_checks:
                self.finished, self.reason = True, "rose" if self.signal == "error" and self.rising_checks else "patience"
            elif since_best >= self.plateau_patience:
                self.finished, self.reason = True, "plateau"
        return improved

    def held_out_gain(self) -> float:
        """How much the held-out error fell from the first check to the best, as a share of the first (0..1)."""
        if self.first_error is None or self.first_error <= 0:
            return 0.0
        return max(0.0, 1.0 - self.best_scores["error"] / self.first_error)

    def summary(self) -> dict[str, Any]:
        """Why and where the rule ended the run, and what the held-out pixels gained, for the run's record."""
        return {STOP_REASON: self.reason or "iterations", BEST_ITERATION: self.best_iteration,
                HELD_OUT_GAIN: round(self.held_out_gain(), 4)}


def make_stopping_rule(config: Any, correlated_noise: bool | None = None, *, warm_started: bool = False) -> StoppingRule:
    """The :class:`StoppingRule` of a method's early-stopping settings (replays of recorded checks use it too).

    A plane warm-started from the plane before is left to the held-out error: its network has learnt the
    noise's neighbourhood statistics of a similar plane already, and its residual is near the limit from the
    first check (the anti-correlation stop was chosen on planes trained from scratch).
    """
    return StoppingRule(config.patience, correlated_noise, config.correlated_noise_iterations,
                        rising_checks=config.rising_checks, plateau_patience=config.plateau_patience,
                        max_residual_anticorrelation=0.0 if warm_started else config.max_residual_anticorrelation)


class HoldoutEarlyStopping:
    """Held-out pixels of one plane (batch) and the running choice of the best ensemble.

    Parameters
    ----------
    noisy : torch.Tensor
        The noisy plane(s) the ensemble estimates, in normalised units.
    holdout_fraction : float
        Probability that a pixel is held out, in (0, 0.5).
    validation_every : int
        Iterations between checks (see :meth:`after_step`).
    seed : int
        The run's seed; the held-out set is drawn on the CPU from its own generator.
    rule : StoppingRule
        Decides from the checks (:func:`make_stopping_rule` builds it from a method's settings).
    keep_with_best : callable, optional
        Called at each check that improves a best; what it returns is kept with that
        check's ensemble (:meth:`kept_at_best`), e.g. the network's weights at that point.
    within : (shape, region), optional
        ``noisy`` is ``region`` (rows, columns) of a tensor of ``shape``: the held-out set is
        that tensor's, cut to the region, so that a later run on the whole tensor holds out
        pixels no earlier step trained on.
    """

    def __init__(self, noisy: torch.Tensor, *, holdout_fraction: float, validation_every: int, seed: int,
                 rule: StoppingRule, keep_with_best: Callable[[], Any] | None = None,
                 within: tuple[torch.Size, tuple[slice, slice]] | None = None) -> None:
        self.noisy = noisy
        self.validation_every = validation_every
        generator = torch.Generator(device="cpu")
        generator.manual_seed(seed + HOLDOUT_SEED_OFFSET)
        holdout = torch.rand(noisy.shape if within is None else within[0], generator=generator) < holdout_fraction
        if within is not None:
            rows, columns = within[1]
            holdout = holdout[..., rows, columns].contiguous()
        # A plane too small to hold any pixel out is simply not stopped early.
        self.holdout: torch.Tensor | None = holdout.to(noisy.device) if bool(holdout.any()) else None
        self.rule = rule
        # (iteration, held-out mean squared error, residual neighbour correlation)
        self.validation_trace: list[tuple[int, float, float]] = []
        # The ensemble at each signal's best check.
        self._best_estimates: dict[str, torch.Tensor | None] = {signal: None for signal in StoppingRule.SIGNALS}
        self._keep_with_best = keep_with_best
        self._best_kept: dict[str, Any] = {signal: None for signal in StoppingRule.SIGNALS}

    @property
    def finished(self) -> bool:
        return self.rule.finished

    @property
    def best_iteration(self) -> int | None:
        return self.rule.best_iteration

    @property
    def correlated_noise(self) -> bool | None:
        return self.rule.correlated_noise

    @property
    def active(self) -> bool:
        return self.holdout is not None

    def trainable(self, pixels: torch.Tensor) -> torch.Tensor:
        """``pixels`` (a boolean mask) without the held-out ones."""
        return pixels if self.holdout is None else pixels & ~self.holdout

    def loss_weight(self) -> torch.Tensor | None:
        """1 where a pixel may enter a loss, 0 where it is held out (None: no holdout)."""
        return None if self.holdout is None else (~self.holdout).to(self.noisy.dtype)

    def after_step(self, iteration: int, ensemble: MaskedEnsemble) -> dict[str, float]:
        """Check the ensemble when ``iteration`` (1-based, just finished) is due; return the check's scores."""
        if self.holdout is not None and iteration % self.validation_every == 0:
            return self.check(iteration, ensemble)
        return {}

    def check(self, iteration: int, ensemble: MaskedEnsemble) -> dict[str, float]:
        """Score the ensemble, keep it if best, and return the scores ({} when nothing could be scored)."""
        if self.holdout is None:
            return {}
        estimate = ensemble.mean()
        scored = self.holdout & (ensemble.weight > 0) if ensemble.weight is not None else self.holdout
        if not bool(scored.any()):
            return {}
        error = float(((estimate - self.noisy)[scored] ** 2).mean())
        correlation = residual_correlation(self.noisy, estimate)
        self.validation_trace.append((iteration, error, correlation))
        improved = self.rule.observe(iteration, error, correlation)
        if improved:
            snapshot = estimate.clone()
            kept = None if self._keep_with_best is None else self._keep_with_best()
            for signal in improved:
                self._best_estimates[signal] = snapshot
                self._best_kept[signal] = kept
        return {HOLDOUT_ERROR: error, RESIDUAL_CORRELATION: correlation}

    def best_estimate(self, iteration: int, ensemble: MaskedEnsemble) -> torch.Tensor | None:
        """The ensemble at the best check, checking first if the run ended between checks.

        None when no check could score anything (the caller then uses the current ensemble).
        """
        last_check = self.validation_trace[-1][0] if self.validation_trace else 0
        if self.holdout is not None and last_check < iteration:
            self.check(iteration, ensemble)
        return None if self.rule.best_iteration is None else self._best_estimates[self.rule.signal]

    def kept_at_best(self) -> Any:
        """What ``keep_with_best`` returned at the best check (None before any check)."""
        return None if self.rule.best_iteration is None else self._best_kept[self.rule.signal]

    def facts(self) -> dict[str, Any]:
        """Per-plane provenance: best iteration, whether the holdout ended the run, the signal used."""
        signal = (None if self.correlated_noise is None else
                  f"fixed budget of {self.rule.correlated_noise_iterations} iterations (spatially correlated noise)"
                  if self.rule.signal == "budget" else
                  "residual correlation (spatially correlated noise)" if self.correlated_noise else "held-out error")
        facts = {"stopped_by_holdout": self.finished, STOPPING_SIGNAL: signal, **self.rule.summary()}
        if self.rule.signal == "error" and self.holdout is not None:
            facts[ESTIMATED_GAIN_DB] = self.estimated_gain_db()
        return facts

    def estimated_gain_db(self) -> float | None:
        """The kept ensemble's gain over the noisy plane in dB, estimated without a clean image.

        The held-out error is the ensemble's squared error against the clean plane plus the noise variance
        (the noise there was never learnt); the noise variance comes from the noisy plane (Immerkaer), so
        the gain is ``10 log10(noise / (error - noise))``. Immerkaer's estimator underestimates the
        variance of signal-dependent noise, so the estimate errs low (by how much on the robustness suite:
        docs/robustness.md): it flags results that may be no better than the input, it is not a score.
        None when the error is not above the estimated noise.
        """
        best = self.rule.best_scores["error"]
        plane = self.noisy.detach().reshape(-1, *self.noisy.shape[-2:])[0].to("cpu", torch.float64).numpy()
        noise = estimate_noise_variance(plane)
        if not np.isfinite(best) or best <= noise or noise <= 0:
            return None
        return round(10 * float(np.log10(noise / (best - noise))), 2)


class EnsembleOutputMethod(DenoisingMethod):
    """Step bookkeeping and output rule of the methods whose estimate is a masked ensemble.

    MPI and INS-BSN share them: the preview is the current ensemble; the result is the
    ensemble at the best held-out check when the run is stopped early, else the current
    one. A subclass sets ``early_stopping`` and ``_ensemble`` in ``prepare``, ends each
    ``step`` with :meth:`_finish_step` and implements ``_to_plane``.
    """

    early_stopping: HoldoutEarlyStopping | None = None
    iterations_done: int = 0
    _ensemble: MaskedEnsemble

    @abstractmethod
    def _to_plane(self, estimate: torch.Tensor) -> np.ndarray:
        """The (H, W) float32 plane of an ensemble estimate."""

    def _finish_step(self, loss: torch.Tensor) -> StepRecord:
        self.iterations_done += 1
        scores = {} if self.early_stopping is None else self.early_stopping.after_step(self.iterations_done, self._ensemble)
        finished = self.early_stopping is not None and self.early_stopping.finished
        return StepRecord(loss.detach(), finished, scores)

    def plane_facts(self) -> dict[str, Any]:
        return {} if self.early_stopping is None else self.early_stopping.facts()

    def preview(self) -> np.ndarray:
        """The current ensemble (with early stopping, not necessarily the best one so far)."""
        return self._to_plane(self._ensemble.mean())

    def result(self) -> np.ndarray:
        """The current ensemble, or with early stopping the one at the best held-out check."""
        best = None if self.early_stopping is None else self.early_stopping.best_estimate(self.iterations_done, self._ensemble)
        return self._to_plane(self._ensemble.mean() if best is None else best)
