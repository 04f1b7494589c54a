"""Denoising methods, the contract they keep, and the registry the engine, CLI and widget list them from."""

from napari_zsdenoise.methods.base import DenoisingMethod, MethodSpec, StepRecord
from napari_zsdenoise.methods.registry import get_method_spec, method_names, recommended_method, register_method

__all__ = ["DenoisingMethod", "MethodSpec", "StepRecord", "get_method_spec", "method_names", "recommended_method",
           "register_method"]
