"""Typed, validated settings for each denoising method (no torch import here)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


def _check_range(name: str, value: float, low: float, high: float, *, low_open: bool = False, high_open: bool = False) -> None:
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if too_low or too_high:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        raise ValueError(f"{name} must be in {left}{low}, {high}{right}; got {value}")


def _check_ints(settings: object, names: tuple[str, ...], *, minimum: int | None = 1) -> None:
    """TypeError unless each named field is an int (not a bool); ValueError below ``minimum``."""
    for name in names:
        value = getattr(settings, name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int; got {value!r}")
        if minimum is not None and value < minimum:
            raise ValueError(f"{name} must be >= {minimum}; got {value}")


@dataclass(frozen=True)
class EarlyStoppingSettings:
    """Early stopping on held-out pixels, shared by the blind-spot methods (MPI, INS-BSN).

    Attributes
    ----------
    early_stopping : bool
        Hold out a random ``holdout_fraction`` of the pixels from every loss. The
        networks never learn their noise, so the error of the ensemble against the
        noisy values there tracks its error against the clean image (plus the constant
        noise variance); for spatially correlated noise the residual's neighbour
        correlation is scored instead (``methods/_early_stopping.py``). Every
        ``validation_every`` iterations the ensemble is scored; the result is the
        ensemble at the best check, and the run ends once ``patience`` iterations pass
        without a better one. ``iterations`` is then a maximum.
    holdout_fraction : float
        Share of pixels held out for ``early_stopping``, in (0, 0.5).
    patience : int
        Iterations without a better held-out score before the run ends.
    validation_every : int
        Iterations between held-out checks.
    """

    early_stopping: bool = False
    holdout_fraction: float = 0.05
    patience: int = 200
    validation_every: int = 25

    def _check_early_stopping(self) -> None:
        if not isinstance(self.early_stopping, bool):
            raise TypeError(f"early_stopping must be True or False; got {self.early_stopping!r}")
        _check_ints(self, ("patience", "validation_every"))
        _check_range("holdout_fraction", self.holdout_fraction, 0.0, 0.5, low_open=True, high_open=True)


@dataclass(frozen=True)
class MPIConfig(EarlyStoppingSettings):
    """Settings of MPI iterative filling (Ma et al., NeurIPS 2024, Algorithm 1).

    Attributes
    ----------
    iterations : int
        Optimisation steps per image plane.
    ema_beta : float
        Weight of the running ensemble in the masked EMA (Eq. 8); closer to 1 averages
        over more iterations.
    mask_ratio : float
        Fraction ``p`` of pixels hidden from the network at each step (and the only
        pixels the loss and the ensemble use). 0.85 is the authors' fluorescence
        setting; 0.3 their setting for pixel-independent synthetic noise.
    learning_rate : float
        Adam step size during filling (Adam's betas stay at torch's defaults, as in the
        authors' code; they are unrelated to ``ema_beta``).
    shuffle_factor : int
        Pixel-shuffle factor ``d``: the plane is split into ``d*d`` sub-images that are
        denoised as one batch. 1 (off) unless the noise is spatially correlated.
    weights : str | Path | None
        ``"shipped"`` (default): the weights this project pre-trained and ships; a path:
        a checkpoint file (ours or an official MPI ``.pth``); None: random
        initialisation (no pre-training).
    width, scales : int
        Hourglass feature channels per scale and number of scales; with weights, they
        must match the checkpoint.
    blend_noisy : bool
        How the result is formed from the predictions at hidden pixels. False: the
        authors' masked EMA, started at the noisy image. True: the same EMA of
        predictions only (start-up weight divided out), combined with the noisy image by
        the weight that minimises the expected squared error, from an estimate of the
        noise variance (``methods/_ensemble.py``).
    early_stopping, holdout_fraction, patience, validation_every
        See :class:`EarlyStoppingSettings`. With early stopping the ensemble starts
        empty (predictions only, start-up weight divided out) so that it can be
        validated from the first check.
    """

    iterations: int = 1000
    ema_beta: float = 0.99
    mask_ratio: float = 0.85
    learning_rate: float = 2e-3
    shuffle_factor: int = 1
    weights: str | Path | None = "shipped"
    width: int = 64
    scales: int = 5
    blend_noisy: bool = False

    def __post_init__(self) -> None:
        self._check_early_stopping()
        _check_ints(self, ("iterations", "shuffle_factor", "width", "scales"))
        if not isinstance(self.blend_noisy, bool):
            raise TypeError(f"blend_noisy must be True or False; got {self.blend_noisy!r}")
        if not 1 <= self.shuffle_factor <= 8:
            raise ValueError(f"shuffle_factor must be in [1, 8]; got {self.shuffle_factor}")
        if self.width < 1 or not 1 <= self.scales <= 8:
            raise ValueError("width must be >= 1 and scales in [1, 8]")
        _check_range("ema_beta", self.ema_beta, 0.0, 1.0, high_open=True)
        _check_range("mask_ratio", self.mask_ratio, 0.0, 1.0, low_open=True, high_open=True)
        _check_range("learning_rate", self.learning_rate, 0.0, 1.0, low_open=True)
        if self.weights is not None and not isinstance(self.weights, (str, Path)):
            raise TypeError(f"weights must be a path or None; got {self.weights!r}")

    @property
    def min_size(self) -> int:
        """Smallest plane height/width in pixels this configuration accepts."""
        return (2**self.scales + 1) * self.shuffle_factor



@dataclass(frozen=True)
class ZSN2NConfig:
    """Settings of Zero-Shot Noise2Noise (Mansour & Heckel, CVPR 2023).

    Attributes
    ----------
    iterations : int
        Optimisation steps per plane (2000 in the paper's comparisons).
    learning_rate : float
        Adam step size at the start.
    step_size, gamma : int, float
        The learning rate is multiplied by ``gamma`` every ``step_size`` iterations.
    hidden_channels : int
        Feature channels of the two 3x3 convolutions.
    """

    iterations: int = 2000
    learning_rate: float = 1e-3
    step_size: int = 1500
    gamma: float = 0.5
    hidden_channels: int = 48

    def __post_init__(self) -> None:
        _check_ints(self, ("iterations", "step_size", "hidden_channels"))
        _check_range("learning_rate", self.learning_rate, 0.0, 1.0, low_open=True)
        _check_range("gamma", self.gamma, 0.0, 1.0, low_open=True)

    @property
    def min_size(self) -> int:
        """Smallest plane side in pixels: the 2x downsampled pair must be at least 4x4."""
        return 8


@dataclass(frozen=True)
class ZSN2MConfig:
    """Settings of Zero-Shot Noise2Mean (ZS-N2M, digest section 4).

    The paper gives the loss weights only; the rest are this project's choices,
    justified where they are used (``methods/zs_n2m.py``) and listed in the README.

    Attributes
    ----------
    iterations : int
        Total steps per plane, both stages together.
    refine_share : float
        Share of ``iterations`` spent on stage 2 (the GRD network); 0 stops after
        stage 1 (the paper's ZS-N2M*).
    learning_rate, refine_learning_rate : float
        Adam step sizes of the MBD network (stage 1) and the GRD network (stage 2).
    alpha_ie, alpha_cm, alpha_id : float
        Weights of the interactive-equality, cross-mapping and interactive-denoising
        losses (paper: 10 for real noise, 5, 10).
    beta_re, beta_con : float
        Weights of stage 2's reconstruction and consistency losses (paper: 100, 1000).
    window : int
        Side of the local-statistics window of the interactive-denoising loss (pixels).
    contrast_constant : float
        Stabiliser of the contrast-similarity map d (SSIM's C2 for unit range).
    hidden_channels : int
        Feature channels of the MBD network.
    """

    iterations: int = 2500
    refine_share: float = 0.2
    learning_rate: float = 1e-3
    refine_learning_rate: float = 5e-4
    alpha_ie: float = 10.0
    alpha_cm: float = 5.0
    alpha_id: float = 10.0
    beta_re: float = 100.0
    beta_con: float = 1000.0
    window: int = 5
    contrast_constant: float = 9e-4
    hidden_channels: int = 48

    def __post_init__(self) -> None:
        _check_ints(self, ("iterations", "window", "hidden_channels"))
        if self.window % 2 == 0:
            raise ValueError(f"window must be odd; got {self.window}")
        _check_range("refine_share", self.refine_share, 0.0, 1.0, high_open=True)
        _check_range("learning_rate", self.learning_rate, 0.0, 1.0, low_open=True)
        _check_range("refine_learning_rate", self.refine_learning_rate, 0.0, 1.0, low_open=True)
        for name in ("alpha_ie", "alpha_cm", "alpha_id", "beta_re", "beta_con", "contrast_constant"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0; got {getattr(self, name)}")

    @property
    def refine_iterations(self) -> int:
        """Stage-2 steps within ``iterations``."""
        return int(round(self.iterations * self.refine_share))

    @property
    def min_size(self) -> int:
        """Smallest plane side: the half-size images must hold the statistics window."""
        return 2 * self.window + 2


@dataclass(frozen=True)
class INSBSNConfig(EarlyStoppingSettings):
    """Settings of INS-BSN, blind-spot denoising via implicit neural sampling.

    Attributes
    ----------
    iterations : int
        Optimisation steps per plane (1200 in the paper).
    learning_rate : float
        Adam step size of the denoiser (the Noise2Noise U-Net).
    siren_learning_rate : float
        Adam step size of the implicit neural representation (the SIREN).
    visible_fraction : float
        Probability ``p0`` that a pixel is visible (shown to the denoiser as it is)
        in an iteration. 0.1 is the paper's setting for spatially correlated camera
        noise; pixel-independent noise does better with larger values (0.3-0.5).
    dilation : int
        Times the visible mask is dilated with a 3x3 cross to exclude the visible
        pixels' neighbourhood from the supervised set; 0 supervises every pixel that
        is not visible (the paper's "w/o" ablation).
    siren_width, siren_layers : int
        Width of the SIREN and its number of sine layers (before a linear output).
    siren_dropout : float
        Dropout probability after each sine layer while the SIREN trains.
    ema_beta : float
        Weight of the running average in the masked EMA that is the output.
    early_stopping, holdout_fraction, patience, validation_every
        See :class:`EarlyStoppingSettings`; held-out pixels enter neither the SIREN's
        nor the denoiser's loss.
    """

    iterations: int = 1200
    learning_rate: float = 4e-4
    siren_learning_rate: float = 1e-4
    visible_fraction: float = 0.1
    dilation: int = 2
    siren_width: int = 128
    siren_layers: int = 3
    siren_dropout: float = 0.1
    ema_beta: float = 0.99

    def __post_init__(self) -> None:
        self._check_early_stopping()
        _check_ints(self, ("iterations", "siren_width", "siren_layers"))
        _check_ints(self, ("dilation",), minimum=0)
        if not 0 <= self.dilation <= 8:
            raise ValueError(f"dilation must be in [0, 8]; got {self.dilation}")
        _check_range("learning_rate", self.learning_rate, 0.0, 1.0, low_open=True)
        _check_range("siren_learning_rate", self.siren_learning_rate, 0.0, 1.0, low_open=True)
        _check_range("visible_fraction", self.visible_fraction, 0.0, 1.0, low_open=True, high_open=True)
        _check_range("siren_dropout", self.siren_dropout, 0.0, 1.0, high_open=True)
        _check_range("ema_beta", self.ema_beta, 0.0, 1.0, high_open=True)

    @property
    def min_size(self) -> int:
        """Smallest plane side in pixels: the U-Net's reflection padding to 32 needs 16."""
        return 16
