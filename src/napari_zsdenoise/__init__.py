"""Zero-shot, self-supervised denoising of fluorescence microscopy images.

The engine is importable without Qt or napari; torch is imported only when a run starts.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("napari-zsdenoise")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

from napari_zsdenoise.engine import DenoiseRun, ProgressEvent, denoise
from napari_zsdenoise.methods import get_method_spec, method_names, recommended_method

__all__ = ["DenoiseRun", "ProgressEvent", "__version__", "denoise", "get_method_spec", "method_names",
           "recommended_method"]
