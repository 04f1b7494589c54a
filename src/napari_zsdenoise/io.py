"""Reading and (atomically) writing image files."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

TIFF_SUFFIXES = (".tif", ".tiff")
READABLE_SUFFIXES = TIFF_SUFFIXES + (".png",)


def read_image(path: str | Path) -> np.ndarray:
    """Read a TIFF (any dtype, any ndim) or an 8/16-bit grayscale PNG."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in TIFF_SUFFIXES:
        import tifffile

        return tifffile.imread(path)
    if suffix == ".png":
        from skimage.io import imread

        return np.asarray(imread(path))
    raise ValueError(f"cannot read {path}: supported suffixes are {', '.join(READABLE_SUFFIXES)}")


def write_tiff_atomic(path: str | Path, data: np.ndarray, *, metadata: dict[str, Any] | None = None, overwrite: bool = False) -> Path:
    """Write ``data`` to ``path`` via a temporary file in the same folder and a rename.

    A crash or Ctrl-C never leaves a half-written file under the final name. ``metadata``
    is stored as JSON in the TIFF ImageDescription.

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is False.
    """
    import tifffile

    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True (CLI: --overwrite) to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        description = json.dumps(metadata or {}, default=str)
        tifffile.imwrite(temporary, data, description=description, metadata=None)
        # mkstemp creates the file private (0600); give it the permissions of any new file.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def read_tiff_metadata(path: str | Path) -> dict[str, Any]:
    """Return the JSON provenance written by :func:`write_tiff_atomic` (empty if none)."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        text = tif.pages[0].description
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}
