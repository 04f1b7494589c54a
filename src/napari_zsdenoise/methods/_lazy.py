"""Lazy attributes for the method packages: settings are cheap, implementations import torch."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_attributes(package: str, module: str, names: tuple[str, ...]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``package.module`` when one of ``names`` is first used."""

    def __getattr__(name: str) -> Any:
        if name in names:
            return getattr(importlib.import_module(f"{package}.{module}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
