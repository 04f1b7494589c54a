"""Kept so that ``from napari_zsdenoise.benchmark import ...`` still works; the code is in :mod:`napari_zsdenoise.evaluation`."""

from napari_zsdenoise.evaluation import *  # noqa: F403
from napari_zsdenoise.evaluation import __all__  # noqa: F401
