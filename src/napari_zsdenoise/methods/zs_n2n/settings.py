"""Settings and preset of Zero-Shot Noise2Noise (no torch import here)."""

from __future__ import annotations

from dataclasses import dataclass

from napari_zsdenoise.methods.base import MethodSpec
from napari_zsdenoise.settings import MethodSettings, setting

#: 8 times the paper's 48 (ZS-N2M's MBD network is the same network, with the same bound).
MAX_HIDDEN_CHANNELS = 384

def fewer_channels_advice(hidden_channels: int) -> str:
    """What lowers the memory of a network of ``hidden_channels`` trained on the whole plane (ZS-N2N, ZS-N2M)."""
    smaller = "" if hidden_channels < 16 else (
        f"use fewer feature channels (hidden_channels={hidden_channels // 2}, CLI --hidden-channels "
        f"{hidden_channels // 2}), or ")
    return smaller + "denoise a smaller region of the image (the method trains on the whole plane)"


CITATION = "Mansour, Heckel: Zero-Shot Noise2Noise: Efficient Image Denoising without any Data. CVPR 2023"


@dataclass(frozen=True)
class ZSN2NConfig(MethodSettings):
    """Settings of Zero-Shot Noise2Noise (Mansour & Heckel, CVPR 2023)."""

    iterations: int = setting(2000, "Optimisation steps per plane (2000 in the paper's comparisons).", low=1,
        changes_step_cost=False)
    learning_rate: float = setting(1e-3, "Adam step size at the start.", low=0.0, high=1.0, low_open=True,
                                   advanced=True, changes_step_cost=False)
    step_size: int = setting(1500, "The learning rate is multiplied by gamma every this many iterations.",
                             label="schedule step", low=1, advanced=True, changes_step_cost=False)
    gamma: float = setting(0.5, "Factor of the learning-rate schedule.", label="schedule gamma",
                           low=0.0, high=1.0, low_open=True, advanced=True, changes_step_cost=False)
    hidden_channels: int = setting(
        48, f"Feature channels of the two 3x3 convolutions (48 in the paper); at most {MAX_HIDDEN_CHANNELS} "
        "(8 times that), as memory and time grow with them.", low=1, high=MAX_HIDDEN_CHANNELS, advanced=True)

    @property
    def min_size(self) -> int:
        """Smallest plane side in pixels: the 2x downsampled pair must be at least 4x4."""
        return 8

    @property
    def out_of_memory_advice(self) -> str:
        return fewer_channels_advice(self.hidden_channels)


PRESETS = (
    MethodSpec("zs-n2n", "Zero-Shot Noise2Noise (Mansour & Heckel 2023): downsampled pairs, 2000 iterations, "
               "tiny network (fast on CPU)", "napari_zsdenoise.methods.zs_n2n.method:ZSN2NMethod", ZSN2NConfig(),
               CITATION, hint="tiny network, fast per iteration"),
)
