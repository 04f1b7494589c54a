"""Settings of MID (Mask, Inpaint and Denoise): denoising with a trained model, and training it.

No torch import here, so listing methods stays cheap.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from napari_zsdenoise.methods._shared_settings import (
    HOURGLASS_MAX_SCALES,
    HOURGLASS_MAX_WIDTH,
    MIN_TILE,
    zero_or_at_least,
)
from napari_zsdenoise.methods.base import MethodSpec
from napari_zsdenoise.settings import MethodSettings, check_declared_settings, setting

CITATION = ("Chihaoui, Favaro: Unsupervised Real-World Denoising: Sparsity is All You Need (Mask, Inpaint "
            "and Denoise). arXiv 2503.21377, 2025 (Algorithm 1, Eqs. 2-5)")

#: What to tell a user who runs MID without a model file: the one way to get one.
NEEDS_MODEL = ("MID needs a model trained on your kind of data: train one with `zsdenoise fit-dataset NOISY -o "
               "MODEL.pt` and pass it as weights (--weights MODEL.pt)")


@dataclass(frozen=True)
class MIDConfig(MethodSettings):
    """Denoising with a MID model: the mean of ``iterations`` predictions, each from a fresh random mask.

    The model comes from :func:`napari_zsdenoise.methods.mid.training.fit_dataset`
    (``zsdenoise fit-dataset``); there are no shipped weights, because the noise bank the
    model was trained with is the user's own data.
    """

    iterations: int = setting(
        10, "Masked forward passes averaged into the result (K in the paper's Eq. 5); nothing is trained.", low=1,
        changes_step_cost=False)
    mask_ratio: float = setting(
        0.0, "Fraction of pixels hidden from the network in each pass; 0: the middle of the range the model's "
        "last training round hid.", low=0.0, high=1.0, high_open=True, changes_step_cost=False)
    weights: str | Path | None = setting(
        None, "The model file trained with `zsdenoise fit-dataset` (required: MID has no shipped weights).",
        kind="weights", changes_step_cost=False)
    tile: int = setting(
        0, "Side in pixels of the tiles each pass is predicted in, each with a margin of context; 0: the whole "
        "plane at once. At least 64: each tile brings a margin of 2**(scales+1) pixels, so smaller tiles multiply "
        "the work.", low=0, advanced=True)

    def check(self) -> None:
        zero_or_at_least("tile", self.tile, MIN_TILE, "the whole plane")

    @property
    def needs_weights_file(self) -> bool:
        return True

    @property
    def out_of_memory_advice(self) -> str:
        """Tiles (smaller ones when already set): a pass needs memory for its tile and margin only."""
        if not self.tile:
            return "predict in tiles (tile=256, CLI --tile 256)"
        if self.tile // 2 >= MIN_TILE:
            return f"predict in smaller tiles (tile={self.tile // 2}, CLI --tile {self.tile // 2})"
        return "denoise a smaller region of the image"


@dataclass(frozen=True)
class MIDTrainingSettings:
    """How :func:`~napari_zsdenoise.methods.mid.training.fit_dataset` trains a MID model.

    The defaults fit a laptop CPU in minutes; the paper's budget (2e5 iterations per
    round, NAFNet) is a GPU budget. Fields are declared with :func:`setting`, so they
    are validated on construction and describe themselves like a method's settings.
    """

    rounds: int = setting(
        4, "Training rounds: the first with Gaussian noise, each later one with noise harvested by the network "
        "of the round before.", low=1, high=16)
    iterations_per_round: int = setting(
        300, "Optimiser steps per round (the length of each round's cosine schedule).", low=1)
    batch_size: int = setting(8, "Clean patches per step; at most 256 (32 times the default).", low=1, high=256,
                              advanced=True)
    patch_size: int = setting(
        64, "Side in pixels of the training patches and of the noise patches in the bank; at most 1024 (16 times "
        "the default, 4 times the 256-pixel patches networks like the paper's NAFNet train on).", low=8, high=1024,
        advanced=True)
    width: int = setting(
        32, "Hourglass feature channels per scale; at most 512, 8 times MPI's 64 (memory and time grow with its "
        "square).", low=1, high=HOURGLASS_MAX_WIDTH, advanced=True)
    scales: int = setting(4, "Hourglass scales.", low=1, high=HOURGLASS_MAX_SCALES, advanced=True)
    learning_rate: float = setting(
        2e-3, "Adam step size at the start of each round. The paper's 4e-4 is for 2e5 iterations a round; "
        "in a budget of hundreds the larger step learns far more (docs/methods.md).", low=0.0, high=1.0,
        low_open=True, advanced=True, changes_step_cost=False)
    final_learning_rate: float = setting(
        1e-6, "Step size the cosine schedule ends each round at.", low=0.0, high=1.0, advanced=True)
    first_mask_ratio: float = setting(
        0.8, "Fraction of pixels hidden in the first (Gaussian-noise) round.", low=0.0, high=1.0,
        low_open=True, high_open=True, advanced=True)
    mask_ratio: float = setting(
        0.7, "Fraction of pixels hidden in the rounds between the first and the last.", low=0.0, high=1.0,
        low_open=True, high_open=True, advanced=True, changes_step_cost=False)
    last_mask_ratio_low: float = setting(
        0.05, "Least fraction hidden in the last round where the noise is independent between pixels (drawn per "
        "patch, uniformly up to the most).", low=0.0, high=1.0, low_open=True, high_open=True, advanced=True)
    last_mask_ratio_high: float = setting(
        0.15, "Most fraction hidden in the last round where the noise is independent between pixels.", low=0.0,
        high=1.0, low_open=True, high_open=True, advanced=True)
    correlated_last_mask_ratio_low: float = setting(
        0.5, "Least fraction hidden in the last round where the noise looks spatially correlated (cameras): the "
        "paper's range, whose masks break the correlation.", low=0.0, high=1.0, low_open=True, high_open=True,
        advanced=True)
    correlated_last_mask_ratio_high: float = setting(
        0.7, "Most fraction hidden in the last round where the noise looks spatially correlated.", low=0.0,
        high=1.0, low_open=True, high_open=True, advanced=True)
    signal_dependent: bool = setting(
        True, "Model the noise variance as a*signal + b (photon noise) so that harvested noise is rescaled to "
        "the brightness of the clean patch it is added to; off: residuals are added as they are.", advanced=True)
    pixel_shuffle: int = setting(
        0, "Train, and later denoise, on the d*d sub-planes of every d-th pixel (d this factor), where noise "
        "correlated between neighbouring pixels (cameras) is much less so; 0: 2 when most planes' noise looks "
        "spatially correlated and the planes are large enough, else 1.", low=0, high=4, advanced=True)
    masks_per_plane: int = setting(
        2, "Random masks per noisy plane when harvesting residuals for the noise bank; at most 16 (8 times the "
        "default).", low=1, high=16, advanced=True)
    bank_patches: int = setting(2048, "Noise patches kept in the bank; at most 16384 (8 times the default).",
                                low=1, high=16384, advanced=True)
    procedural_images: int = setting(
        64, "Procedural clean fluorescence scenes generated as clean training images (all held in memory); at "
        "most 1024 (16 times the default).", low=0, high=1024, advanced=True)
    procedural_side: int = setting(128, "Side in pixels of each procedural scene; at most 2048 (16 times the "
                                   "default).", low=8, high=2048, advanced=True)
    clean_fraction: float = setting(
        0.5, "With clean folders, the share of patches drawn from them (the rest are procedural).",
        low=0.0, high=1.0, advanced=True)
    seed: int = setting(0, "Seeds networks, patches, masks and noise: the same seed repeats a fit.", low=0)

    def __post_init__(self) -> None:
        check_declared_settings(self)
        if self.patch_size <= 2**self.scales:
            raise ValueError(f"patch_size must be above {2**self.scales} px for {self.scales} scales; "
                             f"got {self.patch_size}")
        if self.procedural_images and self.procedural_side < self.patch_size:
            raise ValueError(f"procedural_side ({self.procedural_side}) must be at least patch_size "
                             f"({self.patch_size})")
        for what, count, side, kind, fix in (
                ("a step", self.batch_size, self.patch_size, "patches", "batch_size or patch_size"),
                ("the noise bank", self.bank_patches, self.patch_size, "patches", "bank_patches or patch_size"),
                ("the procedural scenes", self.procedural_images, self.procedural_side, "scenes",
                 "procedural_images or procedural_side")):
            check_pixel_budget(what, count, side, kind, fix)
        if self.final_learning_rate > self.learning_rate:
            raise ValueError("final_learning_rate must not exceed learning_rate")
        for prefix in ("", "correlated_"):
            if getattr(self, f"{prefix}last_mask_ratio_low") > getattr(self, f"{prefix}last_mask_ratio_high"):
                raise ValueError(f"{prefix}last_mask_ratio_low must not exceed {prefix}last_mask_ratio_high")

    def mask_ratios(self, round_index: int, correlated: bool = False) -> tuple[float, float]:
        """(least, most) fraction hidden in round ``round_index`` (0-based); equal outside the last round.

        A single round is a first round: its denoiser has seen only Gaussian noise, which is
        what the high first ratio is for. The last round's range depends on whether the
        data's noise is ``correlated`` between neighbouring pixels.
        """
        if round_index == 0:
            return self.first_mask_ratio, self.first_mask_ratio
        if round_index == self.rounds - 1:
            if correlated:
                return self.correlated_last_mask_ratio_low, self.correlated_last_mask_ratio_high
            return self.last_mask_ratio_low, self.last_mask_ratio_high
        return self.mask_ratio, self.mask_ratio

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


#: Most pixels each of these may hold: a training step's batch (128 times the default 8 x 64², e.g. 64
#: patches of 256², GPU-sized training; about 12 GB of activations at width 32), the noise bank (16 times the
#: default 2048 x 64²; 1 GB while it is built in float64) and the procedural scenes (128 times the default
#: 64 x 128²; 512 MB in float32). Each single bound allows far more, so the products are bounded too.
PIXEL_BUDGETS = {"a step": 2**22, "the noise bank": 2**27, "the procedural scenes": 2**27}


def check_pixel_budget(what: str, count: int, side: int, kind: str, fix: str) -> None:
    """ValueError unless ``count`` squares of ``side`` pixels fit ``what``'s budget in :data:`PIXEL_BUDGETS`."""
    budget = PIXEL_BUDGETS[what]
    if count * side * side > budget:
        example = budget // (side * side)
        raise ValueError(f"{what} would hold {count} {kind} of {side}x{side} pixels ({count * side * side:,} pixels); "
                         f"at most {budget:,} (e.g. {max(example, 1)} of that size): lower {fix}")


_IMPLEMENTATION = "napari_zsdenoise.methods.mid.method:MIDMethod"

PRESETS = (
    MethodSpec("mid", "MID: a model trained on your noisy data (zsdenoise fit-dataset), averaged over 10 masked "
               "passes", _IMPLEMENTATION, MIDConfig(), CITATION, "",
               "needs a model trained on your data"),
)
