"""The skip-connected hourglass network used by MPI (after Deep Image Prior).

Five scales of 64 channels. At each scale the input feeds a 1x1 *skip* branch and a
*deeper* branch (stride-2 3x3 conv, 3x3 conv, the next scale, nearest x2 upsampling);
the two are concatenated (centre-cropped to the smaller size, so any H x W works),
then normalised and fused by a 3x3 and a 1x1 conv. A 1x1 conv and a sigmoid make the
output, so predictions live in [0, 1].

The order in which parameters are registered matches the published MPI checkpoints,
which lets a loader map their state dicts onto this module position by position.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn


class ReflectionPad(nn.Module):
    """Reflection padding of ``pad`` pixels on every side, in the input's dtype.

    Under CPU autocast torch pads in float32, so every padded bfloat16 activation would be
    cast up and then back down by the convolution that follows; padding only copies values,
    so doing it in the input's dtype gives the same numbers without the two casts.
    """

    def __init__(self, pad: int) -> None:
        super().__init__()
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return F.pad(x, (self.pad,) * 4, mode="reflect")


def _conv(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> nn.Sequential:
    # Reflection padding avoids the dark borders zero padding gives on fluorescence data.
    pad = (kernel_size - 1) // 2
    layers: list[nn.Module] = []
    if pad:
        layers.append(ReflectionPad(pad))
    layers.append(nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, bias=True))
    return nn.Sequential(*layers)


def _norm_act(channels: int) -> nn.Sequential:
    return nn.Sequential(nn.BatchNorm2d(channels), nn.LeakyReLU(0.2, inplace=True))


def _crop_to(tensor: torch.Tensor, height: int, width: int) -> torch.Tensor:
    top = (tensor.shape[-2] - height) // 2
    left = (tensor.shape[-1] - width) // 2
    return tensor[..., top : top + height, left : left + width]


class _Scale(nn.Module):
    """One scale of the hourglass; ``inner`` is the next (coarser) scale or None."""

    def __init__(self, in_channels: int, width: int, inner: _Scale | None) -> None:
        super().__init__()
        self.skip = nn.Sequential(_conv(in_channels, width, 1), *_norm_act(width))
        self.down = nn.Sequential(
            _conv(in_channels, width, 3, stride=2),
            *_norm_act(width),
            _conv(width, width, 3),
            *_norm_act(width),
        )
        self.inner = inner
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.merge_norm = nn.BatchNorm2d(2 * width)
        self.fuse = nn.Sequential(
            _conv(2 * width, width, 3),
            *_norm_act(width),
            _conv(width, width, 1),
            *_norm_act(width),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.skip(x)
        deep = self.down(x)
        if self.inner is not None:
            deep = self.inner(deep)
        deep = self.up(deep)
        height = min(skip.shape[-2], deep.shape[-2])
        width = min(skip.shape[-1], deep.shape[-1])
        merged = torch.cat([_crop_to(skip, height, width), _crop_to(deep, height, width)], dim=1)
        return self.fuse(self.merge_norm(merged))


class SkipHourglass(nn.Module):
    """MPI's filling network.

    Parameters
    ----------
    image_channels : int
        Channels of the image to denoise (1 for grayscale microscopy).
    mask_channels : int
        Channels of the mask fed alongside the masked image: 1 for one mask shared by
        all image channels, ``image_channels`` for per-channel masks.
    width : int
        Feature channels at every scale.
    scales : int
        Number of stride-2 scales. The input must be larger than ``2**scales`` pixels
        on each side.
    output_channels : int, optional
        Channels predicted; by default ``image_channels``. One, with context planes as
        extra input channels: only the centre plane is predicted.
    """

    def __init__(self, image_channels: int = 1, mask_channels: int = 1, width: int = 64, scales: int = 5,
                 output_channels: int | None = None) -> None:
        super().__init__()
        if image_channels < 1 or mask_channels < 1 or width < 1 or scales < 1:
            raise ValueError("image_channels, mask_channels, width and scales must all be >= 1")
        self.image_channels = image_channels
        self.output_channels = output_channels or image_channels
        self.mask_channels = mask_channels
        self.width = width
        self.scales = scales
        inner: _Scale | None = None
        # Build from the coarsest scale outwards; the finest scale sees the network input.
        for level in reversed(range(scales)):
            in_channels = image_channels + mask_channels if level == 0 else width
            inner = _Scale(in_channels, width, inner)
        self.body = inner
        self.head = nn.Sequential(_conv(width, self.output_channels, 1), nn.Sigmoid())

    def forward(self, masked_image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Predict the full image from ``masked_image`` (B, C, H, W) and ``mask`` (B, 1 or C, H, W)."""
        return self.head(self.body(torch.cat([masked_image, mask], dim=1)))


@functools.lru_cache(maxsize=16)
def training_bytes_per_pixel(width: int, scales: int, image_channels: int = 1, mask_channels: int = 1) -> float:
    """Bytes a training step needs per input pixel: every layer's output at 4 bytes a value.

    The outputs are what the backward pass keeps; gradients are freed as it goes, so the
    peak stays close to this (in-place activations and transient padding make it an
    over-estimate rather than an under-estimate).

    Counted on a small probe network and input on the CPU, so it costs nothing on the device.
    """
    side = 2 ** (scales + 1)
    with torch.random.fork_rng(devices=[]):  # leave the caller's random stream alone
        network = SkipHourglass(image_channels, mask_channels, width=width, scales=scales)
    total = 0

    def count(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total
        if not list(module.children()) and isinstance(output, torch.Tensor):
            total += output.numel()

    for module in network.modules():
        module.register_forward_hook(count)
    with torch.no_grad():
        network(torch.zeros(1, image_channels, side, side), torch.ones(1, mask_channels, side, side))
    return 4 * total / (side * side)
