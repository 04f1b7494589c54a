"""Zero-Shot Noise2Mean: settings and presets here, the method in ``method.py``."""

from napari_zsdenoise.methods._lazy import lazy_attributes
from napari_zsdenoise.methods.zs_n2m.settings import CITATION, PRESETS, ZSN2MConfig

__all__ = ["CITATION", "PRESETS", "ZSN2MConfig", "ZSN2MMethod", "balanced_mask", "contrast_similarity",
           "local_mean", "mix_pair", "stage1_losses"]
__getattr__ = lazy_attributes(__name__, "method", ("ZSN2MMethod", "balanced_mask", "contrast_similarity", "local_mean",
                                                    "mix_pair", "stage1_losses"))
