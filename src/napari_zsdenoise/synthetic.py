"""Seeded simulations of fluorescence images: structures, optics and camera noise.

Used for the bundled samples, for tests that must measure a real improvement, and as
a procedural source of clean training images.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def _smooth_path(rng: np.random.Generator, shape: tuple[int, ...], steps: int, stiffness: float) -> np.ndarray:
    """A persistent random walk (a filament's centre line), in pixel coordinates."""
    ndim = len(shape)
    position = rng.uniform(0, 1, ndim) * np.array(shape)
    direction = rng.normal(size=ndim)
    points = []
    for _ in range(steps):
        direction = stiffness * direction / np.linalg.norm(direction) + (1 - stiffness) * rng.normal(size=ndim)
        if ndim == 3:
            direction[0] *= 0.3  # filaments lie mostly in the focal plane
        position = position + 0.7 * direction / np.linalg.norm(direction)
        points.append(position.copy())
    return np.array(points)


def _splat(volume: np.ndarray, points: np.ndarray, weight: float) -> None:
    index = np.round(points).astype(int)
    inside = np.all((index >= 0) & (index < np.array(volume.shape)), axis=1)
    np.add.at(volume, tuple(index[inside].T), weight)


def fluorescence_phantom(shape: tuple[int, ...] = (256, 256), *, seed: int = 0, psf_sigma: float = 1.3) -> np.ndarray:
    """A clean, blurred fluorescence-like image (2-D or 3-D) with values in [0, 1].

    Contains cells with membranes and dim nuclei, cytoskeletal filaments and bright
    puncta, blurred by a Gaussian PSF of ``psf_sigma`` pixels laterally (3x axially for
    3-D) and a weak uniform background.
    """
    if len(shape) not in (2, 3) or min(shape) < 8:
        raise ValueError(f"shape must be 2-D or 3-D with sides >= 8; got {shape}")
    rng = np.random.default_rng(seed)
    grid = np.indices(shape, dtype=np.float64)
    image = np.zeros(shape)
    lateral = np.array(shape[-2:], dtype=float)
    scale = lateral.mean()
    for _ in range(rng.integers(3, 6)):
        centre = rng.uniform(0.15, 0.85, len(shape)) * np.array(shape)
        radii = rng.uniform(0.12, 0.22, len(shape)) * scale
        if len(shape) == 3:
            radii[0] = shape[0] * rng.uniform(0.3, 0.45)
        distance = np.sqrt(sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii)))
        image += 0.35 * np.exp(-((distance - 1.0) ** 2) / 0.004)  # membrane
        image += 0.12 * (distance < 0.45) * (1 + 0.3 * np.sin(grid[-1] / 3.0 + rng.uniform(0, 6)))  # nucleus
    filaments = np.zeros(shape)
    for _ in range(rng.integers(25, 40)):
        _splat(filaments, _smooth_path(rng, shape, int(rng.integers(60, 240)), 0.92), rng.uniform(0.5, 1.0))
    image += ndimage.gaussian_filter(filaments, 0.6)
    puncta = np.zeros(shape)
    count = int(rng.integers(40, 90) * (shape[0] / 16 if len(shape) == 3 else 1))
    _splat(puncta, rng.uniform(0, 1, (count, len(shape))) * np.array(shape), 1.0)
    image += ndimage.gaussian_filter(puncta, 0.8) * rng.uniform(3, 6)
    sigma = (3 * psf_sigma, psf_sigma, psf_sigma) if len(shape) == 3 else psf_sigma
    image = ndimage.gaussian_filter(image, sigma)
    image = 0.03 + 0.97 * image / image.max()
    return image.astype(np.float64)


def poisson_gaussian_noise(
    clean: np.ndarray,
    *,
    peak_photons: float = 30.0,
    read_noise: float = 2.0,
    offset: float = 100.0,
    seed: int = 0,
) -> np.ndarray:
    """Simulate a camera frame of ``clean`` (values in [0, 1]).

    Photon counts are Poisson with mean ``clean * peak_photons``; Gaussian read noise
    of ``read_noise`` counts and a camera ``offset`` are added. Returns float64 counts;
    the noise-free expectation is ``clean * peak_photons + offset``.
    """
    if peak_photons <= 0 or read_noise < 0:
        raise ValueError("peak_photons must be > 0 and read_noise >= 0")
    rng = np.random.default_rng(seed)
    photons = rng.poisson(np.clip(clean, 0, None) * peak_photons).astype(np.float64)
    return photons + rng.normal(0.0, read_noise, clean.shape) + offset
