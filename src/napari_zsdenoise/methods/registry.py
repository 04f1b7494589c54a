"""The registry of named methods and presets that the engine, CLI and widget list.

Each method lives in its own package under ``methods/`` (settings and presets in
``settings.py``, the implementation in ``method.py``); adding one means adding that
package and its name to :data:`METHOD_PACKAGES`. Registering costs no torch import: an
implementation is imported only when a run starts.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

from napari_zsdenoise.methods.base import MethodSpec

#: Method packages under ``napari_zsdenoise.methods``, whose presets are listed in this order.
METHOD_PACKAGES = ("mpi", "zs_n2n", "zs_n2m", "ins_bsn", "mid")


def config_parameters(config: Any) -> dict[str, Any]:
    """``config``'s fields as JSON-ready values (numbers, booleans and None kept, the rest as text).

    This is the form kept in a run's provenance, so two runs used the same settings exactly
    when these dictionaries are equal.
    """
    return {
        key: (str(value) if value is not None and not isinstance(value, (int, float, bool)) else value)
        for key, value in dataclasses.asdict(config).items()
    }


_REGISTRY: dict[str, MethodSpec] = {}


def register_method(spec: MethodSpec) -> None:
    """Add ``spec`` to the registry (names are unique, case-insensitive)."""
    if not isinstance(spec, MethodSpec):
        raise TypeError(f"expected a MethodSpec, got {type(spec).__name__}")
    key = spec.name.lower()
    if key in _REGISTRY:
        raise ValueError(f"a method named {spec.name!r} is already registered")
    if spec.recommendation and any(other.recommendation for other in _REGISTRY.values()):
        raise ValueError(f"{spec.name}: only one preset is recommended, and {recommended_method()} already is")
    _REGISTRY[key] = spec


def get_method_spec(name: str) -> MethodSpec:
    try:
        return _REGISTRY[str(name).lower()]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; choose one of: {', '.join(method_names())}") from None


def method_names() -> list[str]:
    return list(_REGISTRY)


def recommended_method() -> str:
    """The preset to start with: the default of the widget and the command line."""
    return next(spec.name for spec in _REGISTRY.values() if spec.recommendation)


for _package in METHOD_PACKAGES:
    for _spec in importlib.import_module(f"napari_zsdenoise.methods.{_package}").PRESETS:
        register_method(_spec)
