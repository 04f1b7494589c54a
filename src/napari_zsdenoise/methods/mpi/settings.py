"""Settings and presets of MPI iterative filling (no torch import here)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

from napari_zsdenoise.methods._shared_settings import (
    HOURGLASS_MAX_SCALES,
    HOURGLASS_MAX_WIDTH,
    MIN_TILE,
    EarlyStoppingSettings,
    zero_or_at_least,
)
from napari_zsdenoise.methods.base import MethodSpec
from napari_zsdenoise.settings import Phase, PlanePlan, setting

# The blend judges the noise in blocks of this side (methods/_ensemble.py, NOISE_BLOCK): a tile holds one at least.
MIN_BLEND_TILE = 64
CITATION = ("Ma, Wei, Jin, Ling, Liu, Wang, Dai, Chen: Masked Pre-training Enables Universal Zero-shot "
            "Denoiser. NeurIPS 2024 (Algorithm 1, Eq. 8)")


@dataclass(frozen=True)
class MPIConfig(EarlyStoppingSettings):
    """Settings of MPI iterative filling (Ma et al., NeurIPS 2024, Algorithm 1).

    Each field's help text says what it does. Two need more words:

    ``blend_noisy``: False keeps the authors' masked EMA, started at the noisy image.
    True keeps the same EMA of predictions only (start-up weight divided out) and
    combines it with the noisy image by the weight that minimises the expected squared
    error, from an estimate of the noise variance (``methods/_ensemble.py``).

    ``early_stopping`` (see :class:`EarlyStoppingSettings`): the ensemble then starts
    empty (predictions only, start-up weight divided out) so that it can be validated
    from the first check.
    """

    iterations: int = setting(1000, "Optimisation steps per plane (a maximum with early stopping).", low=1,
        changes_step_cost=False)
    ema_beta: float = setting(
        0.99, "Weight of the running ensemble in the masked EMA (Eq. 8); closer to 1 averages over more iterations.",
        label="EMA beta", low=0.0, high=1.0, high_open=True, changes_step_cost=False)
    mask_ratio: float = setting(
        0.85, "Fraction of pixels hidden from the network at each step (and the only ones the loss and the "
        "ensemble use); 0.85 for fluorescence, 0.3 for pixel-independent synthetic noise.",
        low=0.0, high=1.0, low_open=True, high_open=True, changes_step_cost=False)
    learning_rate: float = setting(
        2e-3, "Adam step size during filling.", low=0.0, high=1.0, low_open=True, advanced=True,
        changes_step_cost=False)
    shuffle_factor: int = setting(
        1, "Pixel-shuffle factor d: the plane is split into d*d sub-images denoised as one batch; "
        "above 1 only for spatially correlated noise.", low=1, high=8, advanced=True)
    weights: str | Path | None = setting(
        "shipped", "Starting weights: 'shipped' (pre-trained by this project), none (random initialisation) "
        "or a checkpoint file (ours or an official MPI .pth).", kind="weights", changes_step_cost=False)
    width: int = setting(
        64, "Hourglass feature channels per scale (must match the weights); at most 512, 8 times the paper's 64 "
        "(memory and time grow with its square).", low=1, high=HOURGLASS_MAX_WIDTH, advanced=True)
    scales: int = setting(5, "Hourglass scales (must match the weights).", low=1, high=HOURGLASS_MAX_SCALES,
                          advanced=True)
    training_crop: int = setting(
        0, "Side in pixels of the square crops trained on at each step; 0 trains on the whole plane. With "
        "crops a step costs the same on any plane size; the predictions fill the result where the crops lie.",
        label="training crop", low=0, advanced=True)
    views_per_step: int = setting(
        1, "Masked views trained on together at each step: random crops with a training crop, else the "
        "whole plane under as many different masks.", low=1, high=64, advanced=True)
    fill_every: int = setting(
        0, "With a training crop, every this many steps the whole plane is also predicted (without "
        "training) under a fresh mask and folded into the result; 0 never.", low=0, advanced=True,
        applies_when="training_crop")
    fill_tile: int = setting(
        0, "Side in pixels of the tiles whole-plane fills are predicted in, each with a margin of context; "
        "0: the whole plane at once (or tiles of the automatic crop when the memory budget asks for one). "
        "At least 64: each tile brings a margin of 2**(scales+1) pixels, so smaller tiles multiply the work.",
        low=0, advanced=True)
    memory_budget_mb: int = setting(
        0, "Memory in MB a plane's training may take; a plane that would need more is trained on crops and "
        "predicted in tiles. 0: half of what the device has free (host memory on a CPU).",
        label="memory budget (MB)", low=0, advanced=True)
    context_planes: int = setting(
        0, "Neighbouring planes on each side of a stack plane (along the axis just before Y) given to the "
        "network as extra input channels, never masked: their noise is independent of the plane's, their "
        "signal is not, so a plane repeated in the stack is refused. Needs random initialisation (weights none); "
        "a 2-D image runs without.", label="context planes",
        low=0, high=4)
    warm_start: bool = setting(
        False, "In a stack, start each plane after the first from the network trained on the plane before "
        "(at its best check, with early stopping); the result is still made from this plane's predictions only. "
        "A plane run alone, the first plane a continued run computes, and a plane after one with spatially "
        "correlated noise start afresh.", label="continue from the previous plane", changes_step_cost=False)
    warm_iterations: int = setting(
        0, "With warm start, the most steps of each plane after the first (0: the same as the first).",
        low=0, advanced=True, applies_when="warm_start", changes_step_cost=False)
    warm_learning_rate: float = setting(
        0.0, "With warm start, Adam's step size on the planes after the first, which only adapt a trained "
        "network; 0: the same as learning_rate.", label="warm learning rate", low=0.0, high=1.0, advanced=True,
        applies_when="warm_start")
    start_crop: int = setting(
        0, "Side in pixels of the crop a larger plane starts training on (its most detailed one); the network "
        "then goes on over the whole plane for the last whole_plane_iterations steps of the budget at "
        "learning_rate, so a plane four times larger costs far less than four times more. Planes with "
        "spatially correlated noise, and planes continued from the plane before, train on the whole plane "
        "from the start. 0: off.", label="start on a crop of",
        low=0, advanced=True, changes_step_cost=False)
    whole_plane_iterations: int = setting(
        0, "With a start crop, the steps on the whole plane after the crop (at most half the budget; 0: half).",
        label="steps on the whole plane", low=0, advanced=True, applies_when="start_crop", changes_step_cost=False)
    blend_noisy: bool = setting(
        False, "Combine the ensemble with the noisy image by an estimated weight (skipped for spatially "
        "correlated noise).", label="blend with the noisy image", advanced=True, changes_step_cost=False)
    blend_tile: int = setting(
        256, "Estimate the blend's weights per tile of about this many pixels a side, interpolated between "
        "tiles, so that noise and quality that change across a large plane get their own weights (a side under "
        "one and a half tiles is one tile), and judge spatially correlated noise per 64² block. 0: one set of "
        "weights for the whole plane, the noise judged on the whole plane.",
        label="blend weights per tile of", low=0, advanced=True, applies_when="blend_noisy", changes_step_cost=False)

    def plan(self, shape: tuple[int, int], warm: bool = False, *, correlated_noise: bool = False) -> PlanePlan:
        """A training crop caps the pixels of every step; a warm-started plane runs its own budget on the
        whole plane; a plane larger than the start crop trains on that crop first, then on the whole plane,
        unless its noise is spatially correlated (``correlated_noise``, which only the plane itself tells)."""
        height, width = shape
        if self.training_crop:
            height, width = min(height, self.training_crop), min(width, self.training_crop)
        if warm and self.warm_start:
            phases = (Phase("warm start", min(self.warm_iterations or self.iterations, self.iterations),
                            (height, width)),)
        elif self.starts_on_a_crop((height, width)) and not correlated_noise:
            steps = self.start_crop_whole_plane_steps
            crop = (min(self.start_crop, height), min(self.start_crop, width))
            phases = (Phase("start crop", self.iterations - steps, crop), Phase("whole plane", steps, (height, width)))
        else:
            phases = (Phase("whole plane", self.iterations, (height, width)),)
        return PlanePlan(phases, can_end_sooner=self.early_stopping)

    def starts_on_a_crop(self, shape: tuple[int, int]) -> bool:
        """Whether a fresh plane of ``shape`` with pixel-independent noise starts on the start crop."""
        return bool(self.start_crop and not self.training_crop and self.start_crop_whole_plane_steps
                    and (shape[0] > self.start_crop or shape[1] > self.start_crop))

    @property
    def start_crop_whole_plane_steps(self) -> int:
        """Steps left to the whole plane after a start crop: whole_plane_iterations, at most half the budget."""
        half = self.iterations // 2
        return min(self.whole_plane_iterations or half, half)

    @property
    def min_size(self) -> int:
        """Smallest plane height/width in pixels this configuration accepts."""
        return (2**self.scales + 1) * self.shuffle_factor

    def _network_needs(self) -> tuple[str, str, str]:
        """What sets :attr:`min_size`, in the settings' own words, for messages."""
        if self.shuffle_factor == 1:
            return f"scales={self.scales} needs", "(2**scales + 1)", "lower scales"
        return (f"scales={self.scales} and shuffle_factor={self.shuffle_factor} need",
                "((2**scales + 1) * shuffle_factor)", "lower scales or shuffle_factor")

    def check(self) -> None:
        if self.start_crop and self.warm_iterations and not self.whole_plane_iterations:
            # warm_iterations used to set the steps on the whole plane after a start crop too.
            warnings.warn("warm_iterations no longer sets the steps on the whole plane after a start crop; "
                          f"whole_plane_iterations does (set to {self.warm_iterations} from warm_iterations this "
                          "time)", FutureWarning, stacklevel=4)
            object.__setattr__(self, "whole_plane_iterations", self.warm_iterations)
        # Crops and tiles must hold the network's downsampling. A preset's start crop can fall below what
        # larger scales need: the message leads with the scales, as the user may never have set the crop.
        # Tiles must also be large enough not to multiply the work (MIN_TILE), whatever the scales.
        needs, formula, lower = self._network_needs()
        for name, what, zero_means in (("start_crop", "crops", "off"), ("training_crop", "crops", "the whole plane"),
                                       ("fill_tile", "tiles", "the whole plane")):
            value = getattr(self, name)
            if 0 < value < self.min_size and (what == "crops" or self.min_size > MIN_TILE):
                raise ValueError(f"{needs} {what} of at least {self.min_size} pixels {formula}, but {name} is {value}: "
                                 f"{lower}, or set {name} to 0 ({zero_means}) or at least {self.min_size}")
        zero_or_at_least("fill_tile", self.fill_tile, MIN_TILE, "the whole plane")
        zero_or_at_least("blend_tile", self.blend_tile, MIN_BLEND_TILE, "one set of weights for the whole plane")

    @property
    def out_of_memory_advice(self) -> str:
        """What lowers the memory a plane needs: training crops (smaller ones when already set), fewer views,
        fills in tiles."""
        if not self.training_crop:
            advice = ["train on crops (training_crop=256, CLI --training-crop 256)"]
        elif self.training_crop // 2 >= self.min_size:
            smaller = self.training_crop // 2
            advice = [f"train on smaller crops (training_crop={smaller}, CLI --training-crop {smaller})"]
        else:
            advice = ["denoise a smaller region of the image"]
        if self.views_per_step > 1:
            advice.append("train on one view per step (views_per_step=1, CLI --views-per-step 1)")
        if self.fill_every and not self.fill_tile:
            advice.append("predict the fills in tiles (fill_tile=256, CLI --fill-tile 256)")
        return ", ".join(advice)


_IMPLEMENTATION = "napari_zsdenoise.methods.mpi.method:MPIMethod"


def _preset(name: str, label: str, hint: str, recommendation: str = "", **settings) -> MethodSpec:
    config = MPIConfig(**settings)
    rising = (f" and {config.rising_checks} rising checks (or {max(config.plateau_patience, config.patience)} flat)"
              if config.rising_checks else "")
    if config.max_residual_anticorrelation:
        rising += f", or once its residual anti-correlates by {config.max_residual_anticorrelation:g}"
    budget = (f"at most {config.iterations} iterations, early stopping after {config.patience} without progress"
              f"{rising}" if config.early_stopping else f"{config.iterations} iterations")
    return MethodSpec(name, f"{label} (EMA beta {config.ema_beta}, {budget}, mask ratio {config.mask_ratio})",
                      _IMPLEMENTATION, config, CITATION, recommendation, hint)


# The fast preset stays the authors' fixed 200 iterations; the 1000-iteration presets stop
# early because a fixed 1000 over-fits smaller images badly (docs/design-notes.md, "Early
# stopping"). `bsn` is the control of every pre-training claim: MPI's filling from a random
# network, i.e. a single-image masked blind-spot network with an EMA ensemble. `mpi-fast`,
# `mpi` and `bsn` keep the behaviour their published figures were measured with; the
# recommended preset is chosen from the time-to-quality curves and may change with them.
PRESETS = (
    _preset("mpi-fast", "MPI iterative filling, faster preset", "fastest of the MPI family (200 it)",
            ema_beta=0.9, iterations=200),
    _preset("mpi", "MPI iterative filling, default preset", "the paper's preset, stops early",
            ema_beta=0.99, iterations=1000, early_stopping=True),
    _preset("bsn", "blind-spot baseline: MPI filling from random initialisation",
            "the paper's no-pre-training control", ema_beta=0.99, iterations=1000, weights=None, early_stopping=True),
    _preset("bsn-quick", "blind-spot filling with bsn's network and a shorter patience", "bsn's quality, sooner",
            ema_beta=0.99, iterations=1000,
            weights=None, early_stopping=True, patience=50, warm_iterations=100, whole_plane_iterations=100),
    # Narrower than bsn-quick and blended with the noisy image; a check without progress ends a plane
    # only once the held-out error rises at two checks in a row (a plateau does not), or after 100
    # iterations without progress, and a check whose residual anti-correlates between neighbours ends
    # it at once, before the held-out error turns (docs/robustness.md); on correlated noise, where no
    # held-out score follows the peak, the ensemble at a fixed iteration; a plane larger than 256²
    # starts on a crop of that size, so that its cost grows far less than its area
    # (docs/time-to-quality.md).
    _preset("bsn-balanced", "blind-spot filling, narrower network blended with the noisy image",
            "best quality per second", ema_beta=0.99, iterations=1000, weights=None,
            early_stopping=True, patience=25, rising_checks=2, plateau_patience=100,
            max_residual_anticorrelation=0.02, width=48, blend_noisy=True,
            correlated_noise_iterations=100,
            warm_start=True, warm_iterations=100, warm_learning_rate=5e-4, start_crop=256, whole_plane_iterations=100,
            recommendation="the best quality per second of computing on this project's FMD benchmark "
                           "(docs/time-to-quality.md)"),
    # A narrow network for a short budget: an ensemble this young is still noisy, so it is blended
    # with the noisy image by the estimated weight; held-out checks end a plane that has stopped
    # improving, and a correlated-noise plane at its own budget, where this ensemble has already
    # peaked; a plane larger than 256² spends its last 100 steps on the whole plane after a crop
    # (docs/time-to-quality.md).
    _preset("bsn-fast", "blind-spot filling for a first result in about a minute",
            "a first result in about a minute", ema_beta=0.9, iterations=300, weights=None, width=32,
            blend_noisy=True, early_stopping=True, patience=100, correlated_noise_iterations=100,
            start_crop=256, whole_plane_iterations=100),
)
