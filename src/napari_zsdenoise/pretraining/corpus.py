"""Where pre-training crops come from: image folders and a procedural pool.

Every crop is augmented (one of the 8 flips/90-degree rotations) and normalised
exactly like an inference plane (:class:`~napari_zsdenoise.normalization.IntensityScaling`,
percentiles 0.1/99.9 to [0.1, 0.9], then clipped to [0, 1]), so the network is trained
on the intensity distribution it will see when filling.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from napari_zsdenoise.normalization import IntensityScaling

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")


def _read_any(path: Path) -> np.ndarray:
    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        return np.asarray(tifffile.imread(path))
    from skimage.io import imread

    return np.asarray(imread(path))


def planes_from_image(image: np.ndarray) -> list[np.ndarray]:
    """Grayscale training planes from one image (float32, in the file's units).

    A colour image (last axis of length 3 or 4) gives its luminance (Rec. 601 weights)
    and each of its three channels; a grayscale image gives itself.
    """
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] in (3, 4):
        rgb = image[..., :3].astype(np.float32)
        luminance = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        return [luminance] + [np.ascontiguousarray(rgb[..., c]) for c in range(3)]
    if image.ndim == 2:
        return [image.astype(np.float32)]
    raise ValueError(f"cannot use an image of shape {image.shape} for pre-training")


def load_image_folders(folders: Sequence[str | Path], *, min_side: int) -> tuple[list[np.ndarray], list[str]]:
    """All planes of all images (recursively) under ``folders`` whose sides are >= ``min_side``."""
    planes: list[np.ndarray] = []
    names: list[str] = []
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"corpus folder not found: {folder}")
        files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise FileNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {folder}")
        for path in files:
            for plane in planes_from_image(_read_any(path)):
                if min(plane.shape) >= min_side:
                    planes.append(plane)
                    names.append(str(path))
    return planes, names


def augment(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One of the 8 symmetries of the square, uniformly."""
    crop = np.rot90(crop, int(rng.integers(4)))
    if rng.uniform() < 0.5:
        crop = crop[:, ::-1]
    return np.ascontiguousarray(crop)


def normalise_crop(crop: np.ndarray) -> np.ndarray:
    """Map a crop to the network's input range exactly as inference maps a plane."""
    scaled = IntensityScaling.fit(crop).normalize(crop)
    return np.clip(scaled, 0.0, 1.0)


def random_crop(plane: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    top = int(rng.integers(0, plane.shape[0] - size + 1))
    left = int(rng.integers(0, plane.shape[1] - size + 1))
    return plane[top : top + size, left : left + size]


class CropSampler:
    """Draws normalised, augmented ``size`` x ``size`` crops from folder and procedural planes.

    Parameters
    ----------
    folder_planes : list of 2-D arrays
        Planes read from image folders (may be empty).
    procedural_planes : list of 2-D arrays
        Pre-generated procedural planes (may be empty).
    procedural_fraction : float
        Probability that a crop comes from the procedural pool (when both are non-empty).
    size : int
        Crop side in pixels.
    """

    def __init__(
        self,
        folder_planes: list[np.ndarray],
        procedural_planes: list[np.ndarray],
        *,
        procedural_fraction: float,
        size: int,
    ) -> None:
        if not folder_planes and not procedural_planes:
            raise ValueError("the pre-training corpus is empty: give image folders and/or procedural images")
        too_small = [p.shape for p in folder_planes + procedural_planes if min(p.shape) < size]
        if too_small:
            raise ValueError(f"{len(too_small)} corpus plane(s) are smaller than the {size}px crop, e.g. {too_small[0]}")
        self.folder_planes = folder_planes
        self.procedural_planes = procedural_planes
        if not procedural_planes:
            procedural_fraction = 0.0
        elif not folder_planes:
            procedural_fraction = 1.0
        self.procedural_fraction = procedural_fraction
        self.size = size

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        pool = self.procedural_planes if rng.uniform() < self.procedural_fraction else self.folder_planes
        plane = pool[int(rng.integers(len(pool)))]
        return normalise_crop(augment(random_crop(plane, self.size, rng), rng))

    def batch(self, count: int, rng: np.random.Generator) -> np.ndarray:
        """(count, 1, size, size) float32 batch."""
        return np.stack([self.sample(rng) for _ in range(count)])[:, None]
