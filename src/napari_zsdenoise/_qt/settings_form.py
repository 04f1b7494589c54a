"""Form fields generated from a method's self-describing settings (``settings.py``).

Every field shows the chosen preset's value, so nothing can keep a value from the
previously chosen method. Only the fields a user changed become overrides: a preset
value that a spin box cannot show exactly still reaches the run unchanged.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, FloatSpinBox, SpinBox, Widget

from napari_zsdenoise.settings import SettingInfo
from napari_zsdenoise.weights import NO_WEIGHTS, SHIPPED, parse_weights_choice

WEIGHTS_SHIPPED = "shipped (pre-trained)"
WEIGHTS_RANDOM = "none (random initialisation)"
WEIGHTS_FILE = "file…"
WEIGHTS_CHOICES = (WEIGHTS_SHIPPED, WEIGHTS_RANDOM, WEIGHTS_FILE)
# Qt spin boxes hold 32-bit ints.
_LARGEST_INT = 2**31 - 1
_LARGEST_FLOAT = 1e9


def _float_step(value: float) -> float:
    """A step one decade below ``value``'s leading digit (magicgui shows enough decimals for it)."""
    if value == 0:
        return 0.01
    return 10.0 ** (math.floor(math.log10(abs(value))) - 1)


def _weights_choice(value: Any) -> str:
    if value is None:
        return WEIGHTS_RANDOM
    return WEIGHTS_SHIPPED if str(value) == SHIPPED else WEIGHTS_FILE


class SettingsForm:
    """The fields of one method's settings: the basic ones and, apart, the advanced ones.

    Parameters
    ----------
    settings : list of SettingInfo
        The preset's settings (``MethodSpec.settings()``), values included.
    weights_file_only : bool
        The method runs only with a weights file of the user's (``needs_weights_file``): the
        weights menu offers nothing else and the file field is always shown.
    """

    def __init__(self, settings: list[SettingInfo], *, weights_file_only: bool = False) -> None:
        self.settings = {info.name: info for info in settings}
        self.fields: dict[str, Widget] = {}
        self.basic = Container(labels=True)
        self.advanced = Container(labels=True)
        self.weights_file: FileEdit | None = None
        for info in settings:
            box = self.advanced if info.advanced else self.basic
            self.fields[info.name] = self._make_field(info, weights_file_only)
            box.append(self.fields[info.name])
            if info.kind == "weights":
                self.weights_file = FileEdit(label="weights file", mode="r", filter="*.pt *.pth", visible=False)
                if weights_file_only or _weights_choice(info.default) == WEIGHTS_FILE:
                    if info.default is not None:
                        self.weights_file.value = str(info.default)
                    self.weights_file.visible = True
                combo = self.fields[info.name]
                combo.changed.connect(lambda choice: setattr(self.weights_file, "visible", choice == WEIGHTS_FILE))
                box.append(self.weights_file)
        # What each field showed for the preset, to tell which ones the user changed.
        self._shown = {name: widget.value for name, widget in self.fields.items()}
        # A setting that does nothing unless another is on is greyed then, still showing its value, so that
        # a user sees what would apply once it is switched on.
        for info in self.settings.values():
            for switch in self._switches(info.name):
                self.fields[switch].changed.connect(self._grey_out_what_does_not_apply)
        self._grey_out_what_does_not_apply()

    def _switches(self, name: str) -> list[str]:
        """The settings of this form that switch ``name`` on (its declaration's ``applies_when``)."""
        return [switch for switch in self.settings[name].applies_when if switch in self.fields]

    def applies(self, name: str) -> bool:
        """Whether setting ``name`` has an effect with the values now shown."""
        switches = self._switches(name)
        return not switches or any(bool(self.fields[switch].value) for switch in switches)

    def _grey_out_what_does_not_apply(self, *_: Any) -> None:
        for name, widget in self.fields.items():
            widget.enabled = self.applies(name)

    def use_weights_file(self, path: str | Path) -> None:
        """Choose the weights file ``path`` (e.g. a model just trained) in the weights menu."""
        for name, info in self.settings.items():
            if info.kind == "weights" and self.weights_file is not None:
                self.fields[name].value = WEIGHTS_FILE
                self.weights_file.value = str(path)
                self.weights_file.visible = True

    @staticmethod
    def _make_field(info: SettingInfo, weights_file_only: bool = False) -> Widget:
        options: dict[str, Any] = {"label": info.label, "tooltip": info.help}
        if info.kind == "bool":
            return CheckBox(value=bool(info.default), **options)
        if info.kind == "weights":
            if weights_file_only:
                return ComboBox(choices=[WEIGHTS_FILE], value=WEIGHTS_FILE, **options)
            return ComboBox(choices=list(WEIGHTS_CHOICES), value=_weights_choice(info.default), **options)
        if info.kind == "int":
            low = 0 if info.low is None else int(info.low)
            high = _LARGEST_INT if info.high is None else int(info.high)
            return SpinBox(value=int(info.default), min=low, max=high, **options)
        low = -_LARGEST_FLOAT if info.low is None else float(info.low)
        high = _LARGEST_FLOAT if info.high is None else float(info.high)
        return FloatSpinBox(value=float(info.default), min=low, max=high, step=_float_step(float(info.default)), **options)

    def _value(self, name: str) -> Any:
        info, widget = self.settings[name], self.fields[name]
        if info.kind != "weights":
            return {"int": int, "float": float, "bool": bool}[info.kind](widget.value)
        if widget.value != WEIGHTS_FILE:
            return parse_weights_choice(SHIPPED if widget.value == WEIGHTS_SHIPPED else NO_WEIGHTS)
        path = self.weights_file.value if self.weights_file is not None else None
        if not path or not Path(path).is_file():
            raise ValueError("choose an existing weights file (.pt or .pth)")
        return parse_weights_choice(path)

    def overrides(self, *, strict: bool = True) -> dict[str, Any]:
        """The settings the user changed from the preset, as keyword overrides.

        With ``strict`` False, "file" weights without an existing file are left out instead
        of raising (for uses that do not load weights, such as an estimate of the duration).

        Raises
        ------
        ValueError
            If "file" weights are chosen but no existing file is given (``strict`` only).
        """
        changed = {}
        for name, widget in self.fields.items():
            file_changed = (self.settings[name].kind == "weights" and widget.value == WEIGHTS_FILE
                            and str(self.weights_file.value) != str(self.settings[name].default))
            if widget.value != self._shown[name] or file_changed:
                try:
                    changed[name] = self._value(name)
                except ValueError:
                    if strict:
                        raise
        return changed
