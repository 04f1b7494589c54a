"""Reading and (atomically) writing image files, with the physical layout microscopy readers expect."""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
import unicodedata
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
# Axes an OME-TIFF may hold besides ImageJ's: angle, phase, tile, lifetime, lambda. tifffile's I and Q only
# say that it does not know what an axis is, so axes with them are not known.
_OME_AXES = _IMAGEJ_AXES + "APRHE"
_DEFAULT_AXES = {2: "YX", 3: "ZYX", 4: "TZYX", 5: "TZCYX"}
# Pixel types an ImageJ hyperstack may have.
_IMAGEJ_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32))
# Micrometres per TIFF resolution unit (2: inch, 3: centimetre).
_MICRONS_PER_RESOLUTION_UNIT = {2: 25_400.0, 3: 10_000.0}
# A TIFF resolution is a ratio of two unsigned 32-bit integers: no other pixel size can be written as one.
_RATIONAL_MAX = 2**32 - 1
# Length units by the spellings met in files (compared after NFKC normalisation, which turns the micro sign into
# the Greek mu and the angstrom sign into the letter, and lower-casing), each as its OME symbol.
_LENGTH_UNITS = {spelling: symbol for symbol, spellings in {
    "\u00b5m": ("\u03bcm", "um", "micron", "microns", "micrometer", "micrometers", "micrometre", "micrometres"),
    "nm": ("nm", "nanometer", "nanometers", "nanometre", "nanometres"),
    "mm": ("mm", "millimeter", "millimeters", "millimetre", "millimetres"),
    "cm": ("cm", "centimeter", "centimeters", "centimetre", "centimetres"),
    "m": ("m", "meter", "meters", "metre", "metres"),
    "pm": ("pm", "picometer", "picometers", "picometre", "picometres"),
    "\u00c5": ("\u00e5", "angstrom", "angstroms", "\u00e5ngstr\u00f6m", "\u00e5ngstr\u00f6ms", "\u00e5ngstrom"),
}.items() for spelling in spellings}
_METRES = {"\u00b5m": 1e-6, "nm": 1e-9, "mm": 1e-3, "cm": 1e-2, "m": 1.0, "pm": 1e-12, "\u00c5": 1e-10}
# Series kinds tifffile builds from the pages alone (no microscopy format's own layout): in these files pages of
# different shapes are separate images, of which reading one would silently drop the others.
_PLAIN_KINDS = frozenset({"generic", "shaped", "uniform"})
# PIL modes of a single grey channel (mode "1" is a 1-bit image, read as booleans).
_GREY_MODES = frozenset({"1", "L", "I", "F", "I;16", "I;16B", "I;16L", "I;16N"})
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class _Refused(ValueError):
    """A readable file this module will not turn into an image; the message is the whole explanation."""


@dataclass(frozen=True)
class ImageInfo:
    """The physical layout of an image file, for the output to carry over.

    Attributes
    ----------
    axes : str or None
        Axis letters, last two Y and X, when the file says: T, Z, C, Y, X, and in OME-TIFFs also A (angle),
        P (phase), R (tile), H (lifetime), E (lambda).
    pixel_size : (float, float) or None
        Pixel height and width in ``unit``.
    z_spacing : float or None
        Distance between z planes in ``unit``.
    unit : str or None
        Length unit as the file spells it, e.g. ``"um"``, ``"micron"`` or ``"\u00b5m"``.
    """

    axes: str | None = None
    pixel_size: tuple[float, float] | None = None
    z_spacing: float | None = None
    unit: str | None = None

    def for_planes(self, ndim: int) -> ImageInfo:
        """The same layout for an output of ``ndim`` dimensions (e.g. one plane of a stack: Y, X)."""
        axes = self.axes[-ndim:] if self.axes and len(self.axes) >= ndim else None
        return ImageInfo(axes, self.pixel_size, self.z_spacing if axes and "Z" in axes else None, self.unit)


def _checked_path(path: str | Path) -> Path:
    path = Path(path)
    if path.suffix.lower() not in READABLE_SUFFIXES:
        raise ValueError(f"cannot read {path}: supported suffixes are {', '.join(READABLE_SUFFIXES)}")
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    return path


def read_image(path: str | Path, *, lazy: bool = False) -> np.ndarray:
    """Read a TIFF (any dtype, any ndim) or a grey PNG.

    A TIFF gives its first full-resolution image (series): thumbnails and pyramid levels are skipped. A PNG gives
    its grey values in their own type (bool for 1-bit, uint8, uint16); a grey image stored as RGB, as RGBA or as
    grey with alpha, or through a grey palette, gives its one grey channel when the alpha is the same everywhere.
    A transparent colour (a PNG tRNS chunk) is ignored: it marks pixels without changing their values.

    With ``lazy``, an uncompressed TIFF is memory-mapped read-only instead of loaded, so
    a stack is read plane by plane as it is used (other files are loaded as usual).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        For another suffix, a file that cannot be decoded, a plain TIFF whose pages differ in shape, or a PNG
        in colour, with a varying alpha, with several frames, or of 16 bits with colour or alpha channels (the
        message is one line and names the file).
    """
    path = _checked_path(path)
    try:
        if path.suffix.lower() in TIFF_SUFFIXES:
            return _read_tiff(path, lazy=lazy)
        return _read_png(path)
    except _Refused:
        raise
    except Exception as exc:  # noqa: BLE001 - any decoding failure: say which file and why
        raise _unreadable(path, exc) from exc


def _unreadable(path: Path, error: Exception) -> ValueError:
    """One line that names ``path`` once: decoders often repeat it in their own message."""
    reason = str(error).replace(f"'{path}'", "the file").replace(str(path), "the file")
    return ValueError(f"cannot read {path}: {type(error).__name__}: {reason}")


def read_image_shape(path: str | Path) -> tuple[int, ...]:
    """The shape :func:`read_image` returns for ``path``, with the same refusals, from the file's header.

    No pixels are loaded, except those of a PNG that is not stored grey (RGB, grey with alpha, palette): whether
    it holds one grey channel is in its pixels.

    Raises
    ------
    FileNotFoundError, ValueError
        As :func:`read_image`.
    """
    path = _checked_path(path)
    try:
        if path.suffix.lower() in TIFF_SUFFIXES:
            import tifffile

            with tifffile.TiffFile(path) as tif:
                index = _full_resolution_series(tif, path, refuse=True)
                images = _same_shaped_images(tif)
                shape = tuple(int(n) for n in tif.series[index].shape)
                return (len(images), *shape) if len(images) > 1 else shape
        return _read_png(path, header_only=True)
    except _Refused:
        raise
    except Exception as exc:  # noqa: BLE001 - as read_image
        raise _unreadable(path, exc) from exc


def _read_tiff(path: Path, *, lazy: bool) -> np.ndarray:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        index = _full_resolution_series(tif, path, refuse=True)
        images = _same_shaped_images(tif)
        if len(images) > 1:
            return np.stack([tif.asarray(series=each) for each in images])
        if not lazy:
            return tif.asarray(series=index)
        try:
            return tifffile.memmap(path, series=index, mode="r")
        except ValueError:
            return tif.asarray(series=index)  # compressed or not contiguous: cannot be mapped, so load it


def _shape_text(shapes: list[tuple[int, ...]]) -> str:
    shown = ", ".join("x".join(str(n) for n in shape) for shape in shapes[:6])
    return shown + (", \u2026" if len(shapes) > 6 else "")


def _full_resolution_series(tif: Any, path: Path, *, refuse: bool) -> int:
    """The index of the series :func:`read_image` reads: the first that is not a reduced image (thumbnail).

    With ``refuse``, a plain TIFF (no OME or ImageJ layout) whose full-resolution pages or images differ in shape
    raises :class:`_Refused`. tifffile's own choice is kept for the microscopy formats, whose further series are
    other images the format describes (e.g. an OME file's other positions).
    """
    series = tif.series
    full = [index for index, each in enumerate(series)
            if each.keyframe is not None and not each.keyframe.is_reduced]
    if not full:
        return 0
    if refuse and series[full[0]].kind in _PLAIN_KINDS:
        parts = []
        for index in full:
            each = series[index]
            if each.kind not in _PLAIN_KINDS:
                continue
            parts.append(each)
            if each.kind == "generic":
                # tifffile files a smaller page of a plain TIFF as a pyramid level of the first when its size is
                # a simple fraction; a real level is marked reduced (NewSubfileType) or lies in a SubIFD.
                parts += [level for level in each.levels[1:]
                          if not level.keyframe.is_reduced and not level.keyframe.is_subifd]
        page_shapes = list(dict.fromkeys(tuple(part.keyframe.shape) for part in parts))
        if len(page_shapes) > 1:
            raise _Refused(f"{path} holds pages of different shapes ({_shape_text(page_shapes)}): "
                           f"save each page as a file of its own")
        shapes = list(dict.fromkeys(tuple(part.shape) for part in parts))
        if len(shapes) > 1:
            raise _Refused(f"{path} holds images of different shapes ({_shape_text(shapes)}): "
                           f"save each image as a file of its own")
    return full[0]


def _same_shaped_images(tif: Any) -> list[int]:
    """The full-resolution series of a plain TIFF written image by image (each page its own series, all of one
    shape, as :func:`_full_resolution_series` leaves them): read together, they are the stack the file holds."""
    series = tif.series
    full = [index for index, each in enumerate(series)
            if each.keyframe is not None and not each.keyframe.is_reduced and each.kind in _PLAIN_KINDS]
    if len(full) < 2 or len({(tuple(series[i].shape), str(series[i].dtype)) for i in full}) > 1:
        return []
    return full


def _png_bit_depth(path: Path) -> int | None:
    """The bit depth in a PNG's header (IHDR), or None if ``path`` is not a PNG."""
    with open(path, "rb") as handle:
        header = handle.read(26)
    if len(header) < 26 or not header.startswith(_PNG_SIGNATURE) or header[12:16] != b"IHDR":
        return None
    return header[24]


def _read_png(path: Path, *, header_only: bool = False) -> Any:
    """The grey image in a PNG (see :func:`read_image`), or with ``header_only`` its shape."""
    from PIL import Image

    with Image.open(path) as image:
        frames = getattr(image, "n_frames", 1)
        if frames > 1:
            raise _Refused(f"{path} is an animated PNG of {frames} frames: save the frames as a TIFF stack")
        mode = image.mode
        # PIL reads 16-bit RGB, RGBA and grey+alpha as 8 bits: a grey image stored so would lose its low bits.
        if mode not in _GREY_MODES and image.format == "PNG" and _png_bit_depth(path) == 16:
            raise _Refused(f"{path} is a 16-bit PNG with colour or alpha channels, which this reader would cut to "
                           f"8 bits: save it as a 16-bit grey PNG or as a TIFF")
        if header_only and mode in _GREY_MODES:
            return (image.height, image.width)
        grey = _png_grey(image, path)
    return grey.shape if header_only else grey


def _png_grey(image: Any, path: Path) -> np.ndarray:
    mode = image.mode
    if mode in _GREY_MODES:
        array = np.asarray(image)
        return array.astype(np.uint16) if mode.startswith("I;16") else array  # in the machine's byte order
    if mode == "LA":
        array = np.asarray(image)
        _check_alpha(array[..., 1], path)
        return np.ascontiguousarray(array[..., 0])
    if mode in ("P", "PA"):
        array = np.asarray(image)
        indices, alpha = (array[..., 0], array[..., 1]) if mode == "PA" else (array, None)
        palette = np.zeros((256, 3), np.uint8)
        entries = np.asarray(image.getpalette("RGB") or [], np.uint8).reshape(-1, 3)[:256]
        palette[: len(entries)] = entries
        return _grey_of_colours(palette[indices], alpha, path)
    if mode in ("RGB", "RGBA"):
        array = np.asarray(image)
        return _grey_of_colours(array[..., :3], array[..., 3] if mode == "RGBA" else None, path)
    raise _Refused(f"{path} holds pixels of PIL mode {mode}, which cannot be read as a grey image: "
                   f"save it as a grey PNG or as a TIFF")


def _grey_of_colours(rgb: np.ndarray, alpha: np.ndarray | None, path: Path) -> np.ndarray:
    """The one grey channel of ``rgb`` when its three channels are equal everywhere (a grey image saved as colour)."""
    red = rgb[..., 0]
    if not (np.array_equal(red, rgb[..., 1]) and np.array_equal(red, rgb[..., 2])):
        raise _Refused(f"{path} is a colour image; colour is not supported: split the channels (e.g. Fiji: Image > "
                       f"Color > Split Channels) and denoise each one as a grey image")
    if alpha is not None:
        _check_alpha(alpha, path)
    return np.ascontiguousarray(red)


def _check_alpha(alpha: np.ndarray, path: Path) -> None:
    # An alpha that is the same everywhere adds nothing to the grey values; one that varies is part of the image.
    if alpha.size and np.any(alpha != alpha.flat[0]):
        raise _Refused(f"{path} has a transparency (alpha) channel that varies across the image, which cannot be "
                       f"denoised with it: save the image without transparency")


def _positive(value: Any) -> float | None:
    """``value`` as a float when it is a finite number above zero (a usable size), else None."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number > 0 else None


def _length_unit(unit: str | None) -> str | None:
    """The OME symbol of ``unit`` when it is a length unit this module knows, else None."""
    if not isinstance(unit, str):
        return None
    return _LENGTH_UNITS.get(unicodedata.normalize("NFKC", unit).strip().lower())


def _unit_text(unit: Any) -> str | None:
    """``unit`` without what no metadata can hold (control and unassigned characters, edge spaces), or None."""
    if unit is None:
        return None
    text = "".join(char for char in str(unit) if char.isprintable()).strip()
    return text or None


def _imagej_unit(unit: str) -> str:
    """``unit`` spelt as ImageJ writes it in a TIFF description: ASCII, with ImageJ's own escapes for the rest."""
    symbol = _length_unit(unit)
    if symbol == "\u00b5m":
        # ImageJ writes micrometres as "um" and reads "um" back as its micrometre symbol; "micron" is
        # ImageJ's other name for them, kept when the input used it.
        text = "micron" if unit.strip().lower() in ("micron", "microns") else "um"
    else:
        text = symbol or unit
    return _imagej_escape(text)


def _imagej_escape(text: str) -> str:
    """``text`` with every character outside printable ASCII, and the backslash, as ``\\uXXXX``.

    This is how ImageJ's FileSaver writes its description (java.util.Properties syntax, UTF-16 code units), so
    ImageJ and :func:`read_image_info` read the text back; no line break can end up inside a value.
    """
    escaped = []
    for char in text:
        code = ord(char)
        if 0x20 <= code < 0x7F and char != "\\":
            escaped.append(char)
        elif code > 0xFFFF:
            code -= 0x10000
            escaped.append(f"\\u{0xD800 + (code >> 10):04X}\\u{0xDC00 + (code & 0x3FF):04X}")
        else:
            escaped.append(f"\\u{code:04X}")
    return "".join(escaped)


def _imagej_unescape(text: str) -> str:
    """The text of an ImageJ description value (see :func:`_imagej_escape`)."""
    if "\\" not in text:
        return text

    def replace(match: re.Match[str]) -> str:
        if match.group(1):
            return chr(int(match.group(1), 16))
        return {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}.get(match.group(2), match.group(2))

    text = re.sub(r"\\(?:u([0-9a-fA-F]{4})|(.))", replace, text, flags=re.DOTALL)
    # Characters beyond 16 bits arrive as two escaped UTF-16 halves: join them.
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def _description_value(description: str, key: str) -> str | None:
    """The raw text of ``key=...`` in an ImageJ description (tifffile's parser turns e.g. "1e3" into a number)."""
    for line in description.splitlines():
        name, equals, value = line.partition("=")
        if equals and name.strip() == key:
            return value.strip()
    return None


def _ome_info(xml_text: str) -> ImageInfo:
    try:
        root = ElementTree.fromstring(xml_text)
    except ElementTree.ParseError:
        return ImageInfo()
    pixels = next((element for element in root.iter() if element.tag.endswith("Pixels")), None)
    if pixels is None:
        return ImageInfo()
    # OME's default unit is the micrometre.
    unit = pixels.get("PhysicalSizeXUnit", "\u00b5m")
    metres = _METRES.get(_length_unit(unit) or "")

    def size(axis: str) -> float | None:
        value = _positive(pixels.get(f"PhysicalSize{axis}"))
        axis_metres = _METRES.get(_length_unit(pixels.get(f"PhysicalSize{axis}Unit", "\u00b5m")) or "")
        # Each axis may have its own unit; ImageInfo has one, X's.
        if value is not None and metres and axis_metres:
            value *= axis_metres / metres
        return value

    height, width = size("Y"), size("X")
    return ImageInfo(None, (height, width) if height and width else None, size("Z"), unit)


def _known_axes(axes: Any, ndim: int) -> str | None:
    """``axes`` when they name ``ndim`` distinct axes, last Y and X, all of them ones an OME-TIFF can hold."""
    if not isinstance(axes, str) or len(axes) != ndim or len(set(axes)) != ndim or not axes.endswith("YX"):
        return None
    return axes if set(axes) <= set(_OME_AXES) else None


def read_image_info(path: str | Path) -> ImageInfo:
    """The axes, pixel size, z spacing and unit a TIFF (ImageJ, OME or plain resolution tags) records.

    Units in an ImageJ description are read with ImageJ's escapes undone (``\\u00B5m`` is ``\u00b5m``).
    """
    path = Path(path)
    if path.suffix.lower() not in TIFF_SUFFIXES:
        return ImageInfo()
    import tifffile

    with tifffile.TiffFile(path) as tif:
        series = tif.series[_full_resolution_series(tif, path, refuse=False)] if tif.series else None
        axes = _known_axes(series.axes, len(series.shape)) if series is not None else None
        page = tif.pages[0]
        if tif.is_ome and tif.ome_metadata:
            ome = _ome_info(tif.ome_metadata)
            return ImageInfo(axes, ome.pixel_size, ome.z_spacing, ome.unit)
        unit, spacing = None, None
        if tif.is_imagej:
            description = getattr(page, "imagej_description", None) or page.description or ""
            unit = _description_value(description, "unit")
            unit = _imagej_unescape(unit) if unit else None
            spacing = (tif.imagej_metadata or {}).get("spacing")
        elif tif.is_shaped and series is not None and series.kind == "shaped":
            # The shaped TIFFs write_tiff_atomic writes carry unit and spacing in their JSON description.
            shaped = next(iter(tif.shaped_metadata or ()), None) or {}
            unit, spacing = _unit_text(shaped.get("unit")), shaped.get("spacing")
        resolution = [page.tags[name].value if name in page.tags else None for name in ("YResolution", "XResolution")]
        resolution_unit = int(page.tags["ResolutionUnit"].value) if "ResolutionUnit" in page.tags else 1
    pixels_per_unit = [value[0] / value[1] if value and value[0] and value[1] else None for value in resolution]
    pixel_size = None
    if None not in pixels_per_unit:
        if unit:
            pixel_size = (1.0 / pixels_per_unit[0], 1.0 / pixels_per_unit[1])
        elif resolution_unit in _MICRONS_PER_RESOLUTION_UNIT:
            microns = _MICRONS_PER_RESOLUTION_UNIT[resolution_unit]
            pixel_size, unit = (microns / pixels_per_unit[0], microns / pixels_per_unit[1]), "um"
    return ImageInfo(axes, pixel_size, _positive(spacing), unit)


def imagej_axes(info: ImageInfo | None, ndim: int) -> str | None:
    """Axes for an ImageJ hyperstack of ``ndim`` dimensions, or None if ImageJ cannot hold it.

    The input's axes (``info.axes``) when ImageJ can hold them (letters of TZCYX, in that order); None when they
    are known and it cannot (:func:`write_tiff_atomic` then writes an OME-TIFF, which keeps them); a default by
    ``ndim`` when they are not known.
    """
    axes = info.axes if info is not None and info.axes and len(info.axes) == ndim else None
    if axes is None:
        return _DEFAULT_AXES.get(ndim)
    if not axes.endswith("YX") or len(set(axes)) != ndim or not set(axes) <= set(_IMAGEJ_AXES):
        return None
    order = [_IMAGEJ_AXES.index(axis) for axis in axes]
    return axes if order == sorted(order) else None


def _resolution(info: ImageInfo | None) -> tuple[float, float] | None:
    """TIFF resolution tags (pixels per unit, X then Y) for ``info``'s pixel size, when it can be written as one."""
    if info is None or not info.pixel_size:
        return None
    sizes = [_positive(size) for size in info.pixel_size]
    if len(sizes) != 2 or None in sizes or not all(1 / _RATIONAL_MAX <= 1 / size <= _RATIONAL_MAX for size in sizes):
        return None
    return 1.0 / sizes[1], 1.0 / sizes[0]


def _ome_metadata(axes: str, info: ImageInfo | None) -> dict[str, Any]:
    """tifffile's OME metadata for ``axes`` and ``info``: sizes in floats, the unit as its OME symbol if known."""
    metadata: dict[str, Any] = {"axes": axes}
    if info is None:
        return metadata
    text = _unit_text(info.unit)
    unit = _length_unit(text) or text
    sizes = dict(zip("YX", info.pixel_size)) if info.pixel_size and len(info.pixel_size) == 2 else {}
    if "Z" in axes:
        sizes["Z"] = info.z_spacing
    for axis in "XYZ":
        size = _positive(sizes.get(axis))
        if size is not None:
            metadata[f"PhysicalSize{axis}"] = size
            if unit:
                metadata[f"PhysicalSize{axis}Unit"] = unit
    return metadata


def write_tiff_atomic(path: str | Path, data: np.ndarray, *, metadata: dict[str, Any] | None = None,
                      overwrite: bool = False, info: ImageInfo | None = None) -> Path:
    """Write ``data`` to ``path`` via a temporary file in the same folder and a rename.

    A crash or Ctrl-C never leaves a half-written file under the final name. The image is written grey (never as
    RGB), with the axes, pixel size, z spacing and unit of ``info``:

    - as an ImageJ hyperstack when ImageJ can hold it (uint8, uint16 or float32; the axes of ``info``, if known,
      in ImageJ's order TZCYX, else a default by dimension). The unit is written as ImageJ spells it, in ASCII:
      micrometres as ``um`` (``micron`` if so given), other characters with ImageJ's ``\\uXXXX`` escapes;
    - as an OME-TIFF when the axes of ``info`` are known and ImageJ cannot hold them (another order, other
      letters, another pixel type), so that they are not mislabelled. If even OME cannot (e.g. more than three
      of A, P, R, H, E), as a multi-page TIFF whose JSON description records the shape, the axes and the unit;
    - else as a multi-page TIFF whose description records the shape.

    No unit or other metadata makes the write fail: a pixel size or spacing that is not a positive number, or
    a pixel size that TIFF resolution tags cannot express, is left out (in an ImageJ file with the unit and
    spacing, which ImageJ would otherwise read as one unit per pixel). ``metadata`` (the provenance) is stored
    as JSON in a private tag (:data:`PROVENANCE_TAG`) in every case, read back by :func:`read_tiff_metadata`.

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
        known = _known_axes(info.axes if info is not None else None, data.ndim)
        axes = imagej_axes(info, data.ndim) if data.dtype in _IMAGEJ_DTYPES else None
        unit = _unit_text(info.unit) if info is not None else None
        z_spacing = _positive(info.z_spacing) if info is not None else None
        resolution = _resolution(info)
        if axes is not None:
            imagej_metadata: dict[str, Any] = {"axes": axes}
            # ImageJ reads a unit without resolution tags as one unit per pixel: without a pixel size, no unit.
            if unit and resolution:
                imagej_metadata["unit"] = _imagej_unit(unit)
                if z_spacing and "Z" in axes:
                    imagej_metadata["spacing"] = z_spacing
            options.update(imagej=True, metadata=imagej_metadata, resolution=resolution)
            tifffile.imwrite(temporary, data, **options)
        elif known is not None:
            try:
                tifffile.imwrite(temporary, data, ome=True, metadata=_ome_metadata(known, info), **options)
            except tifffile.OmeXmlError:
                shaped = {"axes": known, "unit": unit if resolution else None,
                          "spacing": z_spacing if "Z" in known else None}
                options.update(metadata={key: value for key, value in shaped.items() if value is not None},
                               resolution=resolution)
                tifffile.imwrite(temporary, data, **options)
        else:
            # tifffile's own description keeps the shape.
            options.update(metadata={"unit": unit} if unit and resolution else {}, resolution=resolution)
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
