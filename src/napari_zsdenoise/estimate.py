"""How long a run will take, told before it starts.

A short speed probe times a few iterations of the chosen method on a small random plane
on the chosen device, after one warm-up iteration. Its seconds per iteration are kept in a
JSON file in the user's cache folder, one entry per (device name, method, precision, torch
thread count, probe size and the settings that change the work of one iteration), so the
probe runs once per machine and choice. An estimate scales the probe's figure by the
plane's pixel count (the work of these networks grows with it) and multiplies by the
iteration budget. No Qt or napari import here; torch is imported only when needed.

The cache folder is ``$NAPARI_ZSDENOISE_CACHE_DIR`` when set, else
``$XDG_CACHE_HOME/napari-zsdenoise``, else ``~/.cache/napari-zsdenoise``. A cache file
that cannot be read or written is ignored: an estimate is never worth a failure.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import platform
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from napari_zsdenoise.methods.registry import config_parameters, get_method_spec
from napari_zsdenoise.settings import describe_settings

__all__ = ["CACHE_ENV", "PROBE_SIZE", "DurationEstimate", "cache_dir", "cache_file", "estimate_duration",
           "format_duration", "probe_key", "probe_seconds_per_iteration"]

#: Environment variable naming the cache folder (overrides the XDG default).
CACHE_ENV = "NAPARI_ZSDENOISE_CACHE_DIR"
#: Side in pixels of the probe's square plane (raised to the method's minimum size).
PROBE_SIZE = 128
#: Iterations timed by a probe, after ``PROBE_WARMUP`` untimed ones.
PROBE_ITERATIONS = 4
PROBE_WARMUP = 1
_CACHE_NAME = "speed-probes.json"
_CACHE_VERSION = 1



def cache_dir() -> Path:
    """The folder the probe cache lives in (see the module's docstring)."""
    chosen = os.environ.get(CACHE_ENV)
    if chosen:
        return Path(chosen).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "napari-zsdenoise"


def cache_file() -> Path:
    return cache_dir() / _CACHE_NAME


def _read_cache() -> dict[str, Any]:
    """The cached probe entries by key; {} when the file is missing, unreadable or not ours."""
    try:
        content = json.loads(cache_file().read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return {}
    if not isinstance(content, dict) or content.get("version") != _CACHE_VERSION:
        return {}
    entries = content.get("entries")
    return entries if isinstance(entries, dict) else {}


# Probes from two threads must not lose each other's entries between reading and writing.
_CACHE_LOCK = threading.Lock()


def _write_cache_entry(key: str, entry: dict[str, Any]) -> None:
    """Add ``entry`` under ``key``; silently nothing when the folder cannot be written."""
    with _CACHE_LOCK:
        entries = {**_read_cache(), key: entry}
        folder = cache_dir()
        temporary = None
        try:
            folder.mkdir(parents=True, exist_ok=True)
            # Written aside and renamed, so that a reader never sees half a file.
            handle, temporary = tempfile.mkstemp(dir=folder, prefix=".speed-", suffix=".json")
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                json.dump({"version": _CACHE_VERSION, "entries": entries}, stream, indent=1, sort_keys=True)
            os.replace(temporary, cache_file())
        except OSError:
            if temporary is not None:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)


def _device_name(device: Any) -> str:
    """What tells this machine's device apart from another's of the same type."""
    import torch

    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{torch.cuda.get_device_name(index)}"
    if device.type == "cpu":
        return f"cpu:{platform.machine()}:{platform.processor() or '?'}:{os.cpu_count()}"
    return str(device.type)


def _same_work_settings(config: Any) -> set[str]:
    """The settings that change how many iterations run, or what an iteration computes with, but not how
    much it computes (declared with ``changes_step_cost=False``): a probe under one value holds for all."""
    return {info.name for info in describe_settings(config) if not info.changes_step_cost}


def _probe_settings(config: Any) -> dict[str, Any]:
    """The settings that decide the work of one iteration, as JSON-ready values."""
    same = _same_work_settings(config)
    return {key: value for key, value in config_parameters(config).items() if key not in same}


@dataclass(frozen=True)
class _Resolved:
    key: str
    device: str
    precision: str
    probe_size: int
    config: Any


def _resolve(method: str, device: str | None, precision: str, overrides: dict[str, Any] | None,
             probe_size: int) -> _Resolved:
    import torch

    from napari_zsdenoise.devices import resolve_device, resolve_precision

    spec = get_method_spec(method)
    config = spec.make_config(**(overrides or {}))
    torch_device = resolve_device(device)
    resolved_precision = resolve_precision(precision, torch_device,
                                           method_allows=spec.implementation_class().bf16_safe)
    size = max(int(probe_size), config.min_size)
    key = json.dumps([_device_name(torch_device), spec.name, resolved_precision, torch.get_num_threads(), size,
                      _probe_settings(config)], sort_keys=True)
    return _Resolved(key, str(torch_device), resolved_precision, size, config)


def probe_key(method: str, *, device: str | None = "auto", precision: str = "auto",
              overrides: dict[str, Any] | None = None, probe_size: int = PROBE_SIZE) -> str:
    """The cache key of a probe for these choices (device and precision resolved as a run would)."""
    return _resolve(method, device, precision, overrides, probe_size).key


def probe_seconds_per_iteration(method: str, size: int, *, device: str | None = "auto", precision: str = "auto",
                                overrides: dict[str, Any] | None = None, iterations: int = PROBE_ITERATIONS,
                                warmup: int = PROBE_WARMUP, cancel: threading.Event | None = None,
                                seed: int = 0, threads: int | None = None) -> float | None:
    """Wall-clock seconds per iteration of ``method`` on a random ``size`` x ``size`` plane.

    Runs ``warmup`` untimed iterations (allocations, kernel start-up), then ``iterations``
    timed ones, with the settings in ``overrides`` that change the work of an iteration.
    Returns None when ``cancel`` is set before the end (e.g. because a real run starts and
    would share the device with the probe, spoiling both). ``threads``: CPU threads, chosen as a run
    chooses them when None.
    """
    from napari_zsdenoise.engine import DenoiseRun

    if size < 1 or iterations < 1 or warmup < 0:
        raise ValueError("size and iterations must be >= 1 and warmup >= 0")
    spec = get_method_spec(method)
    fields = {item.name for item in dataclasses.fields(spec.default_config)}
    same = _same_work_settings(spec.default_config)
    settings = {key: value for key, value in (overrides or {}).items() if key not in same}
    # No weights file to read and no early end: the probe times iterations, nothing else. A method
    # that runs only from the user's own model file is timed with that file, once one is chosen.
    if spec.default_config.needs_weights_file:
        settings["weights"] = (overrides or {}).get("weights")
        if settings["weights"] is None:
            raise ValueError(f"{spec.name} runs only with a model file of your own: choose it as its weights first")
    elif "weights" in fields:
        settings["weights"] = None
    if "early_stopping" in fields:
        settings["early_stopping"] = False
    if "start_crop" in fields:
        settings["start_crop"] = 0
    image = np.random.default_rng(seed).uniform(0.0, 1.0, (size, size)).astype(np.float32)
    run = DenoiseRun(image, spec.name, device=device, precision=precision, seed=seed, preview_every=0,
                     preview_interval=0, iterations=warmup + iterations, threads=threads, **settings)
    stamps = []
    for event in run:
        if cancel is not None and cancel.is_set():
            run.stop()
            return None
        stamps.append(event.elapsed)
    if len(stamps) < warmup + iterations:
        return None
    start = stamps[warmup - 1] if warmup else 0.0
    return (stamps[-1] - start) / iterations


def format_duration(seconds: float) -> str:
    """'40 s', '7 min', '2 h 05 min': as precise as a user planning their time needs."""
    if seconds < 1:
        return "< 1 s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = max(1, round(seconds / 60))
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def _format_step(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.2g} s"


@dataclass(frozen=True)
class DurationEstimate:
    """How long a run is expected to take.

    Attributes
    ----------
    method : str
        The method or preset.
    device, precision : str
        As the run resolves them (e.g. ``"cpu"``, ``"fp32"``).
    plane_shape : tuple of int
        (height, width) of one plane.
    planes : int
        Planes the run computes.
    iterations : int
        The first plane's iteration budget (a maximum when :attr:`can_end_sooner`).
    later_iterations : int
        The budget of each further plane (smaller than ``iterations`` with a warm start).
    seconds_per_iteration : float
        At ``plane_shape``: the probe's figure scaled by pixel count.
    can_end_sooner : bool
        Early stopping may end each plane before its budget; the total is then an upper bound.
    from_cache : bool
        The probe's figure came from the cache rather than a probe just run.
    probe_size : int
        Side of the probe's square plane.
    start_crop_planes, start_crop_iterations, start_crop_seconds_per_iteration
        Planes that first train on a start crop, that crop's budget and seconds per iteration
        (0 when no plane does); :attr:`iterations` is then the whole plane's share.
    """

    method: str
    device: str
    precision: str
    plane_shape: tuple[int, int]
    planes: int
    iterations: int
    later_iterations: int
    seconds_per_iteration: float
    can_end_sooner: bool
    from_cache: bool
    probe_size: int
    start_crop_planes: int = 0
    start_crop_iterations: int = 0
    start_crop_seconds_per_iteration: float = 0.0

    @property
    def total_iterations(self) -> int:
        """Iterations on whole planes (a start crop's are not counted)."""
        return self.iterations + (self.planes - 1) * self.later_iterations

    @property
    def total_seconds(self) -> float:
        return (self.total_iterations * self.seconds_per_iteration
                + self.start_crop_planes * self.start_crop_iterations * self.start_crop_seconds_per_iteration)

    def describe(self) -> str:
        """e.g. 'up to 7 min on cpu (1 plane, ≤ 1000 it × 0.41 s)'."""
        bound = "≤ " if self.can_end_sooner else ""
        planes = f"{self.planes} plane" + ("s" if self.planes != 1 else "")
        if self.planes == 1:
            budget = f"{self.iterations}"
        elif self.later_iterations == self.iterations:
            budget = f"{self.planes} × {self.iterations}"
        else:
            budget = f"{self.iterations} + {self.planes - 1} × {self.later_iterations}"
        if self.start_crop_planes:
            crops = "" if self.start_crop_planes == 1 else f"{self.start_crop_planes} × "
            budget = (f"{crops}{self.start_crop_iterations} it × {_format_step(self.start_crop_seconds_per_iteration)}"
                      f" on a crop + {budget}")
        prefix = "up to " if self.can_end_sooner else ""
        return (f"{prefix}{format_duration(self.total_seconds)} on {self.device} "
                f"({planes}, {bound}{budget} it × {_format_step(self.seconds_per_iteration)})")


def estimate_duration(method: str, shape: tuple[int, ...], *, device: str | None = "auto", precision: str = "auto",
                      overrides: dict[str, Any] | None = None, probe: bool = True, probe_size: int = PROBE_SIZE,
                      cancel: threading.Event | None = None) -> DurationEstimate | None:
    """Estimate how long ``method`` takes on an image of ``shape`` (Y and X last; every plane computed).

    The seconds per iteration come from the cache, else from a probe run now (which takes a
    few seconds: call this off any GUI thread). Returns None when nothing is cached and
    ``probe`` is False, or when ``cancel`` ended the probe.

    Raises
    ------
    ValueError, TypeError
        For an unknown method or device, bad overrides, or a shape with fewer than 2 axes.
    """
    shape = tuple(int(n) for n in shape)
    if len(shape) < 2:
        raise ValueError(f"an image has at least 2 axes (Y, X); got shape {shape}")
    resolved = _resolve(method, device, precision, overrides, probe_size)
    entry = _read_cache().get(resolved.key)
    seconds = entry.get("seconds_per_iteration") if isinstance(entry, dict) else None
    from_cache = isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds > 0
    if not from_cache:
        if not probe:
            return None
        seconds = probe_seconds_per_iteration(method, resolved.probe_size, device=device, precision=precision,
                                              overrides=overrides, cancel=cancel)
        if seconds is None:
            return None
        _write_cache_entry(resolved.key, {"seconds_per_iteration": float(seconds), "method": method,
                                          "device": resolved.device, "precision": resolved.precision,
                                          "probe_size": resolved.probe_size})
    config = resolved.config
    plane_shape = (int(shape[-2]), int(shape[-1]))
    planes = int(np.prod(shape[:-2], dtype=np.int64))
    # The probe runs on the whole of its small plane (no start crop), so its seconds are per pixel of that.
    seconds_per_pixel = float(seconds) / config.plan((resolved.probe_size, resolved.probe_size)).phases[-1].pixels
    first, later = config.plan(plane_shape, warm=False), config.plan(plane_shape, warm=True)
    whole = first.phases[-1]
    start_crop = {}
    if len(first.phases) > 1:
        crop_phase = first.phases[0]
        start_crop = {"start_crop_planes": 1 + (planes - 1) * (len(later.phases) > 1),
                      "start_crop_iterations": crop_phase.iterations,
                      "start_crop_seconds_per_iteration": seconds_per_pixel * crop_phase.pixels}
    return DurationEstimate(
        method=get_method_spec(method).name, device=resolved.device, precision=resolved.precision,
        plane_shape=plane_shape, planes=planes, iterations=whole.iterations,
        later_iterations=later.phases[-1].iterations, seconds_per_iteration=seconds_per_pixel * whole.pixels,
        can_end_sooner=first.can_end_sooner, from_cache=from_cache, probe_size=resolved.probe_size, **start_crop)
