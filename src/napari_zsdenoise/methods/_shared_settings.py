"""Settings shared by several methods (no torch import here)."""

from __future__ import annotations

from dataclasses import dataclass

from napari_zsdenoise.settings import MethodSettings, PlanePlan, setting

#: Widest skip hourglass (MPI family, MID) this package builds: 8x the 64 channels of the MPI paper, of its
#: official checkpoints and of the widest preset. A network's memory and time grow with the square of its
#: width; the bound refuses typing errors (``--width 1000000``) before any computing, and checkpoint files
#: that claim a wider network are refused as unreadable.
HOURGLASS_MAX_WIDTH = 512
#: Most hourglass scales (each halves the plane once more); planes must be at least ``2**scales + 1`` pixels.
HOURGLASS_MAX_SCALES = 8
#: Smallest side in pixels of a tile a plane is predicted in (MPI ``fill_tile``, MID ``tile``). Each tile is
#: predicted with a margin of ``2**(scales + 1)`` pixels of context on every side, so a tile much smaller
#: than its margin costs many times the work of the whole plane at once (a 1-pixel tile: minutes, not seconds).
MIN_TILE = 64


def zero_or_at_least(name: str, value: int, minimum: int, zero_means: str) -> None:
    """ValueError unless ``value`` is 0 (``zero_means``, e.g. "the whole plane") or at least ``minimum`` pixels."""
    if 0 < value < minimum:
        raise ValueError(f"{name} must be 0 ({zero_means}) or at least {minimum} pixels; got {value}")


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
        label="stop when it starts to fit the noise", changes_step_cost=False)
    holdout_fraction: float = setting(
        0.05, "Share of pixels held out for early stopping.", label="held-out share",
        low=0.0, high=0.5, low_open=True, high_open=True, advanced=True,
        applies_when="early_stopping", changes_step_cost=False)
    patience: int = setting(
        200, "Iterations without a better held-out score before the run ends.", low=1, advanced=True,
        applies_when="early_stopping", changes_step_cost=False)
    validation_every: int = setting(
        25, "Iterations between held-out checks.", label="check every", low=1, advanced=True,
        applies_when="early_stopping", changes_step_cost=False)
    rising_checks: int = setting(
        0, "After patience iterations without a better held-out score, end the run only once the held-out error "
        "has risen at this many checks in a row (past a peak it climbs; on a plateau it wobbles, then falls "
        "on); 0: end it then in any case.", label="rising checks that stop", low=0, high=20, advanced=True,
        applies_when="early_stopping", changes_step_cost=False)
    plateau_patience: int = setting(
        0, "With rising checks that stop: iterations without a better held-out score after which the run ends even "
        "though the error has not risen (a long plateau); at least patience.", low=0, advanced=True,
        applies_when="early_stopping", changes_step_cost=False)
    max_residual_anticorrelation: float = setting(
        0.0, "End the run at the first check whose residual (noisy minus result) anti-correlates between "
        "neighbouring pixels by more than this: the network has started to copy its neighbours' noise, though "
        "the held-out error may still fall; that check is not kept. For pixel-independent noise only; 0: off.",
        label="residual anti-correlation that stops", low=0.0, high=1.0, advanced=True,
        applies_when="early_stopping", changes_step_cost=False)
    correlated_noise_iterations: int = setting(
        0, "On spatially correlated (camera-like) noise, where no held-out score follows the result's peak, "
        "keep the ensemble at this iteration and stop there; 0: the check with the highest residual correlation.",
        label="iterations on correlated noise", low=0, advanced=True)

    def plan(self, shape: tuple[int, int], warm: bool = False) -> PlanePlan:
        plan = super().plan(shape, warm)
        return PlanePlan(plan.phases, can_end_sooner=self.early_stopping)
