"""Benchmark on folders of noisy/clean pairs, scored as the denoising papers do.

Protocol: images scaled to [0, 1] by their integer type's maximum (8-bit: /255), the
denoised output clipped to [0, 1], PSNR and SSIM with ``data_range=1``.
"""

from __future__ import annotations

import fnmatch
import inspect
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_zsdenoise.io import READABLE_SUFFIXES, read_image


@dataclass(frozen=True)
class PairScore:
    name: str
    psnr: float
    ssim: float
    noisy_psnr: float
    noisy_ssim: float
    seconds: float
    # (iteration, PSNR, SSIM) of the live preview, when the benchmark traces convergence.
    trace: list[list[float]] = field(default_factory=list)


def to_unit_range(image: np.ndarray) -> np.ndarray:
    """Scale integer images by their dtype's maximum; leave float images as they are."""
    if np.issubdtype(image.dtype, np.integer):
        return image.astype(np.float64) / np.iinfo(image.dtype).max
    return image.astype(np.float64)


CROP_ORIGINS = ("centre", "top-left")
# What a per-image record keeps of the run's metadata: the parameters decide whether the
# record may be reused; the versions and thread count say where its seconds came from.
RECORDED_METADATA = ("device", "parameters", "weights", "version", "torch_version", "torch_threads")


def centre_crop(image: np.ndarray, size: int | None, origin: str = "centre") -> np.ndarray:
    """The ``size`` x ``size`` crop of the last two axes, centred or at the top-left corner.

    Papers differ here: the MPI authors' FMD script takes the top-left corner.
    """
    if size is None:
        return image
    if origin not in CROP_ORIGINS:
        raise ValueError(f"crop origin must be one of {CROP_ORIGINS}, not {origin!r}")
    height, width = image.shape[-2:]
    if size > min(height, width):
        raise ValueError(f"crop {size} is larger than the image ({height}x{width})")
    top, left = ((height - size) // 2, (width - size) // 2) if origin == "centre" else (0, 0)
    return image[..., top : top + size, left : left + size]


def score(estimate: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """PSNR (dB) and SSIM of ``estimate`` clipped to [0, 1] against ``reference``."""
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    estimate = np.clip(estimate, 0.0, 1.0)
    return (
        float(peak_signal_noise_ratio(reference, estimate, data_range=1.0)),
        float(structural_similarity(reference, estimate, data_range=1.0)),
    )


def find_pairs(pairs_dir: str | Path, pattern: str = "*") -> list[tuple[Path, Path]]:
    """Matching ``raw/NAME`` and ``gt/NAME`` files, sorted by name."""
    root = Path(pairs_dir)
    raw_dir, gt_dir = root / "raw", root / "gt"
    if not raw_dir.is_dir() or not gt_dir.is_dir():
        raise FileNotFoundError(f"{root} must contain raw/ and gt/ folders")
    pairs = []
    for raw in sorted(raw_dir.iterdir()):
        if raw.suffix.lower() in READABLE_SUFFIXES and fnmatch.fnmatch(raw.name, pattern):
            clean = gt_dir / raw.name
            if clean.is_file():
                pairs.append((raw, clean))
    if not pairs:
        raise FileNotFoundError(f"no raw/gt pairs matching {pattern!r} in {root}")
    return pairs


def run_benchmark(
    pairs_dir: str | Path,
    method: str,
    *,
    pattern: str = "*",
    limit: int | None = None,
    crop: int | None = None,
    crop_origin: str = "centre",
    denoise_kwargs: dict[str, Any] | None = None,
    on_score: Callable[[PairScore], None] | None = None,
    per_image_dir: str | Path | None = None,
    trace_every: int | None = None,
) -> dict[str, Any]:
    """Denoise every pair's noisy image and score it; returns a JSON-ready summary.

    With ``per_image_dir``, each image's figures are written there as soon as it is scored
    and images already scored there with the same settings are not run again, so a slow
    benchmark can be continued after an interruption (or in another session). A record whose
    method parameters differ from the current ones (a preset changed since) is refused, not
    mixed in.

    With ``trace_every``, the live preview is also scored every that many iterations, so
    one run shows how quality evolves with the iteration budget (for MPI, the preview at
    iteration N is what an N-iteration run returns).
    """
    from napari_zsdenoise.engine import DenoiseRun

    if crop_origin not in CROP_ORIGINS:
        raise ValueError(f"crop origin must be one of {CROP_ORIGINS}, not {crop_origin!r}")
    if trace_every is not None and trace_every < 1:
        raise ValueError(f"trace_every must be >= 1, not {trace_every}")
    pairs = find_pairs(pairs_dir, pattern)[:limit]
    parameters = _resolved_parameters(method, denoise_kwargs or {})
    settings = {
        "method": method,
        "crop": crop,
        "crop_origin": crop_origin if crop is not None else None,
        "denoise_kwargs": {key: str(value) for key, value in sorted((denoise_kwargs or {}).items())},
        "trace_every": trace_every,
    }
    cache = Path(per_image_dir) if per_image_dir is not None else None
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
    scores: list[PairScore] = []
    metadata: dict[str, Any] = {}
    for raw_path, gt_path in pairs:
        cached = cache / f"{raw_path.name}.json" if cache is not None else None
        if cached is not None and cached.is_file():
            record = json.loads(cached.read_text())
            if record.get("settings") != settings:
                raise ValueError(
                    f"{cached} was scored with other settings ({record.get('settings')}); "
                    f"use another per-image folder for {settings}"
                )
            changed = _changed_parameters(record.get("metadata", {}).get("parameters"), parameters)
            if changed:
                raise ValueError(
                    f"{cached} was scored with other {method} parameters ({changed}); "
                    "the method's settings have changed since, so score it again in another per-image folder"
                )
            entry = PairScore(**record["score"])
            metadata = metadata or record["metadata"]
        else:
            noisy = centre_crop(to_unit_range(read_image(raw_path)), crop, crop_origin)
            clean = centre_crop(to_unit_range(read_image(gt_path)), crop, crop_origin)
            if trace_every and noisy.ndim != 2:
                raise ValueError(f"tracing convergence needs 2-D images; {raw_path.name} has shape {noisy.shape}")
            start = time.perf_counter()
            run = DenoiseRun(noisy, method, preview_every=trace_every or 0, preview_interval=0, **(denoise_kwargs or {}))
            trace: list[list[float]] = []
            scoring_seconds = 0.0
            for event in run:
                if trace_every and event.preview is not None:
                    scoring_start = time.perf_counter()
                    trace.append([event.iteration, *score(event.preview, clean)])
                    scoring_seconds += time.perf_counter() - scoring_start
            seconds = time.perf_counter() - start - scoring_seconds
            metadata = {key: run.metadata.get(key) for key in RECORDED_METADATA}
            psnr, ssim = score(run.result, clean)
            noisy_psnr, noisy_ssim = score(noisy, clean)
            entry = PairScore(raw_path.stem, psnr, ssim, noisy_psnr, noisy_ssim, seconds, trace)
            if cached is not None:
                record = {"settings": settings, "score": asdict(entry), "metadata": metadata}
                partial = cached.with_suffix(".part")
                partial.write_text(json.dumps(record, indent=2) + "\n")
                partial.replace(cached)
        scores.append(entry)
        if on_score is not None:
            on_score(entry)

    def mean(key: str) -> float:
        return float(np.mean([getattr(s, key) for s in scores]))

    return {
        "method": method,
        "pairs_dir": str(pairs_dir),
        "pattern": pattern,
        "crop": crop,
        "crop_origin": settings["crop_origin"],
        "count": len(scores),
        "device": metadata.get("device"),
        "parameters": metadata.get("parameters"),
        "weights": metadata.get("weights"),
        "mean_psnr": mean("psnr"),
        "mean_ssim": mean("ssim"),
        "mean_noisy_psnr": mean("noisy_psnr"),
        "mean_noisy_ssim": mean("noisy_ssim"),
        "mean_seconds": mean("seconds"),
        "images": [asdict(s) for s in scores],
    }


def _resolved_parameters(method: str, denoise_kwargs: dict[str, Any]) -> dict[str, Any]:
    """The method parameters a benchmark run records, worked out without running it."""
    from napari_zsdenoise.engine import DenoiseRun
    from napari_zsdenoise.methods.registry import config_parameters, get_method_spec

    # DenoiseRun's named keywords (device, seed, ...) choose how a run executes; the rest
    # are the method's settings.
    run_keywords = {
        name for name, parameter in inspect.signature(DenoiseRun).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    }
    overrides = {key: value for key, value in denoise_kwargs.items() if key not in run_keywords}
    config = get_method_spec(method).resolve_config(denoise_kwargs.get("config"), **overrides)
    # A JSON round trip gives the form a stored record is read back in.
    return json.loads(json.dumps(config_parameters(config)))


def _changed_parameters(recorded: dict[str, Any] | None, current: dict[str, Any]) -> str:
    """Which parameters differ between a stored record and the current settings ('' if none)."""
    if recorded is None:
        return "the record lists no parameters"
    missing = object()
    return ", ".join(
        f"{key}: {recorded.get(key, 'absent')} then, {current.get(key, 'absent')} now"
        for key in sorted(set(recorded) | set(current))
        if recorded.get(key, missing) != current.get(key, missing)
    )


def iter_lines(summary: dict[str, Any]) -> Iterator[str]:
    yield (
        f"mean over {summary['count']} image(s): PSNR {summary['mean_psnr']:.2f} dB, SSIM {summary['mean_ssim']:.3f} "
        f"(noisy {summary['mean_noisy_psnr']:.2f} dB / {summary['mean_noisy_ssim']:.3f}), "
        f"{summary['mean_seconds']:.1f} s per image on {summary['device']}"
    )


def time_iterations(
    method: str,
    size: int,
    *,
    iterations: int = 20,
    warmup: int = 3,
    device: str | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Wall-clock milliseconds per iteration of ``method`` on a ``size`` x ``size`` plane.

    The first ``warmup`` iterations (allocator and kernel start-up) are not counted.
    """
    from napari_zsdenoise.engine import DenoiseRun

    if size < 1 or iterations < 1 or warmup < 0:
        raise ValueError("size and iterations must be >= 1 and warmup >= 0")
    image = np.random.default_rng(seed).uniform(0.0, 1.0, (size, size)).astype(np.float32)
    run = DenoiseRun(
        image, method, iterations=warmup + iterations, device=device, seed=seed, preview_every=0, preview_interval=0
    )
    stamps = [event.elapsed for event in run]
    counted = stamps[warmup:]
    start = stamps[warmup - 1] if warmup else 0.0
    milliseconds = 1000.0 * (counted[-1] - start) / len(counted)
    return {"method": method, "size": size, "iterations": len(counted), "device": run.metadata["device"],
            "ms_per_iteration": milliseconds}
