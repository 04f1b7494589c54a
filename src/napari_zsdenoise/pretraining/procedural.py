"""Procedural clean images for masked pre-training: dead leaves and fluorescence scenes.

Both generators are seeded by a :class:`numpy.random.Generator` and return float32
planes in [0, 1]. They carry no licence question, and the fluorescence scenes add the
structures (thin filaments, sub-resolution puncta, membranes, dim nuclei, blurred by a
point-spread function over a wide intensity range) that natural photographs lack.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from napari_zsdenoise.synthetic import _smooth_path, _splat


def dead_leaves(shape: tuple[int, int], rng: np.random.Generator, *, max_discs: int = 2000) -> np.ndarray:
    """Occluding discs with power-law radii (r^-3), the classic scale-invariant image model.

    Discs are painted back to front so later ones occlude earlier ones; a light blur
    (0 to 1.5 px) stands in for optics so edges are not always pixel-sharp.
    """
    height, width = shape
    image = np.full(shape, rng.uniform(0, 1), dtype=np.float32)
    r_min, r_max = 1.5, max(height, width) / 3
    # Inverse-CDF sampling of p(r) ~ r^-3 on [r_min, r_max].
    u = rng.uniform(0, 1, max_discs)
    radii = (r_min**-2 - u * (r_min**-2 - r_max**-2)) ** -0.5
    centres_y = rng.uniform(-r_max / 2, height + r_max / 2, max_discs)
    centres_x = rng.uniform(-r_max / 2, width + r_max / 2, max_discs)
    values = rng.uniform(0, 1, max_discs).astype(np.float32)
    for radius, cy, cx, value in zip(radii, centres_y, centres_x, values):
        y0, y1 = max(int(cy - radius), 0), min(int(cy + radius) + 1, height)
        x0, x1 = max(int(cx - radius), 0), min(int(cx + radius) + 1, width)
        if y0 >= y1 or x0 >= x1:
            continue
        yy, xx = np.ogrid[y0:y1, x0:x1]
        inside = (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2
        image[y0:y1, x0:x1][inside] = value
    blur = rng.uniform(0, 1.5)
    if blur > 0.3:
        image = ndimage.gaussian_filter(image, blur)
    return np.clip(image, 0, 1).astype(np.float32)


def fluorescence_scene(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A random fluorescence field of view: any mix of cells, filaments and puncta.

    Each structure class is present with probability 0.5-0.8 and has its own
    brightness drawn log-uniformly over two decades, so dim filaments next to saturated
    puncta occur as often as the reverse. A Gaussian PSF (sigma 0.6-3 px), a smooth
    background and a random gamma (0.5-2) widen the range further.
    """
    height, width = shape
    scale = (height + width) / 2
    yy, xx = np.indices(shape, dtype=np.float32)

    def brightness() -> float:
        return float(10 ** rng.uniform(-2, 0))

    image = np.zeros(shape, dtype=np.float32)
    if rng.uniform() < 0.7:
        for _ in range(int(rng.integers(1, 8))):
            cy, cx = rng.uniform(0, height), rng.uniform(0, width)
            ry, rx = rng.uniform(0.08, 0.35, 2) * scale
            angle = rng.uniform(0, np.pi)
            dy, dx = yy - cy, xx - cx
            u = (dy * np.cos(angle) + dx * np.sin(angle)) / ry
            v = (-dy * np.sin(angle) + dx * np.cos(angle)) / rx
            distance = np.sqrt(u**2 + v**2)
            thickness = rng.uniform(0.002, 0.02)
            image += brightness() * np.exp(-((distance - 1.0) ** 2) / thickness)
            if rng.uniform() < 0.6:
                texture = 1 + 0.3 * ndimage.gaussian_filter(rng.normal(size=shape).astype(np.float32), rng.uniform(1, 4))
                image += brightness() * (distance < rng.uniform(0.3, 0.6)) * texture
    if rng.uniform() < 0.7:
        filaments = np.zeros(shape, dtype=np.float64)
        for _ in range(int(rng.integers(5, 60))):
            path = _smooth_path(rng, shape, int(rng.integers(20, 4 * int(scale))), rng.uniform(0.8, 0.97))
            _splat(filaments, path, rng.uniform(0.3, 1.0))
        image += brightness() * ndimage.gaussian_filter(filaments, rng.uniform(0.4, 1.0)).astype(np.float32)
    if rng.uniform() < 0.6:
        puncta = np.zeros(shape, dtype=np.float64)
        count = int(rng.integers(5, max(6, int(height * width / 200))))
        _splat(puncta, rng.uniform(0, 1, (count, 2)) * np.array(shape), 1.0)
        puncta = ndimage.gaussian_filter(puncta, rng.uniform(0.5, 1.2))
        image += brightness() * 3 * puncta.astype(np.float32)
    image = ndimage.gaussian_filter(image, rng.uniform(0.6, 3.0))
    gradient = (yy * rng.normal() + xx * rng.normal()) / scale
    background = rng.uniform(0, 0.05) * (1 + 0.5 * np.tanh(gradient))
    image = image + background.astype(np.float32) * max(float(image.max()), 1e-3)
    image = image / max(float(image.max()), 1e-6)
    image = image ** rng.uniform(0.5, 2.0)
    return np.clip(image, 0, 1).astype(np.float32)


PROCEDURAL_KINDS = {"dead-leaves": dead_leaves, "fluorescence": fluorescence_scene}


def procedural_image(shape: tuple[int, int], rng: np.random.Generator, kind: str | None = None) -> np.ndarray:
    """One procedural image of ``kind`` (or of a kind drawn at random, equal odds)."""
    if kind is None:
        kind = str(rng.choice(sorted(PROCEDURAL_KINDS)))
    try:
        generator = PROCEDURAL_KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown procedural kind {kind!r}; choose from {sorted(PROCEDURAL_KINDS)}") from None
    return generator(shape, rng)
