"""The contract between the engine and every denoising method, and a method's registry entry.

A run calls, in this order::

    method = spec.build(config)          # the method's settings, validated
    method.setup(device, seed, precision)  # once per run: weights loaded and hashed once
    for each plane:
        method.prepare(plane, plane_seed)
        plan = method.plane_plan(shape, warm)   # the plane's phases
        for each phase (after the first: method.start_phase(number)):
            until the phase's iterations are run, it reports finished, or the run is stopped:
                record = method.step()   # StepRecord(loss, finished, scores)
                method.preview()         # when a preview is due
        method.result(); method.plane_facts()
    method.run_facts()

Images cross the contract as 2-D float32 numpy arrays in normalised units (see
``normalization.py``). No torch import here, so listing methods stays cheap.
"""

from __future__ import annotations

import dataclasses
import importlib
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from napari_zsdenoise.settings import MethodSettings, PlanePlan, describe_settings

if TYPE_CHECKING:
    import numpy as np
    import torch


@dataclass(frozen=True)
class StepRecord:
    """What one optimisation step reports.

    Attributes
    ----------
    loss : float or torch.Tensor
        The step's training loss (normalised units). A method may return the detached
        0-d tensor: the engine reads it (a host-device sync on a GPU) only when needed.
    finished : bool
        True when the method has decided that this plane is done (e.g. early stopping);
        the engine then moves on after this step.
    scores : Mapping[str, float]
        Optional named figures computed in this step (e.g. a held-out check), for
        observers such as studies and the convergence plot.
    """

    loss: Any
    finished: bool = False
    scores: Mapping[str, float] = field(default_factory=dict)


class DenoisingMethod(ABC):
    """What every method implements; the engine relies on nothing else.

    Parameters
    ----------
    config : MethodSettings
        The method's validated settings (its own :class:`MethodSettings` subclass).

    Attributes
    ----------
    bf16_safe : bool
        Whether :meth:`step` may run under bfloat16 autocast (the engine's ``precision``).
        A method sets it only after measuring that its quality holds.
    """

    bf16_safe: ClassVar[bool] = False

    def __init__(self, config: MethodSettings) -> None:
        self.config = config

    def setup(self, device: torch.device, seed: int, precision: str = "fp32") -> None:
        """Run-level preparation, once before the first plane (load weights here, not per plane).

        ``precision`` is what the engine runs :meth:`step` in (``"fp32"`` or ``"bf16"``).
        """
        self.device = device
        self.seed = seed
        self.precision = precision

    @abstractmethod
    def prepare(self, plane: np.ndarray, plane_seed: int, context: np.ndarray | None = None) -> None:
        """Start on a new plane.

        ``context`` holds the ``2 * config.context_planes`` neighbouring planes (before,
        then after; normalised like ``plane``) when the settings ask for them, else None.
        May keep state from the previous plane (a warm start); a method that does not
        must give the same result for a plane whatever came before it.
        """

    def plane_plan(self, shape: tuple[int, int], warm: bool) -> PlanePlan:
        """The schedule of the plane :meth:`prepare` has just started, which the engine runs: its phases,
        each with its iterations. ``shape`` is the plane's, ``warm`` whether a plane of this run came before
        it. By default the settings' plan; a method that decides more from the plane itself (a crop
        refused on correlated noise, crops for a memory budget) reports what it decided."""
        return self.config.plan(shape, warm)

    def start_phase(self, number: int) -> None:
        """Go on to phase ``number`` (1 for the second) of :meth:`plane_plan`, once the phase before has
        run its iterations or reported finished. Only a method whose plans have several phases is asked."""
        raise NotImplementedError(f"{type(self).__name__} plans a single phase per plane")

    @abstractmethod
    def step(self) -> StepRecord:
        """Run one optimisation iteration of the current phase; ``finished`` ends the phase (the plane,
        in its last phase)."""

    @abstractmethod
    def preview(self) -> np.ndarray:
        """The current estimate of the clean plane (cheap; called every few steps)."""

    @abstractmethod
    def result(self) -> np.ndarray:
        """The final estimate after the last (or an interrupted) step."""

    def plane_facts(self) -> dict[str, Any]:
        """Facts about the current plane worth keeping in its provenance record (JSON-ready)."""
        return {}

    def run_facts(self) -> dict[str, Any]:
        """Facts about the whole run for the provenance; ``weights`` says where pre-trained
        weights came from (empty when the method uses none)."""
        return {"weights": {}}


@dataclass(frozen=True)
class MethodSpec:
    """A named, user-selectable method or preset with its default settings.

    Attributes
    ----------
    name : str
        What users type and pick (``--method``, the widget's menu).
    summary : str
        One line for listings.
    implementation : str
        ``"package.module:ClassName"`` of a :class:`DenoisingMethod`, imported when a run starts.
    default_config : MethodSettings
        The preset's settings.
    citation : str
        The paper the method comes from ('' for this project's own).
    recommendation : str
        For the one preset to start with, why (one line); '' for every other preset.
    hint : str
        A few words that set the preset apart in a menu, e.g. "best quality per second",
        "fastest", "the paper's preset"; '' for none. Shown next to the name, so it must stay
        true of the preset as it is (speed and quality claims as measured in ``docs/``).
    """

    name: str
    summary: str
    implementation: str
    default_config: MethodSettings
    citation: str = ""
    recommendation: str = ""
    hint: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.default_config, MethodSettings):
            raise TypeError(f"{self.name}: default_config must be a MethodSettings, not {type(self.default_config).__name__}")
        if ":" not in self.implementation:
            raise ValueError(f"{self.name}: implementation must read 'package.module:ClassName'")

    @property
    def config_type(self) -> type:
        return type(self.default_config)

    def settings(self) -> list:
        """The preset's user-facing settings with their values (see :func:`describe_settings`)."""
        return describe_settings(self.default_config)

    def make_config(self, **overrides: Any) -> MethodSettings:
        """Return the default settings with ``overrides`` applied (validated)."""
        unknown = set(overrides) - {f.name for f in dataclasses.fields(self.default_config)}
        if unknown:
            raise TypeError(f"{self.name} has no setting(s) {', '.join(sorted(unknown))}")
        return dataclasses.replace(self.default_config, **overrides)

    def resolve_config(self, config: Any = None, **overrides: Any) -> MethodSettings:
        """The settings a run uses: ``config`` (or the defaults) with ``overrides`` applied."""
        if config is None:
            return self.make_config(**overrides)
        if not isinstance(config, self.config_type):
            raise TypeError(f"{self.name} expects a {self.config_type.__name__}, got {type(config).__name__}")
        return dataclasses.replace(config, **overrides) if overrides else config

    def implementation_class(self) -> type[DenoisingMethod]:
        """Import the implementation and check that it keeps the contract."""
        module_name, _, class_name = self.implementation.partition(":")
        cls = getattr(importlib.import_module(module_name), class_name)
        if not (isinstance(cls, type) and issubclass(cls, DenoisingMethod)):
            raise TypeError(f"{self.implementation} is not a DenoisingMethod")
        return cls

    def build(self, config: MethodSettings) -> DenoisingMethod:
        return self.implementation_class()(config)
