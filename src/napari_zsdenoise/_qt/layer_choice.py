"""The dock's image-layer choice: the viewer's image layers, following the layer list's selection, and the
Shapes layers whose rectangles may become the region to run on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from magicgui.widgets import ComboBox

from napari_zsdenoise._qt.compare import same_layer


class LayerChoice:
    """Keeps ``combo``'s choices the viewer's image layers and its value the selected one (unless
    ``adding()``: napari selects a layer it adds, and a preview or result must not become the next run's
    input); ``on_region_edit`` is called when any Shapes layer's data or selection changes."""

    def __init__(self, viewer: Any, combo: ComboBox, adding: Callable[[], bool],
                 on_region_edit: Callable[..., None]) -> None:
        self._viewer, self.combo, self._adding, self._on_region_edit = viewer, combo, adding, on_region_edit
        self._watched_shapes: list[Any] = []
        combo.choices = self.image_layers

    def image_layers(self, *_: Any) -> list[tuple[str, Any]]:
        import napari

        return [(layer.name, layer) for layer in self._viewer.layers if isinstance(layer, napari.layers.Image)]

    def refresh(self, *_: Any) -> None:
        """After layers were added or removed."""
        self.combo.reset_choices()
        self.follow_selection()
        self.watch_shapes()

    def follow_selection(self, *_: Any) -> None:
        """Pick the layer selected in the layer list, when it is an image layer."""
        import napari

        if self._adding():
            return
        active = self._viewer.layers.selection.active
        if isinstance(active, napari.layers.Image) and active in [layer for _, layer in self.image_layers()]:
            self.combo.value = active

    def watch_shapes(self) -> None:
        """Follow edits and selections in every Shapes layer: a drawn rectangle may be the region."""
        import napari

        layers = list(self._viewer.layers)
        for layer in layers:
            if isinstance(layer, napari.layers.Shapes) and not any(same_layer(layer, seen) for seen in self._watched_shapes):
                layer.events.data.connect(self._on_region_edit)
                layer.events.highlight.connect(self._on_region_edit)
                self._watched_shapes.append(layer)
        self._watched_shapes = [seen for seen in self._watched_shapes if any(same_layer(seen, layer) for layer in layers)]
