"""Versioned checkpoint files for the MPI hourglass network."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from napari_zsdenoise.networks.hourglass import SkipHourglass

CHECKPOINT_FORMAT = "napari-zsdenoise/mpi-hourglass"
CHECKPOINT_VERSION = 1


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


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


def read_checkpoint_file(path: Path) -> Any:
    """Unpickle ``path`` safely (tensors and plain containers only) on the CPU."""
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means "not a checkpoint"
        # torch's own message can be a bare number (a KeyError on a garbage byte), so name its type.
        raise ValueError(f"{path} is not a readable PyTorch checkpoint ({type(exc).__name__}: {exc})") from exc


def load_hourglass(path: str | Path) -> tuple[SkipHourglass, dict[str, Any]]:
    """Rebuild a network saved by :func:`save_hourglass`, or from an official MPI ``.pth``.

    Returns the network (on the CPU) and a provenance dict (path, sha256, extra).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not a checkpoint of this format/version or does not fit the network.
    """
    path = Path(path)
    payload = read_checkpoint_file(path)
    from napari_zsdenoise.networks.official import is_official_checkpoint, load_official_mpi

    if is_official_checkpoint(payload):
        network, info = load_official_mpi(path, payload)
        return network, {**info, "sha256": file_sha256(path)}
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a napari-zsdenoise MPI checkpoint (missing format tag {CHECKPOINT_FORMAT!r})")
    if payload.get("version") != CHECKPOINT_VERSION:
        raise ValueError(
            f"{path} has checkpoint version {payload.get('version')!r}; this release reads version {CHECKPOINT_VERSION}"
        )
    try:
        network = SkipHourglass(**payload["architecture"])
        network.load_state_dict(payload["state_dict"], strict=True)
    except (KeyError, TypeError, RuntimeError) as exc:
        raise ValueError(f"{path} does not match the MPI hourglass network: {exc}") from exc
    info = {"path": str(path), "sha256": file_sha256(path), **payload.get("extra", {})}
    return network, info
