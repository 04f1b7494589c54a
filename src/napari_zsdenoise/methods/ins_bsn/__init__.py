"""INS-BSN: settings and preset here, the method in ``method.py``."""

from napari_zsdenoise.methods._lazy import lazy_attributes
from napari_zsdenoise.methods.ins_bsn.settings import CITATION, PRESETS, INSBSNConfig

__all__ = ["CITATION", "PRESETS", "INSBSNConfig", "INSBSNMethod", "dilate_cross", "draw_masks", "ins_bsn_losses"]
__getattr__ = lazy_attributes(__name__, "method", ("INSBSNMethod", "dilate_cross", "draw_masks", "ins_bsn_losses"))
