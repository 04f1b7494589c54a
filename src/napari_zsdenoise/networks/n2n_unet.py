"""The U-Net of Noise2Noise (Lehtinen et al., ICML 2018, appendix table 2).

Encoder: two 3x3 convs of 48 channels at full resolution, then five max-pool stages
with one 48-channel conv each. Decoder: at each of five stages nearest x2 upsampling,
concatenation with the encoder features of that resolution (the input itself at the
last stage) and two 3x3 convs (96 channels; 64 and 32 at the last stage), then a
linear 3x3 conv to the output channels. LeakyReLU(0.1) after every other conv. About
0.99M parameters for one input and one output channel.

Five poolings need sides that are a multiple of 32: the input is reflection padded up
to that (split between both sides, so planes down to 16 pixels work) and the output
cropped back, so any H x W >= 16 keeps its shape.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_ENCODER_WIDTH = 48
_DECODER_WIDTH = 96
_POOLINGS = 5
_SIDE_MULTIPLE = 2**_POOLINGS
_SLOPE = 0.1


def _conv(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, padding=1)


class N2NUNet(nn.Module):
    """Noise2Noise U-Net mapping (B, in_channels, H, W) to (B, out_channels, H, W)."""

    def __init__(self, in_channels: int = 1, out_channels: int = 1) -> None:
        super().__init__()
        e, d = _ENCODER_WIDTH, _DECODER_WIDTH
        self.in_channels, self.out_channels = in_channels, out_channels
        self.input_convs = nn.ModuleList([_conv(in_channels, e), _conv(e, e)])
        # encoder_convs[k] runs after pooling k+1 (the last one at 1/32 resolution).
        self.encoder_convs = nn.ModuleList([_conv(e, e) for _ in range(_POOLINGS)])
        # decoder_stages[k] fuses the 1/2**(4-k) skip features; the deepest fuses two 48s.
        decoder_inputs = [2 * e] + [d + e] * (_POOLINGS - 2)
        self.decoder_stages = nn.ModuleList([nn.ModuleList([_conv(c, d), _conv(d, d)]) for c in decoder_inputs])
        self.output_convs = nn.ModuleList([_conv(d + in_channels, 64), _conv(64, 32)])
        self.output = _conv(32, out_channels)
        self._initialise()

    def _initialise(self) -> None:
        # He initialisation for LeakyReLU, as in the Noise2Noise paper; torch's default
        # is weaker and slows the first iterations of a 17-conv-deep network.
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, a=_SLOPE, nonlinearity="leaky_relu")
                nn.init.zeros_(module.bias)
        nn.init.kaiming_normal_(self.output.weight, nonlinearity="linear")

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        height, width = image.shape[-2:]
        pad_rows, pad_cols = (-height) % _SIDE_MULTIPLE, (-width) % _SIDE_MULTIPLE
        top, left = pad_rows // 2, pad_cols // 2
        if pad_rows or pad_cols:
            image = F.pad(image, (left, pad_cols - left, top, pad_rows - top), mode="reflect")

        features = image
        for conv in self.input_convs:
            features = F.leaky_relu(conv(features), _SLOPE)
        skips = [image]
        for conv in self.encoder_convs:
            skips.append(F.max_pool2d(features, 2))
            features = F.leaky_relu(conv(skips[-1]), _SLOPE)
        # skips: input, then pools 1..5; the pool-5 output only feeds encoder_convs[-1].
        skips.pop()
        for stage in self.decoder_stages:
            features = torch.cat([F.interpolate(features, scale_factor=2, mode="nearest"), skips.pop()], dim=1)
            for conv in stage:
                features = F.leaky_relu(conv(features), _SLOPE)
        features = torch.cat([F.interpolate(features, scale_factor=2, mode="nearest"), skips.pop()], dim=1)
        for conv in self.output_convs:
            features = F.leaky_relu(conv(features), _SLOPE)
        output = self.output(features)
        return output[..., top : top + height, left : left + width]
