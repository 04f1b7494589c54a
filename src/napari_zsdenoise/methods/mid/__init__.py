"""MID, Mask, Inpaint and Denoise (Chihaoui & Favaro 2025): settings and preset here, the method in
``method.py``, training on a user's dataset in ``training.py``."""

from napari_zsdenoise.methods._lazy import lazy_attributes
from napari_zsdenoise.methods.mid.settings import CITATION, PRESETS, MIDConfig, MIDTrainingSettings

__all__ = ["CITATION", "PRESETS", "MIDConfig", "MIDMethod", "MIDTrainingSettings"]
__getattr__ = lazy_attributes(__name__, "method", ("MIDMethod",))
