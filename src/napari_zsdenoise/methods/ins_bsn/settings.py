"""Settings and preset of INS-BSN (no torch import here)."""

from __future__ import annotations

from dataclasses import dataclass

from napari_zsdenoise.methods._shared_settings import EarlyStoppingSettings
from napari_zsdenoise.methods.base import MethodSpec
from napari_zsdenoise.settings import setting

CITATION = "Quan, Zheng, Ma, Ji: Zero-Shot Blind-spot Image Denoising via Implicit Neural Sampling. CVPR 2025"


@dataclass(frozen=True)
class INSBSNConfig(EarlyStoppingSettings):
    """Settings of INS-BSN, blind-spot denoising via implicit neural sampling.

    With ``early_stopping`` (see :class:`EarlyStoppingSettings`) the held-out pixels enter
    neither the SIREN's nor the denoiser's loss.
    """

    iterations: int = setting(1200, "Optimisation steps per plane (1200 in the paper; a maximum with early stopping).",
                              low=1, changes_step_cost=False)
    learning_rate: float = setting(4e-4, "Adam step size of the denoiser (the Noise2Noise U-Net).",
                                   low=0.0, high=1.0, low_open=True, advanced=True, changes_step_cost=False)
    siren_learning_rate: float = setting(1e-4, "Adam step size of the implicit neural representation (the SIREN).",
                                         label="SIREN learning rate", low=0.0, high=1.0, low_open=True, advanced=True,
                                         changes_step_cost=False)
    visible_fraction: float = setting(
        0.1, "Probability p0 that a pixel is shown to the denoiser as it is in an iteration; 0.1 suits spatially "
        "correlated camera noise, 0.3-0.5 pixel-independent noise.", low=0.0, high=1.0, low_open=True, high_open=True)
    dilation: int = setting(
        2, "Times the visible mask is dilated with a 3x3 cross to keep the visible pixels' neighbours out of the "
        "supervised set; 0 supervises every pixel that is not visible.", low=0, high=8, advanced=True)
    # The SIREN is evaluated at every pixel of the plane, so its memory is pixels x width x layers: the bounds
    # are 8 times the paper's 128 x 3 (4 times the 256 channels, about 5 times the 5 layers of the SIREN paper).
    siren_width: int = setting(128, "Width of the SIREN (128 in the paper); at most 1024, as its memory grows with "
                               "width x layers x pixels.", label="SIREN width", low=1, high=1024, advanced=True)
    siren_layers: int = setting(3, "Sine layers of the SIREN (before a linear output; 3 in the paper); at most 24, "
                                "as its memory grows with width x layers x pixels.", label="SIREN layers",
                                low=1, high=24, advanced=True)
    siren_dropout: float = setting(0.1, "Dropout probability after each sine layer while the SIREN trains.",
                                   label="SIREN dropout", low=0.0, high=1.0, high_open=True, advanced=True,
                                   changes_step_cost=False)
    ema_beta: float = setting(0.99, "Weight of the running average in the masked EMA that is the output.",
                              label="EMA beta", low=0.0, high=1.0, high_open=True, advanced=True,
                              changes_step_cost=False)

    @property
    def min_size(self) -> int:
        """Smallest plane side in pixels: the U-Net's reflection padding to 32 needs 16."""
        return 16

    @property
    def out_of_memory_advice(self) -> str:
        """A smaller SIREN (it is evaluated at every pixel), or a smaller region: INS-BSN has no crops."""
        smaller = []
        if self.siren_width > 32:
            smaller.append(f"siren_width={self.siren_width // 2}")
        if self.siren_layers > 1:
            smaller.append(f"siren_layers={self.siren_layers - 1}")
        options = " ".join(f"--{item.replace('_', '-').replace('=', ' ')}" for item in smaller)
        siren = f"use a smaller SIREN ({', '.join(smaller)}, CLI {options}), or " if smaller else ""
        return siren + "denoise a smaller region of the image (INS-BSN trains on the whole plane)"


PRESETS = (
    # Early stopping, as for `mpi`: without it the ensemble peaks and then falls by
    # iteration 1000 on FMD crops (docs/design-notes.md, "Early stopping").
    MethodSpec("ins-bsn", "INS-BSN: blind-spot U-Net fed SIREN estimates of hidden pixels, p0 0.1, "
               "at most 1200 iterations, early stopping (slow on CPU)",
               "napari_zsdenoise.methods.ins_bsn.method:INSBSNMethod", INSBSNConfig(early_stopping=True), CITATION,
               hint="slow on CPU"),
)
