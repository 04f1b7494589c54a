"""Scoring as the denoising papers do, and finding noisy/clean pairs.

Protocol: images scaled to [0, 1] by their integer type's maximum (8-bit: /255), the
denoised output clipped to [0, 1], PSNR and SSIM with ``data_range=1``.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path

import numpy as np

from napari_zsdenoise.io import READABLE_SUFFIXES, read_image

CROP_ORIGINS = ("centre", "top-left")


def to_unit_range(image: np.ndarray) -> np.ndarray:
    """Scale integer images by their dtype's maximum; leave float images as they are."""
    if np.issubdtype(image.dtype, np.integer):
        return image.astype(np.float64) / np.iinfo(image.dtype).max
    return image.astype(np.float64)


def check_crop_origin(origin: str) -> None:
    if origin not in CROP_ORIGINS:
        raise ValueError(f"crop origin must be one of {CROP_ORIGINS}, not {origin!r}")


def centre_crop(image: np.ndarray, size: int | None, origin: str = "centre") -> np.ndarray:
    """The ``size`` x ``size`` crop of the last two axes, centred or at the top-left corner.

    Papers differ here: the MPI authors' FMD script takes the top-left corner.
    """
    if size is None:
        return image
    check_crop_origin(origin)
    height, width = image.shape[-2:]
    if size > min(height, width):
        raise ValueError(f"crop {size} is larger than the image ({height}x{width})")
    top, left = ((height - size) // 2, (width - size) // 2) if origin == "centre" else (0, 0)
    return image[..., top : top + size, left : left + size]


def score(estimate: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """PSNR (dB) and SSIM of ``estimate`` clipped to [0, 1] against ``reference``."""
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    estimate = np.clip(estimate, 0.0, 1.0)
    return (
        float(peak_signal_noise_ratio(reference, estimate, data_range=1.0)),
        float(structural_similarity(reference, estimate, data_range=1.0)),
    )


def find_pairs(pairs_dir: str | Path, pattern: str = "*") -> list[tuple[Path, Path]]:
    """Matching ``raw/NAME`` and ``gt/NAME`` files, sorted by name."""
    root = Path(pairs_dir)
    raw_dir, gt_dir = root / "raw", root / "gt"
    if not raw_dir.is_dir() or not gt_dir.is_dir():
        raise FileNotFoundError(f"{root} must contain raw/ and gt/ folders")
    pairs = []
    for raw in sorted(raw_dir.iterdir()):
        if raw.suffix.lower() in READABLE_SUFFIXES and fnmatch.fnmatch(raw.name, pattern):
            clean = gt_dir / raw.name
            if clean.is_file():
                pairs.append((raw, clean))
    if not pairs:
        raise FileNotFoundError(f"no raw/gt pairs matching {pattern!r} in {root}")
    return pairs


def load_pair(raw_path: Path, gt_path: Path, crop: int | None, origin: str = "centre") -> tuple[np.ndarray, np.ndarray]:
    """The noisy and clean images of a pair in unit range, cropped alike."""
    noisy = centre_crop(to_unit_range(read_image(raw_path)), crop, origin)
    clean = centre_crop(to_unit_range(read_image(gt_path)), crop, origin)
    return noisy, clean
