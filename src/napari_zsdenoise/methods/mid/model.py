"""The MID network, its masked prediction, and its versioned model file.

The network is the package's skip hourglass with two inputs, the masked plane ``M * y``
and the mask ``M`` (so that a hidden pixel is not mistaken for a dark one), and one
output. The model file is a ``torch.save`` of plain containers and tensors (read back
with ``weights_only``): the network's state and constructor arguments, the noise model
of its last training round and a model card saying what it was trained on and how.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from napari_zsdenoise.networks.checkpoint_files import (
    check_architecture,
    file_sha256,
    load_state_exactly,
    read_checkpoint_file,
    unreadable,
)
from napari_zsdenoise.networks.hourglass import SkipHourglass

MODEL_FORMAT = "napari-zsdenoise/mid-model"
MODEL_VERSION = 1


def new_network(width: int, scales: int, seed: int) -> SkipHourglass:
    """A randomly initialised MID network, the same for the same seed (the global RNG is left alone)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return SkipHourglass(1, 1, width=width, scales=scales, output_channels=1)


def every_nth_pixel(factor: int) -> str:
    """``factor`` in words for messages: "every second pixel" for 2."""
    ordinals = {1: "", 2: "second ", 3: "third ", 4: "fourth "}
    return f"every {ordinals.get(factor, f'{factor}th ')}pixel"


def check_plane_size(network: torch.nn.Module, shape: tuple[int, ...], pixel_shuffle: int = 1) -> None:
    """ValueError unless a plane of ``shape`` is large enough for ``network``'s scales (in sub-planes)."""
    smallest = (2**network.scales + 1) * pixel_shuffle
    if min(shape[-2:]) < smallest:
        shuffled = f", on sub-planes of {every_nth_pixel(pixel_shuffle)}," if pixel_shuffle > 1 else ""
        raise ValueError(f"MID's network ({network.scales} scales{shuffled}) needs planes of at least {smallest} "
                         f"pixels a side; got {tuple(shape[-2:])}")


def subplanes(plane: np.ndarray, factor: int) -> list[np.ndarray]:
    """The ``factor**2`` sub-planes of every ``factor``-th pixel of a 2-D ``plane`` (rows and columns
    beyond a multiple of ``factor`` left out), split as :func:`predict_masked_subplanes` splits a plane."""
    from napari_zsdenoise.methods._tiling import split_subimages

    height, width = (plane.shape[0] // factor) * factor, (plane.shape[1] // factor) * factor
    whole = torch.from_numpy(np.ascontiguousarray(plane[:height, :width]))[None, None]
    return [part[0].numpy() for part in split_subimages(whole, factor)]


@torch.no_grad()
def predict_masked(network: torch.nn.Module, plane: torch.Tensor, keep: torch.Tensor, *, tile: int = 0) -> torch.Tensor:
    """The network's prediction of the whole (1, 1, H, W) ``plane`` from its pixels where ``keep`` is 1.

    With ``tile`` the plane is predicted in tiles of that side, each from a context that
    reaches ``2**(scales + 1)`` pixels further; the mask is the one mask of the whole plane.
    """
    from napari_zsdenoise.methods._tiling import fill_tiles

    keep = keep.to(plane.dtype)
    masked = plane * keep
    height, width = plane.shape[-2:]
    if not tile or (tile >= height and tile >= width):
        return network(masked, keep)
    output = torch.empty_like(plane)
    for core, context in fill_tiles((height, width), tile, 2 ** (network.scales + 1)):
        part = network(masked[..., context[0], context[1]], keep[..., context[0], context[1]])
        top, left = core[0].start - context[0].start, core[1].start - context[1].start
        output[..., core[0], core[1]] = part[..., top:top + core[0].stop - core[0].start,
                                             left:left + core[1].stop - core[1].start]
    return output


def predict_masked_subplanes(network: torch.nn.Module, plane: torch.Tensor, keep: torch.Tensor, pixel_shuffle: int,
                             *, tile: int = 0) -> torch.Tensor:
    """:func:`predict_masked` of the (1, 1, H, W) ``plane``'s ``pixel_shuffle**2`` sub-planes, as one batch,
    put back in place; H and W must be multiples of ``pixel_shuffle``."""
    from napari_zsdenoise.methods._tiling import merge_subimages, split_subimages

    if pixel_shuffle == 1:
        return predict_masked(network, plane, keep, tile=tile)
    prediction = predict_masked(network, split_subimages(plane, pixel_shuffle),
                                split_subimages(keep.to(plane.dtype), pixel_shuffle), tile=tile)
    return merge_subimages(prediction, pixel_shuffle)


def save_model(network: SkipHourglass, path: str | Path, *, noise_model: dict[str, Any],
               model_card: dict[str, Any], pixel_shuffle: int = 1) -> Path:
    """Write the model file (through a temporary file and a rename, so a crash never leaves half a file).

    ``pixel_shuffle``: the network was trained on sub-planes of every ``pixel_shuffle``-th
    pixel, and denoises planes the same way.
    """
    path = Path(path)
    payload = {
        "format": MODEL_FORMAT,
        "version": MODEL_VERSION,
        "architecture": {"image_channels": network.image_channels, "mask_channels": network.mask_channels,
                         "width": network.width, "scales": network.scales,
                         "output_channels": network.output_channels},
        "state_dict": {key: value.detach().cpu().clone() for key, value in network.state_dict().items()},
        "noise_model": dict(noise_model),
        "model_card": dict(model_card),
        "pixel_shuffle": int(pixel_shuffle),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        torch.save(payload, temporary)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def _read_payload(path: Path) -> dict[str, Any]:
    from napari_zsdenoise.methods.mid.settings import NEEDS_MODEL

    payload = read_checkpoint_file(path)
    if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
        raise unreadable(path, f"not a MID model file; {NEEDS_MODEL}")
    if payload.get("version") != MODEL_VERSION:
        raise unreadable(path, f"it is MID model file version {payload.get('version')!r}; this release reads "
                               f"version {MODEL_VERSION}")
    return payload


def load_model(path: str | Path) -> tuple[SkipHourglass, dict[str, Any]]:
    """Rebuild the network of a MID model file (on the CPU, in eval mode) and describe the file.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        One line, ``cannot read weights from PATH: REASON``, if it is not a MID model file of this
        version, or does not fit the network.
    """
    from napari_zsdenoise.methods._shared_settings import HOURGLASS_MAX_SCALES, HOURGLASS_MAX_WIDTH

    path = Path(path)
    payload = _read_payload(path)
    architecture = check_architecture(
        path, payload.get("architecture"), ("image_channels", "mask_channels", "width", "scales", "output_channels"),
        network="MID network", max_width=HOURGLASS_MAX_WIDTH, max_scales=HOURGLASS_MAX_SCALES)
    network = SkipHourglass(**architecture)
    load_state_exactly(network, payload.get("state_dict"), path, network_name="MID network")
    network.eval()
    card = payload.get("model_card", {})
    summary = {key: card[key] for key in ("sources", "rounds", "iterations_per_round", "seconds", "device")
               if key in card}
    # Files written before sub-planes existed were trained on whole planes.
    pixel_shuffle = payload.get("pixel_shuffle", 1)
    if isinstance(pixel_shuffle, bool) or not isinstance(pixel_shuffle, int) or not 1 <= pixel_shuffle <= 8:
        raise unreadable(path, f"it gives a pixel_shuffle of {pixel_shuffle!r}; it must be a whole number from 1 to 8")
    info = {"source": "MID model file", "path": str(path), "sha256": file_sha256(path),
            "format": f"{MODEL_FORMAT} v{MODEL_VERSION}", "noise_model": payload.get("noise_model", {}),
            "pixel_shuffle": pixel_shuffle, "trained_mask_ratio": trained_mask_ratio(card), "model_card": summary}
    return network, info


# Files whose card lacks the masking schedule were trained with the first release's last round, 0.5-0.7.
_FIRST_RELEASE_LAST_ROUND = (0.5, 0.7)


def trained_mask_ratio(card: dict[str, Any]) -> float:
    """The middle of the fraction hidden in the model's last training round: the network knows inputs
    masked that much best, so its passes hide as much by default."""
    schedule = card.get("masking_schedule") or [_FIRST_RELEASE_LAST_ROUND]
    low, high = schedule[-1]
    return (float(low) + float(high)) / 2


def read_model_card(path: str | Path) -> dict[str, Any]:
    """The whole model card of a MID model file."""
    return dict(_read_payload(Path(path)).get("model_card", {}))
