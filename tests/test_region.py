"""The dock's region geometry on napari's model alone: no window, no Qt."""

from __future__ import annotations

import numpy as np
import pytest

napari = pytest.importorskip("napari", reason="napari is not installed (the core alone: pip install .)")

from napari_zsdenoise._qt.region import (  # noqa: E402
    REGION_SHAPE,
    REGION_VISIBLE,
    REGION_WHOLE,
    plane_of_current_view,
    target_of,
)


class Camera:
    def __init__(self, center, zoom):
        self.center, self.zoom = center, zoom


def _viewer_with(data, **layer_options):
    from napari.components import ViewerModel

    viewer = ViewerModel()
    layer = viewer.add_image(data, **layer_options)
    return viewer, layer


def test_the_plane_on_screen_follows_the_layers_own_transform():
    viewer, layer = _viewer_with(np.zeros((5, 40, 30), dtype=np.float32), scale=(2.0, 1.0, 1.0), translate=(4, 0, 0))
    viewer.dims.set_point(0, 10.0)  # world z 10 = data plane (10 - 4) / 2 = 3
    assert plane_of_current_view(viewer, layer) == (3,)
    target = target_of(viewer, Camera((0, 20, 15), 1.0), layer, REGION_WHOLE, current_plane=True, canvas_size=(1, 1))
    assert target.plane == (3,) and target.region is None and target.shape == (40, 30)
    whole = target_of(viewer, Camera((0, 20, 15), 1.0), layer, REGION_WHOLE, current_plane=False, canvas_size=(1, 1))
    assert whole.plane is None and whole.shape == (5, 40, 30) and whole.geometry["translate"] == (4.0, 0.0, 0.0)


def test_the_visible_region_is_the_pixels_whose_centres_are_on_screen():
    data = np.arange(60 * 80, dtype=np.float32).reshape(60, 80)
    viewer, layer = _viewer_with(data, scale=(0.5, 0.5), translate=(10, 20))
    # Centre at world (25, 40) = data (30, 40); 20 x 10 screen pixels at zoom 2 span 10 x 5 world units, rows
    # 20..40 and columns 35..45 of the data (both ends' centres inside).
    target = target_of(viewer, Camera((25, 40), 2.0), layer, REGION_VISIBLE, current_plane=False, canvas_size=(20, 10))
    (plane, rows, columns, kind) = target.region
    assert (plane, rows, columns, kind) == ((), (20, 41), (35, 46), REGION_VISIBLE)
    np.testing.assert_array_equal(target.data, data[20:41, 35:46])
    # The crop's first pixel lies where the image's pixel (20, 35) lies.
    assert target.geometry == {"scale": (0.5, 0.5), "translate": (20.0, 37.5)}


def test_a_rectangle_is_clipped_to_the_image_and_one_outside_it_is_refused():
    viewer, layer = _viewer_with(np.zeros((32, 32), dtype=np.float32))
    viewer.add_shapes([np.array([[-5, 10], [-5, 20], [8, 20], [8, 10]])], shape_type="rectangle")
    target = target_of(viewer, Camera((16, 16), 1.0), layer, REGION_SHAPE, current_plane=False, canvas_size=(1, 1))
    assert target.region[1:3] == ((0, 9), (10, 21))
    viewer.layers.remove(viewer.layers[-1])
    viewer.add_shapes([np.array([[40, 40], [40, 50], [50, 50], [50, 40]])], shape_type="rectangle")
    with pytest.raises(ValueError, match="does not overlap"):
        target_of(viewer, Camera((16, 16), 1.0), layer, REGION_SHAPE, current_plane=False, canvas_size=(1, 1))


def test_a_region_needs_a_shapes_layer_and_the_yx_view():
    viewer, layer = _viewer_with(np.zeros((4, 32, 32), dtype=np.float32))
    with pytest.raises(ValueError, match="draw a rectangle"):
        target_of(viewer, Camera((0, 16, 16), 1.0), layer, REGION_SHAPE, current_plane=False, canvas_size=(1, 1))
    viewer.dims.order = (1, 0, 2)  # Z and X on screen
    with pytest.raises(ValueError, match="Y and X axes on screen"):
        target_of(viewer, Camera((0, 16, 16), 1.0), layer, REGION_VISIBLE, current_plane=False, canvas_size=(8, 8))
