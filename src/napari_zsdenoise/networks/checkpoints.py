"""Versioned checkpoint files for the MPI hourglass network."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from napari_zsdenoise.methods._shared_settings import HOURGLASS_MAX_SCALES, HOURGLASS_MAX_WIDTH
from napari_zsdenoise.networks.checkpoint_files import (
    check_architecture,
    file_sha256,
    load_state_exactly,
    read_checkpoint_file,
    unreadable,
)
from napari_zsdenoise.networks.hourglass import SkipHourglass
from napari_zsdenoise.networks.official import is_official_checkpoint, load_official_mpi
from napari_zsdenoise.weights import SHIPPED, shipped_model_card, shipped_weights_path

__all__ = ["file_sha256", "load_hourglass", "load_weights", "read_checkpoint_file", "save_hourglass"]

CHECKPOINT_FORMAT = "napari-zsdenoise/mpi-hourglass"
CHECKPOINT_VERSION = 1


def save_hourglass(network: SkipHourglass, path: str | Path, *, extra: dict[str, Any] | None = None) -> None:
    """Write ``network`` with its architecture so that :func:`load_hourglass` can rebuild it."""
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "architecture": {
            "image_channels": network.image_channels,
            "mask_channels": network.mask_channels,
            "width": network.width,
            "scales": network.scales,
        },
        "state_dict": {k: v.detach().cpu().clone() for k, v in network.state_dict().items()},
        "extra": dict(extra or {}),
    }
    torch.save(payload, Path(path))


def load_hourglass(path: str | Path) -> tuple[SkipHourglass, dict[str, Any]]:
    """Rebuild a network saved by :func:`save_hourglass`, or from an official MPI ``.pth``.

    Returns the network (on the CPU) and a provenance dict (path, sha256, extra).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        One line, ``cannot read weights from PATH: REASON``, if the file is not a checkpoint of this
        format and version or does not fit the network.
    """
    path = Path(path)
    payload = read_checkpoint_file(path)
    if is_official_checkpoint(payload):
        network, info = load_official_mpi(path, payload)
        return network, {**info, "sha256": file_sha256(path)}
    if isinstance(payload, dict) and payload.get("format") == "napari-zsdenoise/mid-model":
        raise unreadable(path, "it is a MID model file (`zsdenoise fit-dataset`), for the method mid, not MPI weights")
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise unreadable(path, "not an MPI hourglass checkpoint (neither this package's, tagged "
                               f"{CHECKPOINT_FORMAT!r}, nor an official MPI .pth with its 'params')")
    if payload.get("version") != CHECKPOINT_VERSION:
        raise unreadable(path, f"it is checkpoint version {payload.get('version')!r}; this release reads version "
                               f"{CHECKPOINT_VERSION}")
    architecture = check_architecture(path, payload.get("architecture"),
                                      ("image_channels", "mask_channels", "width", "scales"), network="MPI hourglass",
                                      max_width=HOURGLASS_MAX_WIDTH, max_scales=HOURGLASS_MAX_SCALES)
    network = SkipHourglass(**architecture)
    load_state_exactly(network, payload.get("state_dict"), path, network_name="MPI hourglass")
    info = {"path": str(path), "sha256": file_sha256(path), **payload.get("extra", {})}
    return network, info


def load_weights(weights: str | Path) -> tuple[SkipHourglass, dict[str, Any]]:
    """Load ``weights`` (``"shipped"`` or a checkpoint path) and describe where they came from."""
    if str(weights) != SHIPPED:
        return load_hourglass(weights)
    path = shipped_weights_path()
    card = shipped_model_card()
    network, info = load_hourglass(path)
    if info.get("sha256") != card.get("sha256"):
        raise ValueError(f"shipped weights {path} do not match their model card (sha256); reinstall napari-zsdenoise")
    summary = {key: card.get(key) for key in ("name", "iterations", "batch", "crop", "seed", "wall_time_seconds", "device")}
    return network, {"source": "shipped", "sha256": info["sha256"], "model_card": summary, "mask_recipe": card["recipe"]["mask"]}
