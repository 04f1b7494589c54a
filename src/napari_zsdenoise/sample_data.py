"""Bundled simulated samples (npe2 sample-data providers; no napari import needed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np


def sample_folder() -> Path:
    """Where the sample TIFFs are: inside the installed package, else the source tree's top level."""
    packaged = Path(__file__).parent / "_sample_files"
    if packaged.is_dir():
        return packaged
    source_tree = Path(__file__).resolve().parents[2] / "sample_data"
    if source_tree.is_dir():
        return source_tree
    raise FileNotFoundError("the napari-zsdenoise sample images are missing from this installation")


def sample_path(name: str) -> Path:
    """Path of a bundled file, e.g. ``sample_path("cells2d_noisy.tif")``."""
    path = sample_folder() / name
    if not path.is_file():
        raise FileNotFoundError(f"no bundled sample named {name!r}")
    return path


def _load_pair(stem: str) -> list[tuple[np.ndarray, dict[str, Any], str]]:
    import tifffile

    layers = []
    for kind, colormap in (("clean", "gray"), ("noisy", "gray")):
        path = sample_path(f"{stem}_{kind}.tif")
        with tifffile.TiffFile(path) as tif:
            data = tif.asarray()
            info = json.loads(tif.pages[0].description or "{}")
        scale = info.get("pixel_size_um", [1.0] * data.ndim)
        layers.append(
            (
                data,
                {"name": f"{stem}_{kind}", "scale": scale, "colormap": colormap, "metadata": {"sample": info}},
                "image",
            )
        )
    return layers


def cells_2d() -> list[tuple[np.ndarray, dict[str, Any], str]]:
    """Simulated 256x256 fluorescence image: noisy camera frame (uint16) and its noise-free expectation."""
    return _load_pair("cells2d")


def cells_zstack() -> list[tuple[np.ndarray, dict[str, Any], str]]:
    """Simulated 12x128x128 fluorescence z-stack: noisy (uint16) and noise-free expectation."""
    return _load_pair("cells3d")
