"""Load a user-supplied official MPI checkpoint (Ma et al.'s ``*_skip.pth``) into our network.

The authors' files hold a state dict under ``params`` whose tensors come in the same
order as :class:`~napari_zsdenoise.networks.hourglass.SkipHourglass` registers its own
(their names differ), so the mapping is by position, with every shape checked. This
package never downloads or bundles these files; their licence is unclear.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from napari_zsdenoise.networks.checkpoint_files import read_checkpoint_file
from napari_zsdenoise.networks.hourglass import SkipHourglass


def _architecture(params: dict[str, torch.Tensor]) -> dict[str, int]:
    tensors = list(params.values())
    first_conv = next(t for t in tensors if t.ndim == 4)
    last_conv = [t for t in tensors if t.ndim == 4][-1]
    image_channels = int(last_conv.shape[0])
    width = int(first_conv.shape[0])
    mask_channels = int(first_conv.shape[1]) - image_channels
    # Each scale has 5 convolutions (skip, two in the deeper branch, two after the
    # merge); the output head adds one.
    scales, leftover = divmod(sum(1 for t in tensors if t.ndim == 4) - 1, 5)
    if mask_channels < 1 or leftover or scales < 1:
        raise ValueError("the tensors do not describe a skip hourglass")
    return {"image_channels": image_channels, "mask_channels": mask_channels, "width": width, "scales": scales}


def is_official_checkpoint(payload: Any) -> bool:
    return isinstance(payload, dict) and isinstance(payload.get("params"), dict) and "format" not in payload


def official_to_hourglass(params: dict[str, torch.Tensor], *, source: str = "checkpoint") -> SkipHourglass:
    """Build a :class:`SkipHourglass` holding the tensors of an official ``params`` dict.

    Raises
    ------
    ValueError
        If the tensors do not map one-to-one, in order and by shape, onto the network.
    """
    if not params or not all(isinstance(v, torch.Tensor) for v in params.values()):
        raise ValueError(f"{source}: 'params' must map names to tensors")
    try:
        network = SkipHourglass(**_architecture(params))
    except (StopIteration, IndexError, ValueError) as exc:
        raise ValueError(f"{source} is not an MPI skip-hourglass checkpoint: {exc}") from exc
    ours = network.state_dict()
    if len(ours) != len(params):
        raise ValueError(f"{source} holds {len(params)} tensors; the MPI hourglass has {len(ours)}")
    mapped = {}
    for (name, target), (their_name, tensor) in zip(ours.items(), params.items()):
        if target.shape != tensor.shape:
            raise ValueError(
                f"{source}: tensor {their_name!r} has shape {tuple(tensor.shape)}, expected {tuple(target.shape)} "
                f"for {name!r}; this is not a skip-hourglass checkpoint"
            )
        mapped[name] = tensor.to(target.dtype)
    network.load_state_dict(mapped, strict=True)
    return network


def load_official_mpi(path: str | Path, payload: Any = None) -> tuple[SkipHourglass, dict[str, Any]]:
    """Load an official MPI ``.pth`` from ``path`` (or its already-loaded ``payload``)."""
    path = Path(path)
    if payload is None:
        payload = read_checkpoint_file(path)
    if not is_official_checkpoint(payload):
        raise ValueError(f"{path} has no 'params' state dict; it is not an official MPI checkpoint")
    network = official_to_hourglass(payload["params"], source=str(path))
    return network, {"format": "official MPI checkpoint", "path": str(path)}
