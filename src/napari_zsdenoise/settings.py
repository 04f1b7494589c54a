"""Settings that describe themselves: label, help, range and level of every field.

A method's settings are a frozen dataclass derived from :class:`MethodSettings` whose
user-facing fields are declared with :func:`setting`. From that one declaration the
values are validated, ``zsdenoise`` builds its command-line options, ``zsdenoise methods
--verbose`` lists them and the napari widget builds its fields. No torch import here.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: Kinds of setting values, each with its own parsing, validation and widget.
SETTING_KINDS = ("int", "float", "bool", "weights")
_METADATA_KEY = "napari_zsdenoise.setting"


@dataclass(frozen=True)
class SettingInfo:
    """What a user needs to know about one setting.

    Attributes
    ----------
    name : str
        The field name, also the Python keyword and (with dashes) the CLI option.
    label : str
        Short label for a form.
    help : str
        One or two sentences saying what the setting does.
    kind : str
        One of :data:`SETTING_KINDS`.
    default : Any
        The value in the settings the description was made from (a preset's value).
    low, high : float or None
        Bounds of the valid range (None: unbounded on that side).
    low_open, high_open : bool
        Whether the bound itself is excluded.
    advanced : bool
        Shown only in the advanced part of a form; most users never change it.
    applies_when : tuple of str
        Settings that switch this one on (true, or above 0; with several, any of them): without them it
        does nothing, so a form greys it (still showing its value) and an estimate ignores it.
    changes_step_cost : bool
        Whether its value changes the work of one iteration (a speed probe measured under one value holds
        for every other when it does not).
    """

    name: str
    label: str
    help: str
    kind: str
    default: Any
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    advanced: bool = False
    applies_when: tuple[str, ...] = ()
    changes_step_cost: bool = True

    def applies(self, values: dict[str, Any]) -> bool:
        """Whether this setting has an effect with the other settings at ``values`` (by name)."""
        return not self.applies_when or any(bool(values.get(name)) for name in self.applies_when)

    @property
    def option(self) -> str:
        """The command-line option, e.g. ``--mask-ratio``."""
        return "--" + self.name.replace("_", "-")

    def range_text(self) -> str:
        """The valid range in interval notation, or '' when unbounded."""
        if self.low is None and self.high is None:
            return ""
        left = "(" if self.low_open or self.low is None else "["
        right = ")" if self.high_open or self.high is None else "]"
        low = "-inf" if self.low is None else f"{self.low:g}"
        high = "inf" if self.high is None else f"{self.high:g}"
        return f"{left}{low}, {high}{right}"

    def check(self, value: Any) -> None:
        """Raise TypeError or ValueError unless ``value`` is valid for this setting."""
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise TypeError(f"{self.name} must be True or False; got {value!r}")
            return
        if self.kind == "weights":
            if value is not None and not isinstance(value, (str, Path)):
                raise TypeError(f"{self.name} must be a path or None; got {value!r}")
            return
        wanted = numbers.Real if self.kind == "float" else numbers.Integral
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, wanted):
            raise TypeError(f"{self.name} must be {'a number' if self.kind == 'float' else 'an int'}; got {value!r}")
        if self.kind == "float" and not math.isfinite(value):
            raise ValueError(f"{self.name} must be a finite number; got {value}")
        if self.kind == "int" and self.high is None and self.low is not None:
            if value < self.low:
                raise ValueError(f"{self.name} must be >= {self.low:g}; got {value}")
            return
        too_low = self.low is not None and (value <= self.low if self.low_open else value < self.low)
        too_high = self.high is not None and (value >= self.high if self.high_open else value > self.high)
        if too_low or too_high:
            raise ValueError(f"{self.name} must be in {self.range_text()}; got {value}")

    def parse(self, text: str) -> Any:
        """The value written as ``text`` (command line, ``--set NAME=VALUE``), checked."""
        text = text.strip()
        try:
            if self.kind == "int":
                value: Any = int(text)
            elif self.kind == "float":
                value = float(text)
            elif self.kind == "bool":
                value = _parse_bool(text)
            else:
                from napari_zsdenoise.weights import parse_weights_choice

                value = parse_weights_choice(text)
        except ValueError as exc:
            raise ValueError(f"{self.name}: cannot read {text!r} as {_KIND_NOUNS[self.kind]} ({exc})") from None
        self.check(value)
        if self.kind == "weights":
            from napari_zsdenoise.weights import check_weights_file

            check_weights_file(value)  # a text or cut-short file is refused as soon as it is named
        return value


_KIND_NOUNS = {"int": "an integer", "float": "a number", "bool": "true or false", "weights": "weights"}
_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def _parse_bool(text: str) -> bool:
    if text.lower() in _TRUE:
        return True
    if text.lower() in _FALSE:
        return False
    raise ValueError(f"expected one of {', '.join(_TRUE + _FALSE)}")


def setting(
    default: Any,
    help: str,  # noqa: A002 - the natural name, as in argparse
    *,
    label: str | None = None,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    advanced: bool = False,
    kind: str | None = None,
    applies_when: str | tuple[str, ...] = (),
    changes_step_cost: bool = True,
) -> Any:
    """A dataclass field that describes itself (see :class:`SettingInfo`).

    ``kind`` is worked out from the field's type unless given (``"weights"`` must be). A setting changes the
    cost of a step unless declared otherwise, so that a new setting costs a speed probe, never a wrong estimate.
    """
    if kind is not None and kind not in SETTING_KINDS:
        raise ValueError(f"kind must be one of {SETTING_KINDS}; got {kind!r}")
    description = {"label": label, "help": help, "low": low, "high": high, "low_open": low_open,
                   "high_open": high_open, "advanced": advanced, "kind": kind,
                   "applies_when": (applies_when,) if isinstance(applies_when, str) else tuple(applies_when),
                   "changes_step_cost": changes_step_cost}
    return field(default=default, metadata={_METADATA_KEY: description})


def _kind_of(annotation: Any) -> str:
    for kind, python_type in (("bool", bool), ("int", int), ("float", float)):
        if annotation is python_type:
            return kind
    raise TypeError(f"cannot tell the kind of a setting annotated {annotation!r}; pass kind=")


def describe_settings(settings: Any) -> list[SettingInfo]:
    """Every user-facing setting of ``settings`` (a settings dataclass instance or type), in field order.

    Defaults are the values of ``settings`` when it is an instance (a preset), else the
    class defaults.
    """
    settings_type = settings if isinstance(settings, type) else type(settings)
    hints = typing.get_type_hints(settings_type)
    infos = []
    for item in dataclasses.fields(settings_type):
        description = item.metadata.get(_METADATA_KEY)
        if description is None:
            continue
        kind = description["kind"] or _kind_of(hints[item.name])
        default = item.default if isinstance(settings, type) else getattr(settings, item.name)
        label = description["label"] or item.name.replace("_", " ")
        infos.append(SettingInfo(
            name=item.name, label=label, help=description["help"], kind=kind, default=default,
            low=description["low"], high=description["high"], low_open=description["low_open"],
            high_open=description["high_open"], advanced=description["advanced"],
            applies_when=description["applies_when"], changes_step_cost=description["changes_step_cost"]))
    return infos


def check_declared_settings(settings: Any) -> None:
    """Validate every field of the frozen dataclass ``settings`` declared with :func:`setting`, from its
    own description; numpy scalars are welcome, but the provenance keeps plain numbers."""
    for info in describe_settings(type(settings)):
        value = getattr(settings, info.name)
        info.check(value)
        if info.kind in ("int", "float") and not isinstance(value, (int, float)):
            object.__setattr__(settings, info.name, int(value) if info.kind == "int" else float(value))


@dataclass(frozen=True)
class Phase:
    """A part of a plane's schedule: ``iterations`` steps, each computing on ``shape`` pixels."""

    name: str
    iterations: int
    shape: tuple[int, int]

    @property
    def pixels(self) -> int:
        return int(self.shape[0]) * int(self.shape[1])


@dataclass(frozen=True)
class PlanePlan:
    """The phases of one plane in order; ``can_end_sooner``: early stopping may end it before their end."""

    phases: tuple[Phase, ...]
    can_end_sooner: bool

    @property
    def iterations(self) -> int:
        return sum(phase.iterations for phase in self.phases)


@dataclass(frozen=True)
class MethodSettings:
    """Base of every method's settings.

    Every field declared with :func:`setting` is validated on construction from its own
    description; a subclass adds checks that involve several fields in :meth:`check`.
    Subclasses redeclare ``iterations`` with their own default and wording.
    """

    iterations: int = setting(100, "Optimisation steps per plane.", low=1, changes_step_cost=False)

    def __post_init__(self) -> None:
        check_declared_settings(self)
        self.check()

    def check(self) -> None:
        """Checks across fields (raise ValueError); the single-field ones are already done."""

    def plan(self, shape: tuple[int, int], warm: bool = False) -> PlanePlan:
        """The schedule of one plane of ``shape`` (height, width): its phases, each with its iterations and
        the pixels one of them computes on; ``warm``: a plane of a stack after the first one a run computes.
        The estimate multiplies it, the run's time left follows it."""
        return PlanePlan((Phase("whole plane", self.iterations, tuple(shape)),), can_end_sooner=False)

    def plane_budget(self, warm: bool) -> int:
        """Most iterations of one plane (of any shape); see :meth:`plan`."""
        return self.plan((1 << 30, 1 << 30), warm).iterations

    @property
    def min_size(self) -> int:
        """Smallest plane height and width in pixels these settings accept."""
        return 1

    @property
    def context_planes(self) -> int:
        """Neighbouring planes on each side the method sees with each plane (0: none)."""
        return 0

    @property
    def out_of_memory_advice(self) -> str:
        """What to change when a plane did not fit in the device's memory (a phrase for
        :func:`napari_zsdenoise.devices.out_of_memory_error`); a method names its own settings."""
        return "denoise a smaller region of the image"

    @property
    def needs_weights_file(self) -> bool:
        """Whether the method runs only with a weights file the user trained (no shipped or random start)."""
        return False


def check_range(name: str, value: float, low: float | None, high: float | None, *, low_open: bool = False,
                high_open: bool = False) -> None:
    """ValueError unless ``low <= value <= high`` (a bound excluded where it is open); for settings
    not declared with :func:`setting`."""
    SettingInfo(name, name, "", "float", value, low, high, low_open, high_open).check(value)


def check_ints(settings: object, names: tuple[str, ...], *, minimum: int = 1) -> None:
    """TypeError unless each named field of ``settings`` is an int (not a bool); ValueError below ``minimum``."""
    for name in names:
        SettingInfo(name, name, "", "int", None, low=minimum).check(getattr(settings, name))
