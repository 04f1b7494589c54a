"""The command line's options: every setting of every method, parsed by the chosen method's own
declaration, and the run-level choices (device, precision, threads, seed)."""

from __future__ import annotations

import argparse
import os
from typing import Any

from napari_zsdenoise._validation import MAX_SEED, check_seed
from napari_zsdenoise.devices import PRECISIONS
from napari_zsdenoise.settings import SettingInfo


def settings_by_name() -> dict[str, list[tuple[str, SettingInfo]]]:
    """Every setting of every registered method, by name: each method's own declaration of it."""
    from napari_zsdenoise.methods import get_method_spec, method_names

    settings: dict[str, list[tuple[str, SettingInfo]]] = {}
    for method in method_names():
        for info in get_method_spec(method).settings():
            settings.setdefault(info.name, []).append((method, info))
    return settings


def ranges_by_method(declarations: list[tuple[str, SettingInfo]]) -> str:
    """" Range (0, 1): mpi, bsn; [0, 1): mid." — the ranges a setting has, with the methods of each."""
    by_range: dict[str, list[str]] = {}
    for method, info in declarations:
        by_range.setdefault(info.range_text(), []).append(method)
    if list(by_range) == [""]:
        return ""
    if len(by_range) == 1:
        return f" Range {next(iter(by_range))}."
    return " Range " + "; ".join(f"{text or 'unbounded'} for {', '.join(methods)}"
                                for text, methods in by_range.items()) + "."


def add_method_options(parser: argparse.ArgumentParser, *, grouped: bool = False) -> Any:
    """The method, its settings, the device and the seed; with ``grouped``, under the titles
    "method", "method settings", "device" and "advanced" (returned, for more of its kind).

    A setting's value is read as text here and parsed later by the chosen method's own
    declaration (:func:`option_settings`): methods that share a name may differ in range.
    """
    from napari_zsdenoise.methods import recommended_method

    method_group = parser.add_argument_group("method") if grouped else parser
    method_group.add_argument("--method", default=recommended_method(),
                              help=f"method or preset (see `zsdenoise methods`); default {recommended_method()}, "
                                   f"the recommended one")
    group = parser.add_argument_group(
        "method settings", "Each defaults to the chosen preset's value; `zsdenoise methods --verbose` lists them per method.")
    for name, declarations in settings_by_name().items():
        info = declarations[0][1]
        extra = f" ({', '.join(method for method, _ in declarations)})"
        if info.kind == "bool":
            group.add_argument(info.option, dest=f"setting_{name}", action=argparse.BooleanOptionalAction,
                               default=argparse.SUPPRESS,
                               help=info.help.replace("%", "%%") + extra)
        else:
            # Absent unless given: None is a value of its own for some settings (weights).
            group.add_argument(info.option, dest=f"setting_{name}", metavar=name.upper(), default=argparse.SUPPRESS,
                               help=(info.help + ranges_by_method(declarations)).replace("%", "%%") + extra)
    device_group = parser.add_argument_group("device", "Where and in what precision the training computes.") \
        if grouped else parser
    device_group.add_argument("--device", default="auto",
                              help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps")
    device_group.add_argument("--precision", default="auto", choices=PRECISIONS,
                              help="auto (bfloat16 where the device computes it fast and the method allows it, else "
                                   "fp32), fp32 or bf16; default auto")
    device_group.add_argument("--threads", type=threads_option, default=0, help=THREADS_HELP)
    advanced = parser.add_argument_group("advanced", "Rarely needed.") if grouped else group
    advanced.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                          help="any setting of the chosen method by its name, e.g. --set patience=100 (repeatable)")
    (advanced if grouped else parser).add_argument("--seed", type=seed_option, default=0,
                                                   help=f"random seed in [0, {MAX_SEED}] (default 0); the same seed "
                                                        f"on the same device reproduces a result")
    return advanced


THREADS_HELP = ("CPU threads; 0 (default): the cores other programs leave free, looked at again every few "
                "seconds (a core another program keeps busy would slow every step); a number fixes them, as "
                "OMP_NUM_THREADS does")


def threads_option(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0 (0: automatic), got {text!r}")
    return value


def argument_parser_for(info: SettingInfo):
    def parse(text: str) -> Any:
        try:
            return info.parse(text)
        except (TypeError, ValueError, FileNotFoundError) as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def seed_option(text: str) -> int:
    try:
        return check_seed(int(text))
    except (TypeError, ValueError) as exc:
        raise argparse.ArgumentTypeError(str(exc) if "seed" in str(exc) else f"must be an integer, not {text!r}") \
            from None


def option_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given as options, each parsed and checked by the chosen method's own declaration.

    Raises
    ------
    ValueError
        For a value out of the method's range, or an option the method does not have.
    """
    from napari_zsdenoise.methods import get_method_spec

    given = {key.removeprefix("setting_"): value for key, value in vars(args).items() if key.startswith("setting_")}
    if not given:
        return {}
    spec = get_method_spec(args.method)
    own = {info.name: info for info in spec.settings()}
    settings: dict[str, Any] = {}
    for name, value in given.items():
        if name not in own:
            others = [method for method, _ in settings_by_name().get(name, [])]
            raise ValueError(f"--{name.replace('_', '-')} is not a setting of {spec.name} (it is one of "
                             f"{', '.join(others)}); `zsdenoise methods --verbose` lists each method's settings")
        settings[name] = own[name].parse(value) if isinstance(value, str) else value
    return settings


def method_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given on the command line, by option or by --set, checked against the chosen method."""
    from napari_zsdenoise.methods import get_method_spec

    overrides = option_settings(args)
    spec = get_method_spec(args.method)
    settings = {info.name: info for info in spec.settings()}
    for item in args.set:
        name, separator, text = item.partition("=")
        name = name.strip().replace("-", "_")
        if not separator:
            raise ValueError(f"--set takes NAME=VALUE, not {item!r}")
        if name not in settings:
            raise ValueError(f"{spec.name} has no setting {name!r}; its settings: {', '.join(settings)}")
        overrides[name] = settings[name].parse(text)
    return overrides


def finite_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"must be a finite number, not {text!r}")
    return value


def camera_offset_option(text: str) -> float:
    value = finite_number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 (the constant the camera adds to every pixel), not {text!r}")
    return value


def worker_count_option(text: str) -> int:
    cores = os.cpu_count() or 1
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number of workers, not {text!r}") from None
    if not 1 <= count <= cores:
        # Each worker trains with a core of its own: more workers than cores only share them.
        raise argparse.ArgumentTypeError(f"must be between 1 and {cores}, the cores of this machine; got {count}")
    return count
