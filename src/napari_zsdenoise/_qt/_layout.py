"""Small layout helpers of the dock."""

from __future__ import annotations

from magicgui.widgets import Label


def wrap_lines(*labels: Label) -> None:
    """Let long lines wrap within the dock's width instead of widening it."""
    from qtpy.QtWidgets import QSizePolicy

    for label in labels:
        label.native.setWordWrap(True)
        # Ignored: the label's one-line width must not become the dock's width.
        label.native.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
