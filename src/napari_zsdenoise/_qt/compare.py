"""The dock's compare view: the newest result beside its noisy source, nothing else on screen."""

from __future__ import annotations

from typing import Any

from magicgui.widgets import PushButton

from napari_zsdenoise._qt.region import camera_of


def same_layer(one: Any, other: Any) -> bool:
    """Whether two references name the same layer (napari may hand out a new proxy each time)."""
    return getattr(one, "__wrapped__", one) is getattr(other, "__wrapped__", other)


class CompareView:
    """Keeps every (source, result) pair the dock made, and toggles the side-by-side view with ``button``."""

    def __init__(self, viewer: Any, button: PushButton) -> None:
        self._viewer, self.button = viewer, button
        # (source layer, result layer) of every kept result, oldest first.
        self._results: list[tuple[Any, Any]] = []
        self._state: dict[str, Any] | None = None

    @property
    def active(self) -> bool:
        return self._state is not None

    def present(self, layer: Any) -> bool:
        return any(same_layer(layer, present) for present in self._viewer.layers)

    def newest(self) -> tuple[Any, Any] | None:
        """(source, result) of the newest result still in the viewer, with its source."""
        for source, result in reversed(self._results):
            if self.present(result) and self.present(source):
                return source, result
        return None

    def add(self, source: Any, result: Any) -> None:
        self._results.append((source, result))
        self.button.enabled = True

    def refresh_button(self) -> None:
        self.button.enabled = self._state is not None or self.newest() is not None

    def _grid(self) -> Any:
        canvas = getattr(self._viewer, "canvas", None)
        return canvas.grid if canvas is not None and hasattr(canvas, "grid") else self._viewer.grid

    def toggle(self, *_: Any) -> None:
        """Show the newest result and its noisy source side by side, nothing else, both whole on screen;
        called again, restore what was visible, the grid and the view as they were."""
        grid, camera = self._grid(), camera_of(self._viewer)
        if self._state is not None:
            state, self._state = self._state, None
            for layer, visible in state["visible"]:
                if self.present(layer):
                    layer.visible = visible
            grid.stride, grid.enabled = state["stride"], state["enabled"]
            camera.center, camera.zoom = state["center"], state["zoom"]
            self.button.text = "compare"
            self.button.enabled = self.newest() is not None
            return
        pair = self.newest()
        if pair is None:
            self.button.enabled = False
            return
        self._state = {"visible": [(layer, layer.visible) for layer in self._viewer.layers],
                       "enabled": grid.enabled, "stride": grid.stride, "center": tuple(camera.center),
                       "zoom": camera.zoom}
        for layer in self._viewer.layers:
            layer.visible = any(same_layer(layer, shown) for shown in pair)
        grid.stride = 1
        grid.enabled = True
        # The view of one image cuts a grid of two at the sides.
        self._viewer.reset_view()
        self.button.text = "end compare"
