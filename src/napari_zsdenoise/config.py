"""The settings classes of every method, importable from one place (each is defined beside its method)."""

from napari_zsdenoise.methods._shared_settings import EarlyStoppingSettings
from napari_zsdenoise.methods.ins_bsn.settings import INSBSNConfig
from napari_zsdenoise.methods.mpi.settings import MPIConfig
from napari_zsdenoise.methods.zs_n2m.settings import ZSN2MConfig
from napari_zsdenoise.methods.zs_n2n.settings import ZSN2NConfig
from napari_zsdenoise.settings import MethodSettings

__all__ = ["EarlyStoppingSettings", "INSBSNConfig", "MPIConfig", "MethodSettings", "ZSN2MConfig", "ZSN2NConfig"]
