"""Zero-Shot Noise2Noise: settings and preset here, the method in ``method.py``."""

from napari_zsdenoise.methods._lazy import lazy_attributes
from napari_zsdenoise.methods.zs_n2n.settings import CITATION, PRESETS, ZSN2NConfig

__all__ = ["CITATION", "PRESETS", "ZSN2NConfig", "ZSN2NMethod", "pair_downsample", "zs_n2n_losses"]
__getattr__ = lazy_attributes(__name__, "method", ("ZSN2NMethod", "pair_downsample", "zs_n2n_losses"))
