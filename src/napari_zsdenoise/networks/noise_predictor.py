"""The small residual network of Zero-Shot Noise2Noise (Mansour & Heckel, CVPR 2023), also ZS-N2M's MBD network."""

from __future__ import annotations

import torch
from torch import nn


class NoisePredictor(nn.Module):
    """conv3x3 - LeakyReLU - conv3x3 - LeakyReLU - conv1x1, predicting the noise."""

    def __init__(self, channels: int = 1, hidden: int = 48) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(channels, hidden, 3, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(hidden, hidden, 3, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(hidden, channels, 1),
        )

    def denoise(self, image: torch.Tensor) -> torch.Tensor:
        return image - self.layers(image)
