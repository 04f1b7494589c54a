"""MPI iterative filling (Ma et al., NeurIPS 2024): settings and presets here, the method in ``method.py``."""

from napari_zsdenoise.methods._lazy import lazy_attributes
from napari_zsdenoise.methods.mpi.settings import CITATION, PRESETS, MPIConfig

__all__ = ["CITATION", "PRESETS", "MPIConfig", "MPIMethod", "merge_subimages", "split_subimages"]
__getattr__ = lazy_attributes(__name__, "method", ("MPIMethod", "merge_subimages", "split_subimages"))
