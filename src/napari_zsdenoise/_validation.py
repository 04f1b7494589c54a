"""Input checks that run before any torch work, so errors name the real problem."""

from __future__ import annotations

from typing import Any

import numpy as np


def check_image_array(image: Any, *, min_size: int = 1) -> tuple[int, ...]:
    """Validate the shape and dtype of an image-like array and return its shape.

    The last two axes are taken as Y, X; any leading axes are planes (z, t, ...).

    Raises
    ------
    TypeError
        If ``image`` has no shape/dtype, or its dtype is complex, boolean or not numeric.
    ValueError
        If it has fewer than 2 dimensions, no pixels, or planes smaller than ``min_size``.
    """
    if not hasattr(image, "shape") or not hasattr(image, "dtype"):
        try:
            image = np.asarray(image)
        except Exception as exc:  # noqa: BLE001 - anything unconvertible is a type problem
            raise TypeError(f"expected an array-like image, got {type(image).__name__}") from exc
    dtype = np.dtype(image.dtype)
    if np.issubdtype(dtype, np.complexfloating):
        raise TypeError(f"complex images are not supported (dtype {dtype}); pass the magnitude or real part")
    if dtype == np.bool_:
        raise TypeError("boolean images (masks) cannot be denoised; convert to a numeric intensity image")
    if not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)):
        raise TypeError(f"image dtype {dtype} is not a real numeric type")
    shape = tuple(int(s) for s in image.shape)
    if len(shape) < 2:
        raise ValueError(f"image must have at least 2 dimensions (…, Y, X); got shape {shape}")
    if 0 in shape:
        raise ValueError(f"image is empty (shape {shape})")
    height, width = shape[-2:]
    if width in (3, 4) and height > 4 * width:
        raise ValueError(
            f"image of shape {shape} looks like colour (RGB/RGBA in its last axis); colour is not supported: "
            f"denoise one channel at a time, e.g. image[..., 0], or move the channels to a leading axis "
            f"(np.moveaxis(image, -1, 0)) to denoise them as planes"
        )
    if height < min_size or width < min_size:
        raise ValueError(
            f"image planes are {height}x{width} pixels; this method needs at least {min_size}x{min_size}"
        )
    return shape


# float32 (the output type) keeps 24 significant bits.
_FLOAT32_BITS = 24
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def check_finite(plane: np.ndarray, *, where: str = "image", offset: float = 0.0) -> None:
    """Raise ValueError if ``plane`` holds NaN or infinite values, or values float32 output cannot hold.

    The output is float32 in the input's units less ``offset`` (a camera's baseline): values
    beyond float32's range would become infinite, and values far from zero that vary by little
    would lose that variation.
    """
    if np.issubdtype(plane.dtype, np.floating):
        bad = ~np.isfinite(plane)
        count = int(bad.sum())
        if count:
            raise ValueError(
                f"{where} contains {count} NaN or infinite value(s); replace them (e.g. with np.nan_to_num) first"
            )
    if not np.issubdtype(plane.dtype, np.number) or plane.size == 0:
        return
    low, high = float(np.min(plane)), float(np.max(plane))
    low, high = low - offset, high - offset
    if max(abs(low), abs(high)) > _FLOAT32_MAX:
        less = f" less the camera offset {offset:g}" if offset else ""
        raise ValueError(f"{where}{less} holds values up to {max(abs(low), abs(high)):.3g}, beyond float32's range "
                         f"(±{_FLOAT32_MAX:.3g}) that the output uses; " + ("check the offset" if offset else
                                                                             "rescale it first"))
    magnitude, span = max(abs(low), abs(high)), high - low
    if span > 0 and magnitude / span > 2.0 ** (_FLOAT32_BITS - 8):
        raise ValueError(f"{where} varies by only {span:.3g} around {magnitude:.3g}: float32 output would keep "
                         f"fewer than 8 bits of that; subtract an offset (e.g. image - image.min()) first")


#: Largest seed a run takes: each plane's seed is the run's plus the plane's index, and torch
#: and numpy take seeds below 2**64.
MAX_SEED = 2**62


def check_seed(seed: Any) -> int:
    """``seed`` as an int, or TypeError / ValueError naming the valid range."""
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int; got {seed!r}")
    if not 0 <= seed <= MAX_SEED:
        raise ValueError(f"seed must be in [0, {MAX_SEED}] (2**62); got {seed}")
    return int(seed)
