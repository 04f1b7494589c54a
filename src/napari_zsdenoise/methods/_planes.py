"""Moving one normalised plane between numpy and torch, padded for a network."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def plane_to_tensor(image: np.ndarray, device: torch.device, *, multiple: int = 1) -> torch.Tensor:
    """(H, W) array -> (1, 1, H', W') float32 tensor, reflection-padded at the bottom and
    right so that H' and W' are multiples of ``multiple``."""
    plane = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None].to(device)
    height, width = image.shape
    pad_bottom, pad_right = (-height) % multiple, (-width) % multiple
    if pad_bottom or pad_right:
        plane = F.pad(plane, (0, pad_right, 0, pad_bottom), mode="reflect")
    return plane


def tensor_to_plane(tensor: torch.Tensor, height: int, width: int) -> np.ndarray:
    """The top-left (height, width) of a (1, 1, H', W') tensor as a new float32 array."""
    return tensor[0, 0, :height, :width].detach().cpu().numpy().astype(np.float32, copy=True)
