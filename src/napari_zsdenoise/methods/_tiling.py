"""Sub-images, tiles and crops of a plane, shared by the methods that train on parts of it (MPI, MID).

A plane with spatially correlated noise is split into pixel-shuffled sub-images (one per pixel phase);
a plane too large for the device is predicted in tiles with a margin of context; a larger plane starts
training on its most detailed crop.
"""

from __future__ import annotations

import numpy as np
import torch

from napari_zsdenoise.methods._ensemble import Region

__all__ = ["fill_tiles", "merge_subimages", "most_structured_crop", "split_subimages", "subimage_region"]


def split_subimages(plane: torch.Tensor, factor: int) -> torch.Tensor:
    """(1, C, H, W) -> (factor**2, C, H/factor, W/factor): one sub-image per pixel phase."""
    if factor == 1:
        return plane
    _, channels, height, width = plane.shape
    phases = plane.reshape(channels, height // factor, factor, width // factor, factor)
    return phases.permute(2, 4, 0, 1, 3).reshape(factor * factor, channels, height // factor, width // factor)


def merge_subimages(subimages: torch.Tensor, factor: int) -> torch.Tensor:
    """Inverse of :func:`split_subimages`."""
    if factor == 1:
        return subimages
    _, channels, height, width = subimages.shape
    phases = subimages.reshape(factor, factor, channels, height, width)
    return phases.permute(2, 3, 0, 4, 1).reshape(1, channels, height * factor, width * factor)


def fill_tiles(shape: tuple[int, int], tile: int, margin: int) -> list[tuple[Region, Region]]:
    """Tiles covering a plane of ``shape``: (core, context) pairs, the cores a partition of the
    plane, each context its core plus ``margin`` pixels on every side that the plane has."""
    height, width = shape
    tiles = []
    for top in range(0, height, tile):
        for left in range(0, width, tile):
            bottom, right = min(top + tile, height), min(left + tile, width)
            core = (slice(top, bottom), slice(left, right))
            context = (slice(max(0, top - margin), min(height, bottom + margin)),
                       slice(max(0, left - margin), min(width, right + margin)))
            tiles.append((core, context))
    return tiles


def most_structured_crop(plane: np.ndarray, side: int, multiple: int = 1) -> Region:
    """The square crop of ``side`` (cut to the plane) with the most detail: the largest mean squared
    difference between neighbouring 4x4 bins.

    Binning averages most of the noise away, so what the differences measure is edges and texture,
    the part of the plane a network learns the most from; a crop half on structure and half on flat
    background scores lower than one full of structure. Candidate corners lie on a grid of a
    quarter of the side, multiples of ``multiple`` (the shuffle factor), plus the far edges.
    """
    height, width = plane.shape
    crop_height, crop_width = min(side, height), min(side, width)
    crop_height, crop_width = (size if size == full else size // multiple * multiple
                               for size, full in ((crop_height, height), (crop_width, width)))
    stride = max(multiple, side // 4 // multiple * multiple)

    def corners(full: int, size: int) -> list[int]:
        last = (full - size) // multiple * multiple
        return sorted({*range(0, last + 1, stride), last})

    binning = 4
    binned = np.asarray(plane[: height // binning * binning, : width // binning * binning], dtype=np.float64)
    binned = binned.reshape(height // binning, binning, width // binning, binning).mean(axis=(1, 3))
    detail = np.zeros_like(binned)
    detail[:, 1:] += np.diff(binned, axis=1) ** 2
    detail[1:, :] += np.diff(binned, axis=0) ** 2
    best, best_score = (0, 0), -1.0
    for top in corners(height, crop_height):
        for left in corners(width, crop_width):
            # The first row and column of a window hold differences to bins outside it.
            window = detail[top // binning + 1: (top + crop_height) // binning,
                            left // binning + 1: (left + crop_width) // binning]
            score = float(window.mean()) if window.size else 0.0
            if score > best_score:
                best, best_score = (top, left), score
    top, left = best
    return slice(top, top + crop_height), slice(left, left + crop_width)


def subimage_region(within: tuple[tuple[int, int], Region], factor: int) -> tuple[torch.Size, Region]:
    """A crop of a plane of the given shape, as a (shape, region) of the plane's shuffled sub-images."""
    (height, width), (rows, columns) = within
    padded = torch.Size((factor * factor, 1, -(-height // factor), -(-width // factor)))

    def cut(part: slice, full: int) -> slice:
        start, stop = part.start or 0, full if part.stop is None else part.stop
        return slice(None) if (start, stop) == (0, full) else slice(start // factor, stop // factor)

    return padded, (cut(rows, height), cut(columns, width))
