"""The layers one run of the dock adds: its preview, updated in place while it runs, and its result."""

from __future__ import annotations

from typing import Any

import numpy as np

from napari_zsdenoise._qt.region import Target, full_resolution
from napari_zsdenoise.engine import ProgressEvent


def preview_start(layer: Any) -> np.ndarray:
    """What a stack's preview shows before its planes are computed: the input when it is in
    memory already, else zeros, so that a lazy stack is not read whole for a preview."""
    data = full_resolution(layer)
    if isinstance(data, np.ndarray) and not isinstance(data, np.memmap):
        return np.array(data, dtype=np.float32)
    return np.zeros(data.shape, dtype=np.float32)


class OutputLayers:
    """Layers of a run on ``target`` of ``source`` (in the source's display range, the camera offset
    removed, and at the target's place). :attr:`adding` is True while a layer is being added: napari selects
    a layer it adds, and the dock must not take a preview or result for the next run's input."""

    def __init__(self, viewer: Any, source: Any, target: Target, camera_offset: float) -> None:
        self._viewer, self.source, self.target, self._camera_offset = viewer, source, target, camera_offset
        self.adding = False
        self._preview: Any = None
        self._shown_plane: tuple[int, ...] | None = None

    def _add(self, data: Any, **options: Any) -> Any:
        low, high = self.source.contrast_limits
        self.adding = True
        try:
            return self._viewer.add_image(data, contrast_limits=(low - self._camera_offset, high - self._camera_offset),
                                          colormap=self.source.colormap, **self.target.geometry, **options)
        finally:
            self.adding = False

    def show(self, event: ProgressEvent) -> None:
        """Put the event's preview on screen; for a stack, move the view to its plane once per plane."""
        whole = self.target.two_dimensional or not event.plane_index
        if self._preview is None or self._preview not in self._viewer.layers:
            self._preview = self._add(event.preview if whole else preview_start(self.source),
                                      name=f"{self.source.name} [preview]")
        if whole:
            self._preview.data = event.preview
            return
        self._preview.data[event.plane_index] = event.preview
        self._preview.refresh()
        if event.plane_index != self._shown_plane:
            # Once per plane, so that a user may look elsewhere while it runs.
            self._shown_plane = event.plane_index
            self._show_plane(event.plane_index)

    def _show_plane(self, index: tuple[int, ...]) -> None:
        """Move the viewer to plane ``index`` of the source, so the preview on screen is the one being computed."""
        leading = len(index)
        world = self.source.data_to_world([*index, 0, 0])
        first = self._viewer.dims.ndim - self.source.ndim
        for axis, value in zip(range(first, first + leading), world[:leading]):
            self._viewer.dims.set_point(axis, value)

    def remove_preview(self) -> None:
        if self._preview is not None and self._preview in self._viewer.layers:
            self._viewer.layers.remove(self._preview)
        self._preview = None

    def add_result(self, data: Any, name: str, metadata: dict[str, Any]) -> Any:
        """The result as a new layer, named ``name`` or ``name_2``, … : no earlier result is replaced."""
        taken = {layer.name for layer in self._viewer.layers}
        candidate, number = name, 2
        while candidate in taken:
            candidate, number = f"{name}_{number}", number + 1
        return self._add(data, name=candidate, metadata={"napari_zsdenoise": metadata})
