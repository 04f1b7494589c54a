"""Reading and (atomically) writing image files, with the physical layout microscopy readers expect."""

from __future__ import annotations

import json
import os
import tempfile
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

TIFF_SUFFIXES = (".tif", ".tiff")
READABLE_SUFFIXES = TIFF_SUFFIXES + (".png",)
#: Private TIFF tag holding the provenance as JSON (an ImageJ file's description is ImageJ's own).
PROVENANCE_TAG = 65000
# Axes an ImageJ hyperstack may have, in the order it requires.
_IMAGEJ_AXES = "TZCYX"
_DEFAULT_AXES = {2: "YX", 3: "ZYX", 4: "TZYX", 5: "TZCYX"}
# Micrometres per TIFF resolution unit (2: inch, 3: centimetre).
_MICRONS_PER_RESOLUTION_UNIT = {2: 25_400.0, 3: 10_000.0}


@dataclass(frozen=True)
class ImageInfo:
    """The physical layout of an image file, for the output to carry over.

    Attributes
    ----------
    axes : str or None
        Axis letters (T, Z, C, Y, X), last two Y and X, when the file says.
    pixel_size : (float, float) or None
        Pixel height and width in ``unit``.
    z_spacing : float or None
        Distance between z planes in ``unit``.
    unit : str or None
        Length unit, e.g. ``"um"``.
    """

    axes: str | None = None
    pixel_size: tuple[float, float] | None = None
    z_spacing: float | None = None
    unit: str | None = None

    def for_planes(self, ndim: int) -> ImageInfo:
        """The same layout for an output of ``ndim`` dimensions (e.g. one plane of a stack: Y, X)."""
        axes = self.axes[-ndim:] if self.axes and len(self.axes) >= ndim else None
        return ImageInfo(axes, self.pixel_size, self.z_spacing if axes and "Z" in axes else None, self.unit)


def read_image(path: str | Path, *, lazy: bool = False) -> np.ndarray:
    """Read a TIFF (any dtype, any ndim) or an 8/16-bit grayscale PNG.

    With ``lazy``, an uncompressed TIFF is memory-mapped read-only instead of loaded, so
    a stack is read plane by plane as it is used (other files are loaded as usual).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        For another suffix, or a file that cannot be decoded (the message names the file).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in READABLE_SUFFIXES:
        raise ValueError(f"cannot read {path}: supported suffixes are {', '.join(READABLE_SUFFIXES)}")
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    try:
        if suffix in TIFF_SUFFIXES:
            import tifffile

            if lazy:
                try:
                    return tifffile.memmap(path, mode="r")
                except ValueError:
                    pass  # compressed or not contiguous: cannot be mapped, so load it
            return tifffile.imread(path)
        from skimage.io import imread

        return np.asarray(imread(path))
    except Exception as exc:  # noqa: BLE001 - any decoding failure: say which file and why
        raise ValueError(f"cannot read {path}: {type(exc).__name__}: {exc}") from exc


def _ome_info(xml_text: str) -> ImageInfo:
    try:
        root = ElementTree.fromstring(xml_text)
    except ElementTree.ParseError:
        return ImageInfo()
    pixels = next((element for element in root.iter() if element.tag.endswith("Pixels")), None)
    if pixels is None:
        return ImageInfo()

    def size(axis: str) -> float | None:
        value = pixels.get(f"PhysicalSize{axis}")
        return float(value) if value else None

    unit = pixels.get("PhysicalSizeXUnit", "µm")
    height, width = size("Y"), size("X")
    return ImageInfo(None, (height, width) if height and width else None, size("Z"), unit)


def read_image_info(path: str | Path) -> ImageInfo:
    """The axes, pixel size, z spacing and unit a TIFF (ImageJ, OME or plain resolution tags) records."""
    path = Path(path)
    if path.suffix.lower() not in TIFF_SUFFIXES:
        return ImageInfo()
    import tifffile

    with tifffile.TiffFile(path) as tif:
        axes = tif.series[0].axes if tif.series else None
        page = tif.pages[0]
        if tif.is_ome and tif.ome_metadata:
            ome = _ome_info(tif.ome_metadata)
            return ImageInfo(axes if axes and set(axes) <= set(_IMAGEJ_AXES) else None, ome.pixel_size, ome.z_spacing,
                             ome.unit)
        imagej = tif.imagej_metadata or {}
        resolution = [page.tags[name].value if name in page.tags else None for name in ("YResolution", "XResolution")]
        resolution_unit = int(page.tags["ResolutionUnit"].value) if "ResolutionUnit" in page.tags else 1
    axes = axes if axes and set(axes) <= set(_IMAGEJ_AXES) else None
    pixels_per_unit = [numerator / denominator if value and (numerator := value[0]) and (denominator := value[1]) else None
                       for value in resolution]
    unit, pixel_size = imagej.get("unit"), None
    if None not in pixels_per_unit:
        if unit:
            pixel_size = (1.0 / pixels_per_unit[0], 1.0 / pixels_per_unit[1])
        elif resolution_unit in _MICRONS_PER_RESOLUTION_UNIT:
            microns = _MICRONS_PER_RESOLUTION_UNIT[resolution_unit]
            pixel_size, unit = (microns / pixels_per_unit[0], microns / pixels_per_unit[1]), "um"
    spacing = imagej.get("spacing")
    return ImageInfo(axes, pixel_size, float(spacing) if spacing else None, unit)


def imagej_axes(info: ImageInfo | None, ndim: int) -> str | None:
    """Axes for an ImageJ hyperstack of ``ndim`` dimensions, or None if ImageJ cannot hold it."""
    axes = info.axes if info is not None and info.axes and len(info.axes) == ndim else _DEFAULT_AXES.get(ndim)
    if axes is None or not axes.endswith("YX") or len(set(axes)) != len(axes):
        return None
    return axes if [_IMAGEJ_AXES.index(a) for a in axes] == sorted(_IMAGEJ_AXES.index(a) for a in axes) else _DEFAULT_AXES.get(ndim)


def write_tiff_atomic(path: str | Path, data: np.ndarray, *, metadata: dict[str, Any] | None = None,
                      overwrite: bool = False, info: ImageInfo | None = None) -> Path:
    """Write ``data`` to ``path`` via a temporary file in the same folder and a rename.

    A crash or Ctrl-C never leaves a half-written file under the final name. The image is
    written grey (never as RGB): as an ImageJ hyperstack (axes, pixel size, z spacing and
    unit from ``info``) when it has at most five dimensions, else as a multi-page TIFF
    whose description records the shape. ``metadata`` (the provenance) is stored as JSON in a private tag
    (:data:`PROVENANCE_TAG`), read back by :func:`read_tiff_metadata`.

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
        provenance = json.dumps(metadata or {}, default=str)
        options: dict[str, Any] = {"photometric": "minisblack",
                                   "extratags": [(PROVENANCE_TAG, "s", 0, provenance, True)]}
        axes = imagej_axes(info, data.ndim) if data.dtype in (np.float32, np.uint8, np.uint16) else None
        if axes is not None:
            imagej_metadata: dict[str, Any] = {"axes": axes}
            if info is not None and info.unit:
                imagej_metadata["unit"] = info.unit
            if info is not None and info.z_spacing and "Z" in axes:
                imagej_metadata["spacing"] = info.z_spacing
            options.update(imagej=True, metadata=imagej_metadata)
        else:
            options.update(metadata={})  # tifffile's own description keeps the shape
        if info is not None and info.pixel_size:
            options["resolution"] = (1.0 / info.pixel_size[1], 1.0 / info.pixel_size[0])
        tifffile.imwrite(temporary, data, **options)
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
    """Return the JSON provenance written by :func:`write_tiff_atomic` (empty if none).

    Files from earlier releases kept it in the ImageDescription; those are read too.
    """
    import tifffile

    with tifffile.TiffFile(path) as tif:
        tag = tif.pages[0].tags.get(PROVENANCE_TAG)
        text = tag.value if tag is not None else tif.pages[0].description
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}
