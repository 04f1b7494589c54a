"""Settings and presets of Zero-Shot Noise2Mean (no torch import here)."""

from __future__ import annotations

from dataclasses import dataclass

from napari_zsdenoise.methods.base import MethodSpec
from napari_zsdenoise.methods.zs_n2n.settings import MAX_HIDDEN_CHANNELS, fewer_channels_advice
from napari_zsdenoise.settings import MethodSettings, setting

CITATION = ("Liu, Shi, Zhang, Li, Zhang: Zero-Shot Noise2Mean: Gap Minimization for Efficient Denoising "
            "from a Single Noisy Image. AAAI 2025")


@dataclass(frozen=True)
class ZSN2MConfig(MethodSettings):
    """Settings of Zero-Shot Noise2Mean (ZS-N2M, digest section 4).

    The paper gives the loss weights only; the rest are this project's choices,
    justified where they are used (``methods/zs_n2m/method.py``).
    """

    iterations: int = setting(2500, "Total steps per plane, both stages together.", low=1, changes_step_cost=False)
    refine_share: float = setting(
        0.2, "Share of the iterations spent on stage 2 (the GRD U-Net); 0 stops after stage 1 (ZS-N2M*).",
        label="refinement share", low=0.0, high=1.0, high_open=True)
    learning_rate: float = setting(1e-3, "Adam step size of the MBD network (stage 1).",
                                   low=0.0, high=1.0, low_open=True, advanced=True, changes_step_cost=False)
    refine_learning_rate: float = setting(5e-4, "Adam step size of the GRD network (stage 2).",
                                          low=0.0, high=1.0, low_open=True, advanced=True,
                                          applies_when="refine_share", changes_step_cost=False)
    alpha_ie: float = setting(10.0, "Weight of the interactive-equality loss (paper: 10 for real noise).",
                              low=0.0, advanced=True, changes_step_cost=False)
    alpha_cm: float = setting(5.0, "Weight of the cross-mapping loss (paper: 5).", low=0.0, advanced=True,
        changes_step_cost=False)
    alpha_id: float = setting(10.0, "Weight of the interactive-denoising loss (paper: 10).", low=0.0, advanced=True,
        changes_step_cost=False)
    beta_re: float = setting(100.0, "Weight of stage 2's reconstruction loss (paper: 100).", low=0.0, advanced=True,
        applies_when="refine_share", changes_step_cost=False)
    beta_con: float = setting(1000.0, "Weight of stage 2's consistency loss (paper: 1000).", low=0.0, advanced=True,
        applies_when="refine_share", changes_step_cost=False)
    window: int = setting(5, "Side of the local-statistics window of the interactive-denoising loss (odd, pixels).",
                          low=1, advanced=True)
    contrast_constant: float = setting(9e-4, "Stabiliser of the contrast-similarity map (SSIM's C2 for unit range).",
                                       low=0.0, advanced=True, changes_step_cost=False)
    hidden_channels: int = setting(
        48, f"Feature channels of the MBD network (48, ZS-N2N's network); at most {MAX_HIDDEN_CHANNELS} "
        "(8 times the paper's), as memory and time grow with them.", low=1, high=MAX_HIDDEN_CHANNELS, advanced=True)

    def check(self) -> None:
        if self.window % 2 == 0:
            raise ValueError(f"window must be odd; got {self.window}")

    @property
    def refine_iterations(self) -> int:
        """Stage-2 steps within ``iterations``."""
        return int(round(self.iterations * self.refine_share))

    @property
    def min_size(self) -> int:
        """Smallest plane side: the half-size images must hold the statistics window."""
        return 2 * self.window + 2

    @property
    def out_of_memory_advice(self) -> str:
        return fewer_channels_advice(self.hidden_channels)


_IMPLEMENTATION = "napari_zsdenoise.methods.zs_n2m.method:ZSN2MMethod"
PRESETS = (
    MethodSpec("zs-n2m", "Zero-Shot Noise2Mean: MBD stage (2000 it) then GRD U-Net refinement (500 it); slow on CPU",
               _IMPLEMENTATION, ZSN2MConfig(), CITATION, hint="two stages, slow on CPU"),
    MethodSpec("zs-n2m-fast", "Zero-Shot Noise2Mean* (MBD stage only, 2000 iterations; CPU-friendly)",
               _IMPLEMENTATION, ZSN2MConfig(iterations=2000, refine_share=0.0), CITATION,
               hint="stage 1 only (ZS-N2M*), lighter on CPU"),
)
