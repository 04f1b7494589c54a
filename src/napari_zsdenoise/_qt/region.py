"""What a run of the dock computes: the whole image, the plane on screen, or a region of it.

Pure geometry on napari's model (a viewer's dims, a layer's transform, a Shapes layer's vertices): no Qt
here, so it is tested on a ``napari.components.ViewerModel`` without a window.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

REGION_WHOLE = "whole image"
REGION_VISIBLE = "visible region"
REGION_SHAPE = "rectangle in a Shapes layer"
REGION_CHOICES = (REGION_WHOLE, REGION_VISIBLE, REGION_SHAPE)


@dataclass(frozen=True)
class Target:
    """What a run computes: the array handed to the engine and where its result lies.

    ``region`` is None for the whole image (or the plane on screen), else
    ``(plane index, (y0, y1), (x0, x1), kind)`` of the crop, in the layer's data pixels.
    """

    data: Any
    plane: tuple[int, ...] | None
    region: tuple[tuple[int, ...], tuple[int, int], tuple[int, int], str] | None
    geometry: dict[str, Any]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape[-2:]) if self.plane is not None else tuple(self.data.shape)

    @property
    def two_dimensional(self) -> bool:
        """The result is one plane (the plane on screen or a region of it)."""
        return self.plane is not None or self.region is not None

    def describe(self, layer_name: str) -> str:
        """Which part of the layer a run computes, in words ('' for all of it)."""
        if self.region is not None:
            index, (y0, y1), (x0, x1), _ = self.region
            plane = f" of plane {index}" if index else ""
            return f"rows {y0}-{y1 - 1}, columns {x0}-{x1 - 1}{plane} of {layer_name}"
        return f"plane {self.plane} of {layer_name}" if self.plane is not None else ""


def camera_of(viewer: Any) -> Any:
    """The viewer's camera (napari 0.9 moved it under ``scene``; older versions keep it on the viewer)."""
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None and hasattr(scene, "camera") else viewer.camera


def full_resolution(layer: Any) -> Any:
    """The layer's pixels at full resolution: level 0 of a multiscale layer, never read whole here
    (a dask or zarr array stays lazy; the engine reads it plane by plane)."""
    return layer.data[0] if getattr(layer, "multiscale", False) else layer.data


def plane_of_current_view(viewer: Any, layer: Any) -> tuple[int, ...]:
    """The layer's plane on screen: the viewer's position mapped through the layer's own transform."""
    data = full_resolution(layer)
    leading = data.ndim - 2
    position = layer.world_to_data(viewer.dims.point)[:leading]
    return tuple(int(np.clip(np.round(i), 0, n - 1)) for i, n in zip(position, data.shape[:leading]))


def world_yx_to_pixels(viewer: Any, layer: Any, corners: np.ndarray,
                       what: str) -> tuple[tuple[int, int], tuple[int, int]]:
    """The layer's pixel rows and columns (half-open) whose centres lie in the box spanned by
    world Y/X ``corners``, clipped to the image.

    Raises
    ------
    ValueError
        If the box holds no pixel of the layer.
    """
    point = np.asarray(viewer.dims.point, dtype=float)
    in_data = []
    for corner in corners:
        world = point.copy()
        world[-2:] = corner
        in_data.append(np.asarray(layer.world_to_data(world), dtype=float)[-2:])
    low, high = np.min(in_data, axis=0), np.max(in_data, axis=0)
    height, width = full_resolution(layer).shape[-2:]
    # napari puts pixel centres at integer data coordinates; a pixel belongs to the box
    # when its centre does. The small tolerance keeps an edge drawn on a centre inside.
    start = np.ceil(low - 1e-6).astype(int)
    stop = np.floor(high + 1e-6).astype(int) + 1
    (y0, x0), (y1, x1) = np.maximum(start, 0), np.minimum(stop, (height, width))
    if y1 <= y0 or x1 <= x0:
        raise ValueError(f"the {what} does not overlap {layer.name}")
    return (int(y0), int(y1)), (int(x0), int(x1))


def check_yx_on_screen(viewer: Any, what: str) -> None:
    """ValueError unless the 2-D view shows the image's Y and X axes."""
    dims = viewer.dims
    if dims.ndisplay != 2 or tuple(dims.displayed) != (dims.ndim - 2, dims.ndim - 1):
        raise ValueError(f"the {what} needs the 2-D view with the image's Y and X axes on screen")


def visible_box(viewer: Any, camera: Any, layer: Any,
                canvas_size: tuple[float, float]) -> tuple[tuple[int, int], tuple[int, int]]:
    """Rows and columns of ``layer`` on screen, from the camera's centre and zoom and the canvas size
    (height, width in screen pixels)."""
    check_yx_on_screen(viewer, REGION_VISIBLE)
    size = np.asarray(canvas_size, dtype=float)
    centre = np.asarray(camera.center, dtype=float)[-2:]
    half = size / 2 / camera.zoom
    corners = np.array([centre + half * np.array(sign) for sign in ((-1, -1), (-1, 1), (1, -1), (1, 1))])
    return world_yx_to_pixels(viewer, layer, corners, REGION_VISIBLE)


def shapes_layer(viewer: Any) -> Any:
    """The selected Shapes layer when it holds a shape, else the topmost one that does (or None)."""
    import napari

    active = viewer.layers.selection.active
    if isinstance(active, napari.layers.Shapes) and len(active.data):
        return active
    holding = [layer for layer in viewer.layers if isinstance(layer, napari.layers.Shapes) and len(layer.data)]
    return holding[-1] if holding else None


def shape_box(viewer: Any, layer: Any) -> tuple[tuple[int, int], tuple[int, int]]:
    """Rows and columns of ``layer`` in the bounding box of the selected (else the last) shape."""
    check_yx_on_screen(viewer, "rectangle")
    shapes = shapes_layer(viewer)
    if shapes is None:
        raise ValueError("draw a rectangle in a Shapes layer first")
    selected = sorted(shapes.selected_data)
    vertices = np.asarray(shapes.data[selected[-1] if selected else len(shapes.data) - 1], dtype=float)
    corners = np.array([np.asarray(shapes.data_to_world(vertex), dtype=float)[-2:] for vertex in vertices])
    return world_yx_to_pixels(viewer, layer, corners, f"rectangle of {shapes.name}")


def target_of(viewer: Any, camera: Any, layer: Any, choice: str, *, current_plane: bool,
              canvas_size: tuple[float, float]) -> Target:
    """What a run on ``layer`` computes for the region ``choice`` (one of :data:`REGION_CHOICES`);
    ``current_plane``: of a stack, only the plane on screen.

    Raises
    ------
    ValueError
        If the chosen region cannot be found or lies outside the image.
    """
    data = full_resolution(layer)
    scale, translate = np.asarray(layer.scale, dtype=float), np.asarray(layer.translate, dtype=float)
    if choice == REGION_WHOLE:
        plane = plane_of_current_view(viewer, layer) if current_plane and data.ndim > 2 else None
        dims = 2 if plane is not None else layer.ndim
        geometry = {"scale": tuple(scale[-dims:]), "translate": tuple(translate[-dims:])}
        return Target(data=data, plane=plane, region=None, geometry=geometry)
    rows, columns = (visible_box(viewer, camera, layer, canvas_size) if choice == REGION_VISIBLE
                     else shape_box(viewer, layer))
    index = plane_of_current_view(viewer, layer) if data.ndim > 2 else ()
    crop = data[(*index, slice(*rows), slice(*columns))]
    # The crop's first pixel lies where the image's pixel (y0, x0) lies.
    offset = translate[-2:] + scale[-2:] * np.array([rows[0], columns[0]], dtype=float)
    geometry = {"scale": tuple(scale[-2:]), "translate": tuple(offset)}
    return Target(data=crop, plane=None, region=(index, rows, columns, choice), geometry=geometry)
