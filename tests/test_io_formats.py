"""File formats in and out: units and axes kept when writing, ragged TIFFs refused, PNG modes read as grey."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
import tifffile
from PIL import Image

from napari_zsdenoise.io import (
    ImageInfo,
    imagej_axes,
    read_image,
    read_image_info,
    read_image_shape,
    read_tiff_metadata,
    write_tiff_atomic,
)
from napari_zsdenoise.outputs import _NGFF_UNITS

MICRO_SIGN, GREEK_MU, ANGSTROM, ANGSTROM_SIGN = "\u00b5", "\u03bc", "\u00c5", "\u212b"


def _stack(seed: int, shape: tuple[int, ...], dtype=np.float32) -> np.ndarray:
    return (np.random.default_rng(seed).random(shape) * 1000).astype(dtype)


def _one_line_naming(exc: pytest.ExceptionInfo, path) -> str:
    text = str(exc.value)
    assert str(path) in text and "\n" not in text
    return text


# --- 1. writing never fails on metadata ------------------------------------------------------------------------

@pytest.mark.parametrize(("unit", "read_back"), [
    (MICRO_SIGN + "m", "um"), (GREEK_MU + "m", "um"), ("um", "um"), ("micrometer", "um"), ("micron", "micron"),
    ("nm", "nm"), ("nanometers", "nm"), (ANGSTROM, ANGSTROM), (ANGSTROM_SIGN, ANGSTROM), ("angstrom", ANGSTROM),
    ("\u5fae\u7c73", "\u5fae\u7c73"), ("furlong-" * 40, "furlong-" * 40), ("a\\b", "a\\b"),
    ("\U0001f52c units", "\U0001f52c units"), ("line\nbreak", "linebreak"),
])
def test_any_unit_is_written_as_ascii_imagej_and_read_back_with_the_same_meaning(tmp_path, unit, read_back):
    path = tmp_path / "out.tif"
    data = _stack(1, (3, 16, 12))
    write_tiff_atomic(path, data, metadata={"note": "K\u00e4n\u00e4le \u2014 \u86cd\u5149"},
                      info=ImageInfo("ZYX", (0.2, 0.1), 0.5, unit))
    with tifffile.TiffFile(path) as tif:
        assert tif.is_imagej and tif.series[0].axes == "ZYX"
        assert tif.pages[0].description.isascii()
    info = read_image_info(path)
    assert info.unit == read_back
    assert info.pixel_size == pytest.approx((0.2, 0.1), rel=1e-9) and info.z_spacing == pytest.approx(0.5)
    assert read_tiff_metadata(path) == {"note": "K\u00e4n\u00e4le \u2014 \u86cd\u5149"}
    np.testing.assert_array_equal(read_image(path), data)


def test_an_ome_micrometre_input_round_trips_with_a_unit_ngff_knows(tmp_path):
    source, target = tmp_path / "in.ome.tif", tmp_path / "out.tif"
    data = _stack(2, (3, 16, 16), np.uint16)
    tifffile.imwrite(source, data, ome=True, photometric="minisblack",
                     metadata={"axes": "ZYX", "PhysicalSizeX": 0.13, "PhysicalSizeXUnit": MICRO_SIGN + "m",
                               "PhysicalSizeY": 0.26, "PhysicalSizeYUnit": MICRO_SIGN + "m", "PhysicalSizeZ": 0.5,
                               "PhysicalSizeZUnit": MICRO_SIGN + "m"})
    info = read_image_info(source)
    assert info == ImageInfo("ZYX", (0.26, 0.13), 0.5, MICRO_SIGN + "m")
    write_tiff_atomic(target, read_image(source).astype(np.float32), metadata={"method": "x"}, info=info)
    with tifffile.TiffFile(target) as tif:
        assert "unit=um\n" in tif.pages[0].description
    back = read_image_info(target)
    assert back.axes == "ZYX" and back.pixel_size == pytest.approx((0.26, 0.13)) and back.z_spacing == 0.5
    assert _NGFF_UNITS[back.unit] == "micrometer"
    assert read_tiff_metadata(target) == {"method": "x"}


def test_units_imagej_escaped_in_its_description_are_read_unescaped(tmp_path):
    path = tmp_path / "imagej.tif"
    # As ImageJ 1.52+ writes micrometres: "unit=\u00B5m", a backslash escape in an ASCII description.
    tifffile.imwrite(path, _stack(3, (2, 8, 8)), imagej=True, resolution=(5.0, 5.0),
                     metadata={"axes": "ZYX", "unit": "\\u00B5m", "spacing": 2.0})
    assert read_image_info(path) == ImageInfo("ZYX", (0.2, 0.2), 2.0, MICRO_SIGN + "m")


@pytest.mark.parametrize("pixel_size", [(1e-12, 1e-12), (1e12, 1e12), (float("nan"), 0.1), (-0.1, 0.1), (0.0, 0.0)])
def test_a_pixel_size_tiff_cannot_hold_is_left_out_without_failing(tmp_path, pixel_size):
    path = tmp_path / "out.tif"
    write_tiff_atomic(path, _stack(4, (2, 8, 8)), metadata={"m": 1}, info=ImageInfo("ZYX", pixel_size, -1.0, "m"))
    info = read_image_info(path)
    # Not "1 m per pixel": with no pixel size, no unit either.
    assert info == ImageInfo("ZYX", None, None, None)
    assert read_tiff_metadata(path) == {"m": 1}


def test_ome_sizes_in_another_unit_than_x_are_converted_to_x_unit(tmp_path):
    path = tmp_path / "mixed.ome.tif"
    tifffile.imwrite(path, _stack(5, (2, 8, 8)), ome=True,
                     metadata={"axes": "ZYX", "PhysicalSizeX": 0.1, "PhysicalSizeXUnit": MICRO_SIGN + "m",
                               "PhysicalSizeY": 100.0, "PhysicalSizeYUnit": "nm", "PhysicalSizeZ": 0.002,
                               "PhysicalSizeZUnit": "mm"})
    info = read_image_info(path)
    assert info.pixel_size == pytest.approx((0.1, 0.1)) and info.z_spacing == pytest.approx(2.0)


# --- 2. axes are kept ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("axes", ["CZYX", "ZTYX", "EZYX", "CTZYX", "AYX"])
def test_axes_imagej_cannot_hold_are_written_as_ome_and_read_back(tmp_path, axes):
    path = tmp_path / "out.tif"
    shape = tuple(range(2, 2 + len(axes) - 2)) + (12, 10)
    data = _stack(6, shape)
    with_z = "Z" in axes
    write_tiff_atomic(path, data, metadata={"method": "mpi"},
                      info=ImageInfo(axes, (0.3, 0.2), 0.7 if with_z else None, "\u5fae\u7c73"))
    assert imagej_axes(ImageInfo(axes), len(axes)) is None
    with tifffile.TiffFile(path) as tif:
        assert tif.is_ome and not tif.is_imagej and tif.series[0].axes == axes
    np.testing.assert_array_equal(read_image(path), data)
    assert read_image_shape(path) == shape
    assert read_image_info(path) == ImageInfo(axes, (0.3, 0.2), 0.7 if with_z else None, "\u5fae\u7c73")
    assert read_tiff_metadata(path) == {"method": "mpi"}


def test_a_micrometre_ome_output_names_its_unit_the_ome_way(tmp_path):
    path = tmp_path / "out.tif"
    write_tiff_atomic(path, _stack(7, (2, 3, 8, 8)), info=ImageInfo("CZYX", (0.2, 0.2), 1.0, "micron"))
    with tifffile.TiffFile(path) as tif:
        assert f'PhysicalSizeXUnit="{MICRO_SIGN}m"' in tif.ome_metadata
    assert read_image_info(path).unit == MICRO_SIGN + "m"


@pytest.mark.parametrize("axes", ["YX", "ZYX", "ZCYX", "TZYX", "TZCYX"])
def test_axes_imagej_can_hold_stay_an_imagej_hyperstack(tmp_path, axes):
    path = tmp_path / "out.tif"
    shape = tuple(range(2, 2 + len(axes) - 2)) + (8, 6)
    write_tiff_atomic(path, _stack(8, shape), info=ImageInfo(axes, (0.5, 0.5), 2.0 if "Z" in axes else None, "um"))
    with tifffile.TiffFile(path) as tif:
        assert tif.is_imagej and not tif.is_ome and tif.series[0].axes == axes
    assert read_image_info(path).axes == axes


def test_known_axes_in_a_pixel_type_imagej_lacks_are_written_as_ome(tmp_path):
    path = tmp_path / "out.tif"
    data = _stack(9, (3, 8, 8), np.float64)
    write_tiff_atomic(path, data, info=ImageInfo("ZYX", (0.2, 0.2), 0.4, ANGSTROM))
    with tifffile.TiffFile(path) as tif:
        assert tif.is_ome
    assert read_image_info(path) == ImageInfo("ZYX", (0.2, 0.2), 0.4, ANGSTROM)
    np.testing.assert_array_equal(read_image(path), data)


def test_axes_even_ome_cannot_hold_are_kept_in_the_tiff_description(tmp_path):
    path = tmp_path / "out.tif"
    data = _stack(10, (2, 2, 2, 2, 6, 6))
    write_tiff_atomic(path, data, metadata={"k": 2}, info=ImageInfo("AEPHYX", (0.2, 0.1), None, "nm"))
    assert read_image_info(path) == ImageInfo("AEPHYX", (0.2, 0.1), None, "nm")
    np.testing.assert_array_equal(read_image(path), data)
    assert read_tiff_metadata(path) == {"k": 2}


def test_data_without_known_axes_is_written_as_before(tmp_path):
    imagej, plain = tmp_path / "imagej.tif", tmp_path / "plain.tif"
    write_tiff_atomic(imagej, _stack(11, (2, 3, 8, 8)), info=ImageInfo(None, (0.2, 0.2), None, "um"))
    write_tiff_atomic(plain, _stack(11, (2, 3, 8, 8), np.float64))
    with tifffile.TiffFile(imagej) as tif:
        assert tif.is_imagej and tif.series[0].axes == "TZYX"
    with tifffile.TiffFile(plain) as tif:
        assert not tif.is_imagej and not tif.is_ome and tif.series[0].shape == (2, 3, 8, 8)


def test_imagej_axes():
    assert imagej_axes(ImageInfo("ZCYX"), 4) == "ZCYX"
    assert imagej_axes(ImageInfo("CZYX"), 4) is None
    assert imagej_axes(ImageInfo("QZYX"), 4) is None
    assert imagej_axes(None, 4) == "TZYX"
    assert imagej_axes(ImageInfo("ZYX"), 4) == "TZYX"  # axes of another image: not this one's


# --- 3. ragged TIFF pages are refused ----------------------------------------------------------------------------

@pytest.mark.parametrize("described", [True, False])
@pytest.mark.parametrize("small", [(32, 32), (50, 40)])
def test_pages_of_different_shapes_are_refused_by_name(tmp_path, described, small):
    path = tmp_path / "x.tif"
    with tifffile.TiffWriter(path) as writer:
        writer.write(_stack(12, (64, 64), np.uint16), **({} if described else {"metadata": None}))
        writer.write(_stack(13, small, np.uint16), **({} if described else {"metadata": None}))
    message = (f"{path} holds pages of different shapes (64x64, {small[0]}x{small[1]}): "
               f"save each page as a file of its own")
    for read in (read_image, lambda p: read_image(p, lazy=True), read_image_shape):
        with pytest.raises(ValueError) as caught:
            read(path)
        assert _one_line_naming(caught, path) == message


def test_images_of_different_shapes_are_refused(tmp_path):
    path = tmp_path / "two.tif"
    with tifffile.TiffWriter(path) as writer:
        writer.write(_stack(14, (3, 16, 16), np.uint16), photometric="minisblack")
        writer.write(_stack(15, (5, 16, 16), np.uint16), photometric="minisblack")
    with pytest.raises(ValueError) as caught:
        read_image_shape(path)
    assert "holds images of different shapes (3x16x16, 5x16x16)" in _one_line_naming(caught, path)


def _with_thumbnail(path, described: bool) -> np.ndarray:
    full = _stack(16, (3, 64, 64), np.uint16)
    extra = {} if described else {"metadata": None}
    with tifffile.TiffWriter(path) as writer:
        if described:
            writer.write(full, photometric="minisblack")
        else:
            for plane in full:
                writer.write(plane, photometric="minisblack", **extra)
        writer.write(_stack(17, (32, 32), np.uint16), photometric="minisblack", subfiletype=1, **extra)
    return full


@pytest.mark.parametrize("described", [True, False])
def test_a_thumbnail_page_is_not_refused_and_the_full_image_is_read(tmp_path, described):
    path = tmp_path / "thumb.tif"
    full = _with_thumbnail(path, described)
    np.testing.assert_array_equal(read_image(path), full)
    assert read_image_shape(path) == full.shape


@pytest.mark.parametrize("ome", [True, False])
def test_a_pyramid_is_not_refused_and_its_full_resolution_is_read(tmp_path, ome):
    path = tmp_path / "pyramid.ome.tif"
    full = _stack(18, (2, 64, 64), np.uint16)
    with tifffile.TiffWriter(path, ome=ome) as writer:
        writer.write(full, subifds=1, photometric="minisblack", metadata={"axes": "ZYX"} if ome else {})
        writer.write(full[:, ::2, ::2], subfiletype=1, photometric="minisblack")
    np.testing.assert_array_equal(read_image(path), full)
    assert read_image_shape(path) == full.shape


def test_ordinary_stacks_are_not_refused_and_their_shape_is_known_from_the_header(tmp_path, monkeypatch):
    files = {}
    files["imagej.tif"] = _stack(19, (3, 2, 16, 16))
    tifffile.imwrite(tmp_path / "imagej.tif", files["imagej.tif"], imagej=True, metadata={"axes": "ZCYX"})
    files["ome.tif"] = _stack(20, (2, 3, 16, 16), np.uint16)
    tifffile.imwrite(tmp_path / "ome.tif", files["ome.tif"], ome=True, metadata={"axes": "CZYX"})
    files["plain.tif"] = _stack(21, (4, 16, 16), np.uint16)
    with tifffile.TiffWriter(tmp_path / "plain.tif") as writer:
        for plane in files["plain.tif"]:
            writer.write(plane, metadata=None)
    files["shaped.tif"] = _stack(22, (4, 16, 16))
    tifffile.imwrite(tmp_path / "shaped.tif", files["shaped.tif"], photometric="minisblack")
    for name, data in files.items():
        np.testing.assert_array_equal(read_image(tmp_path / name), data)
        np.testing.assert_array_equal(read_image(tmp_path / name, lazy=True), data)

    def no_pixels(*args, **kwargs):
        raise AssertionError("pixels were loaded")

    for owner in (tifffile.TiffFile, tifffile.TiffPage, tifffile.TiffPageSeries):
        monkeypatch.setattr(owner, "asarray", no_pixels)
    monkeypatch.setattr(tifffile, "memmap", no_pixels)
    for name, data in files.items():
        assert read_image_shape(tmp_path / name) == data.shape


# --- 4. PNG modes -------------------------------------------------------------------------------------------------

def _raw_png(path, array: np.ndarray, colour_type: int, bit_depth: int) -> None:
    """A PNG written byte by byte, for the 16-bit colour layouts PIL cannot write."""
    height, width = array.shape[:2]
    rows = array.astype(">u2" if bit_depth == 16 else np.uint8).reshape(height, -1)
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
                     + chunk(b"IEND", b""))


def _grey(seed: int, dtype=np.uint8) -> np.ndarray:
    top = 255 if dtype == np.uint8 else 65535
    return np.random.default_rng(seed).integers(0, top + 1, (12, 10)).astype(dtype)


def _both_read(path):
    image = read_image(path)
    assert read_image_shape(path) == image.shape
    return image


@pytest.mark.parametrize(("dtype", "mode"), [(np.uint8, "L"), (np.uint16, "I;16")])
def test_a_grey_png_is_read_in_its_own_type(tmp_path, dtype, mode):
    path = tmp_path / "grey.png"
    grey = _grey(30, dtype)
    Image.fromarray(grey).save(path)
    assert Image.open(path).mode == mode
    image = _both_read(path)
    assert image.dtype == dtype
    np.testing.assert_array_equal(image, grey)


def test_a_one_bit_png_is_read_as_booleans(tmp_path):
    path = tmp_path / "mask.png"
    mask = _grey(31) > 128
    Image.fromarray(mask).save(path)
    np.testing.assert_array_equal(_both_read(path), mask)


@pytest.mark.parametrize("alpha", [255, 128])
def test_grey_with_a_constant_alpha_gives_the_grey_channel(tmp_path, alpha):
    path = tmp_path / "la.png"
    grey = _grey(32)
    Image.fromarray(np.stack([grey, np.full_like(grey, alpha)], axis=-1), mode="LA").save(path)
    image = _both_read(path)
    assert image.shape == grey.shape and image.dtype == np.uint8
    np.testing.assert_array_equal(image, grey)


@pytest.mark.parametrize("mode", ["LA", "RGBA"])
def test_a_varying_alpha_is_refused(tmp_path, mode):
    path = tmp_path / "alpha.png"
    grey, alpha = _grey(33), _grey(34)
    channels = [grey, alpha] if mode == "LA" else [grey, grey, grey, alpha]
    Image.fromarray(np.stack(channels, axis=-1), mode=mode).save(path)
    for read in (read_image, read_image_shape):
        with pytest.raises(ValueError) as caught:
            read(path)
        assert "has a transparency (alpha) channel that varies" in _one_line_naming(caught, path)


def test_a_grey_palette_gives_the_grey_values_through_the_palette(tmp_path):
    path = tmp_path / "palette.png"
    indices = _grey(35)
    image = Image.fromarray(indices, mode="L").convert("P")
    image.putpalette([value for index in range(256) for value in (255 - index,) * 3])
    image.save(path)
    assert Image.open(path).mode == "P"
    grey = _both_read(path)
    assert grey.dtype == np.uint8
    np.testing.assert_array_equal(grey, 255 - indices)


def test_a_colour_palette_is_refused(tmp_path):
    path = tmp_path / "colours.png"
    image = Image.new("P", (10, 12))
    image.putpalette([255, 0, 0, 0, 0, 255])
    image.putdata(list(np.random.default_rng(36).integers(0, 2, 120)))
    image.save(path)
    for read in (read_image, read_image_shape):
        with pytest.raises(ValueError) as caught:
            read(path)
        text = _one_line_naming(caught, path)
        assert "colour is not supported" in text and "split the channels" in text


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_a_grey_image_saved_as_rgb_gives_its_grey_channel(tmp_path, mode):
    path = tmp_path / "grey-rgb.png"
    grey = _grey(37)
    channels = [grey] * 3 + ([np.full_like(grey, 255)] if mode == "RGBA" else [])
    Image.fromarray(np.stack(channels, axis=-1), mode=mode).save(path)
    image = _both_read(path)
    assert image.shape == grey.shape
    np.testing.assert_array_equal(image, grey)


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_colour_png_is_refused_with_how_to_split_it(tmp_path, mode):
    path = tmp_path / "colour.png"
    grey = _grey(38)
    channels = [grey, grey, _grey(39)] + ([np.full_like(grey, 255)] if mode == "RGBA" else [])
    Image.fromarray(np.stack(channels, axis=-1), mode=mode).save(path)
    for read in (read_image, read_image_shape):
        with pytest.raises(ValueError) as caught:
            read(path)
        text = _one_line_naming(caught, path)
        assert "colour is not supported" in text and "split the channels" in text


@pytest.mark.parametrize(("colour_type", "channels"), [(2, 3), (4, 2), (6, 4)])
def test_a_16_bit_png_with_colour_or_alpha_channels_is_refused_not_cut_to_8_bits(tmp_path, colour_type, channels):
    path = tmp_path / "deep.png"
    grey = _grey(40, np.uint16)
    _raw_png(path, np.stack([grey] * channels, axis=-1), colour_type, 16)
    for read in (read_image, read_image_shape):
        with pytest.raises(ValueError) as caught:
            read(path)
        assert "16-bit PNG with colour or alpha channels" in _one_line_naming(caught, path)


def test_a_16_bit_grey_png_written_byte_by_byte_keeps_every_bit(tmp_path):
    path = tmp_path / "deep-grey.png"
    grey = _grey(41, np.uint16)
    _raw_png(path, grey, 0, 16)
    np.testing.assert_array_equal(_both_read(path), grey)


def test_an_animated_png_is_refused(tmp_path):
    path = tmp_path / "frames.png"
    frames = [Image.fromarray(_grey(42 + index)) for index in range(3)]
    frames[0].save(path, save_all=True, append_images=frames[1:])
    with pytest.raises(ValueError) as caught:
        read_image(path)
    assert "animated PNG of 3 frames" in _one_line_naming(caught, path)


def test_a_tiff_written_image_by_image_is_read_as_the_stack_it_holds(tmp_path):
    path = tmp_path / "frames.tif"
    frames = np.arange(3 * 16 * 16, dtype=np.uint16).reshape(3, 16, 16)
    with tifffile.TiffWriter(path) as writer:
        for frame in frames:
            writer.write(frame, photometric="minisblack")  # each frame a series of its own
    np.testing.assert_array_equal(read_image(path), frames)
    np.testing.assert_array_equal(read_image(path, lazy=True), frames)
    assert read_image_shape(path) == (3, 16, 16)
