"""Reading checkpoint files safely and naming them by content (shared by all loaders)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_checkpoint_file(path: Path) -> Any:
    """Unpickle ``path`` safely (tensors and plain containers only) on the CPU."""
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means "not a checkpoint"
        # torch's own message can be a bare number (a KeyError on a garbage byte), so name its type.
        raise ValueError(f"{path} is not a readable PyTorch checkpoint ({type(exc).__name__}: {exc})") from exc
