"""ZS-N2M's GRD network: the Noise2Noise U-Net on any plane size, predicting the clean image."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from napari_zsdenoise.networks.n2n_unet import N2NUNet


class RefinementUNet(nn.Module):
    """The GRD network: a U-Net predicting the clean image directly.

    Not residual: ``z - unet(z)`` would pass the within-2x2-block noise of the
    full-size input straight through, because both stage-2 losses only ever see 2x2
    averages of the full-size output.
    """

    def __init__(self) -> None:
        super().__init__()
        self.unet = N2NUNet(1, 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        height, width = image.shape[-2:]
        pad_bottom, pad_right = (-height) % 32, (-width) % 32
        mode = "reflect" if pad_bottom < height and pad_right < width else "replicate"
        padded = F.pad(image, (0, pad_right, 0, pad_bottom), mode=mode) if pad_bottom or pad_right else image
        return self.unet(padded)[..., :height, :width]
