"""Qt/napari user interface; everything else in the package works without it."""
