"""Settings shared by several methods (no torch import here)."""

from __future__ import annotations

from dataclasses import dataclass

from napari_zsdenoise.settings import MethodSettings, setting


@dataclass(frozen=True)
class EarlyStoppingSettings(MethodSettings):
    """Early stopping on held-out pixels, shared by the blind-spot methods (MPI, INS-BSN).

    With ``early_stopping`` a random ``holdout_fraction`` of the pixels is left out of
    every loss. The networks never learn their noise, so the error of the ensemble
    against the noisy values there tracks its error against the clean image (plus the
    constant noise variance); for spatially correlated noise the residual's neighbour
    correlation is scored instead (``methods/_early_stopping.py``). Every
    ``validation_every`` iterations the ensemble is scored; the result is the ensemble at
    the best check, and the run ends once ``patience`` iterations pass without a better
    one. ``iterations`` is then a maximum.
    """

    early_stopping: bool = setting(
        False, "Hold out a few pixels from the loss and stop when the result stops improving there; "
        "the result is the best checked ensemble and the iterations become a maximum.",
        label="stop when it starts to fit the noise")
    holdout_fraction: float = setting(
        0.05, "Share of pixels held out for early stopping.", label="held-out share",
        low=0.0, high=0.5, low_open=True, high_open=True, advanced=True)
    patience: int = setting(
        200, "Iterations without a better held-out score before the run ends.", low=1, advanced=True)
    validation_every: int = setting(
        25, "Iterations between held-out checks.", label="check every", low=1, advanced=True)
    correlated_noise_iterations: int = setting(
        0, "On spatially correlated (camera-like) noise, where no held-out score follows the result's peak, "
        "keep the ensemble at this iteration and stop there; 0: the check with the highest residual correlation.",
        label="iterations on correlated noise", low=0, advanced=True)
