"""Denoising methods and the registry the engine, CLI and widget list them from."""

from napari_zsdenoise.methods.registry import (
    DenoisingMethod,
    MethodSpec,
    get_method_spec,
    method_names,
    register_method,
)

__all__ = ["DenoisingMethod", "MethodSpec", "get_method_spec", "method_names", "register_method"]
