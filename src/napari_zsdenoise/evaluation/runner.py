"""The benchmark runner: denoise each pair's noisy image, score it, keep per-image records."""

from __future__ import annotations

import inspect
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_zsdenoise.evaluation.scoring import check_crop_origin, find_pairs, load_pair, score

# What a per-image record keeps of the run's metadata: the parameters decide whether the
# record may be reused; the versions and thread count say where its seconds came from.
RECORDED_METADATA = ("device", "parameters", "weights", "version", "torch_version", "torch_threads")


@dataclass(frozen=True)
class PairScore:
    name: str
    psnr: float
    ssim: float
    noisy_psnr: float
    noisy_ssim: float
    seconds: float
    # (iteration, PSNR, SSIM, seconds of computing so far) of the live preview, when the
    # benchmark traces convergence; records made before seconds were traced have three.
    trace: list[list[float]] = field(default_factory=list)


@dataclass
class PerImageRecords:
    """A folder of one JSON record per scored image, refusing records made with other settings."""

    folder: Path
    settings: dict[str, Any]
    parameters: dict[str, Any]
    method: str

    def __post_init__(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)

    def path(self, raw_path: Path) -> Path:
        return self.folder / f"{raw_path.name}.json"

    def load(self, raw_path: Path) -> tuple[PairScore, dict[str, Any]] | None:
        """The stored score and run metadata of ``raw_path``, or None when not scored yet."""
        path = self.path(raw_path)
        if not path.is_file():
            return None
        record = json.loads(path.read_text())
        if record.get("settings") != self.settings:
            raise ValueError(
                f"{path} was scored with other settings ({record.get('settings')}); "
                f"use another per-image folder for {self.settings}"
            )
        changed = changed_parameters(record.get("metadata", {}).get("parameters"), self.parameters)
        if changed:
            raise ValueError(
                f"{path} was scored with other {self.method} parameters ({changed}); "
                "the method's settings have changed since, so score it again in another per-image folder"
            )
        return PairScore(**record["score"]), record["metadata"]

    def save(self, raw_path: Path, entry: PairScore, metadata: dict[str, Any]) -> None:
        """Write the record atomically (a partial file, then a rename)."""
        path = self.path(raw_path)
        record = {"settings": self.settings, "score": asdict(entry), "metadata": metadata}
        partial = path.with_suffix(".part")
        partial.write_text(json.dumps(record, indent=2) + "\n")
        partial.replace(path)


def score_pair(raw_path: Path, gt_path: Path, method: str, *, crop: int | None, crop_origin: str,
               denoise_kwargs: dict[str, Any], trace_every: int | None) -> tuple[PairScore, dict[str, Any]]:
    """Denoise one pair's noisy image and score it; also the run metadata worth recording.

    The seconds exclude the time spent scoring the traced previews.
    """
    from napari_zsdenoise.engine import DenoiseRun

    noisy, clean = load_pair(raw_path, gt_path, crop, crop_origin)
    if trace_every and noisy.ndim != 2:
        raise ValueError(f"tracing convergence needs 2-D images; {raw_path.name} has shape {noisy.shape}")
    start = time.perf_counter()
    run = DenoiseRun(noisy, method, preview_every=trace_every or 0, preview_interval=0, **denoise_kwargs)
    trace: list[list[float]] = []
    scoring_seconds = 0.0
    for event in run:
        if trace_every and event.preview is not None:
            scoring_start = time.perf_counter()
            computing = scoring_start - start - scoring_seconds
            trace.append([event.iteration, *score(event.preview, clean), computing])
            scoring_seconds += time.perf_counter() - scoring_start
    seconds = time.perf_counter() - start - scoring_seconds
    psnr, ssim = score(run.result, clean)
    noisy_psnr, noisy_ssim = score(noisy, clean)
    metadata = {key: run.metadata.get(key) for key in RECORDED_METADATA}
    return PairScore(raw_path.stem, psnr, ssim, noisy_psnr, noisy_ssim, seconds, trace), metadata


def summarize(scores: list[PairScore], metadata: dict[str, Any], *, method: str, pairs_dir: str | Path,
              pattern: str, crop: int | None, crop_origin: str | None) -> dict[str, Any]:
    """The JSON-ready summary of a benchmark: settings, means and every image's figures."""

    def mean(key: str) -> float:
        return float(np.mean([getattr(s, key) for s in scores]))

    return {
        "method": method,
        "pairs_dir": str(pairs_dir),
        "pattern": pattern,
        "crop": crop,
        "crop_origin": crop_origin,
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
    check_crop_origin(crop_origin)
    if trace_every is not None and trace_every < 1:
        raise ValueError(f"trace_every must be >= 1, not {trace_every}")
    denoise_kwargs = dict(denoise_kwargs or {})
    pairs = find_pairs(pairs_dir, pattern)[:limit]
    settings = {
        "method": method,
        "crop": crop,
        "crop_origin": crop_origin if crop is not None else None,
        "denoise_kwargs": {key: str(value) for key, value in sorted(denoise_kwargs.items())},
        "trace_every": trace_every,
    }
    records = None if per_image_dir is None else PerImageRecords(
        Path(per_image_dir), settings, resolved_parameters(method, denoise_kwargs), method)
    scores: list[PairScore] = []
    metadata: dict[str, Any] = {}
    for raw_path, gt_path in pairs:
        stored = None if records is None else records.load(raw_path)
        if stored is None:
            entry, run_metadata = score_pair(raw_path, gt_path, method, crop=crop, crop_origin=crop_origin,
                                             denoise_kwargs=denoise_kwargs, trace_every=trace_every)
            if records is not None:
                records.save(raw_path, entry, run_metadata)
        else:
            entry, run_metadata = stored
        metadata = metadata or run_metadata
        scores.append(entry)
        if on_score is not None:
            on_score(entry)
    return summarize(scores, metadata, method=method, pairs_dir=pairs_dir, pattern=pattern, crop=crop,
                     crop_origin=settings["crop_origin"])


def resolved_parameters(method: str, denoise_kwargs: dict[str, Any]) -> dict[str, Any]:
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


def changed_parameters(recorded: dict[str, Any] | None, current: dict[str, Any]) -> str:
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
