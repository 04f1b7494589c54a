"""Command-line interface: ``zsdenoise denoise | bench | methods``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from napari_zsdenoise.io import READABLE_SUFFIXES


def _add_method_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--method", default="mpi-fast", help="method or preset (see `zsdenoise methods`); default mpi-fast")
    parser.add_argument("--iterations", type=int, help="iterations per plane (default: the preset's)")
    parser.add_argument("--mask-ratio", type=float, help="fraction of pixels hidden per step (MPI p)")
    parser.add_argument("--ema-beta", type=float, help="masked-EMA weight (MPI beta)")
    parser.add_argument("--shuffle-factor", type=int, help="MPI pixel-shuffle factor d for spatially correlated noise (default 1)")
    parser.add_argument("--weights", help="checkpoint to start from, or 'none' for random initialisation")
    parser.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")


def _method_overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for option, name in (
        ("iterations", "iterations"),
        ("mask_ratio", "mask_ratio"),
        ("ema_beta", "ema_beta"),
        ("shuffle_factor", "shuffle_factor"),
    ):
        value = getattr(args, option)
        if value is not None:
            overrides[name] = value
    if args.weights is not None:
        overrides["weights"] = None if args.weights.lower() == "none" else args.weights
    return overrides


def _denoise_targets(source: Path, output: Path) -> list[tuple[Path, Path]]:
    if source.is_dir():
        inputs = sorted(p for p in source.iterdir() if p.is_file() and p.suffix.lower() in READABLE_SUFFIXES)
        if not inputs:
            raise FileNotFoundError(f"no images ({', '.join(READABLE_SUFFIXES)}) in {source}")
        if output.exists() and not output.is_dir():
            raise NotADirectoryError(f"{output} must be a folder when the input is a folder")
        return [(p, output / (p.stem + ".tif")) for p in inputs]
    if not source.is_file():
        raise FileNotFoundError(f"no such file or folder: {source}")
    if output.is_dir():
        return [(source, output / (source.stem + ".tif"))]
    return [(source, output)]


class _StderrProgress:
    """One self-overwriting progress line per file on stderr."""

    def __init__(self, label: str, quiet: bool) -> None:
        self.label, self.quiet = label, quiet

    def __call__(self, event: Any) -> None:
        if self.quiet:
            return
        eta = event.eta_seconds
        plane = f" plane {event.plane + 1}/{event.n_planes}" if event.n_planes > 1 else ""
        sys.stderr.write(
            f"\r{self.label}{plane}: {event.iteration}/{event.total} it, loss {event.loss:.3g}, "
            f"{event.elapsed:.0f} s, ETA {0 if eta is None else eta:.0f} s   "
        )
        sys.stderr.flush()

    def close(self) -> None:
        if not self.quiet:
            sys.stderr.write("\n")


def _cmd_denoise(args: argparse.Namespace) -> int:
    from napari_zsdenoise.engine import DenoiseRun
    from napari_zsdenoise.io import read_image, write_tiff_atomic

    targets = _denoise_targets(Path(args.input), Path(args.output))
    existing = [str(out) for _, out in targets if out.exists()]
    if existing and not args.overwrite:
        print(f"error: refusing to overwrite {', '.join(existing)} (use --overwrite)", file=sys.stderr)
        return 1
    overrides = _method_overrides(args)
    for source, destination in targets:
        image = read_image(source)
        run = DenoiseRun(image, args.method, device=args.device, seed=args.seed, plane=args.plane, preview_every=0, preview_interval=1.0, **overrides)
        progress = _StderrProgress(source.name, args.quiet)
        for event in run:
            progress(event)
        progress.close()
        metadata = {**run.metadata, "source": str(source)}
        write_tiff_atomic(destination, run.result, metadata=metadata, overwrite=args.overwrite)
        if not args.quiet:
            print(f"{source} -> {destination} ({run.metadata['seconds']:.1f} s on {run.metadata['device']})", file=sys.stderr)
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from napari_zsdenoise.benchmark import iter_lines, run_benchmark

    overrides = _method_overrides(args)
    print(f"{'image':<24} {'PSNR':>7} {'SSIM':>6} {'noisy':>7} {'seconds':>8}", flush=True)

    def report(entry: Any) -> None:
        print(f"{entry.name:<24} {entry.psnr:7.2f} {entry.ssim:6.3f} {entry.noisy_psnr:7.2f} {entry.seconds:8.1f}", flush=True)

    summary = run_benchmark(
        args.pairs_dir,
        args.method,
        pattern=args.pattern,
        limit=args.limit,
        crop=args.crop,
        denoise_kwargs={"device": args.device, "seed": args.seed, **overrides},
        on_score=report,
    )
    for line in iter_lines(summary):
        print(line)
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))
    return 0


def _cmd_speed(args: argparse.Namespace) -> int:
    from napari_zsdenoise.benchmark import time_iterations

    for size in args.size:
        figures = time_iterations(args.method, size, iterations=args.iterations, warmup=args.warmup, device=args.device)
        print(
            f"{figures['method']} {size}x{size} on {figures['device']}: {figures['ms_per_iteration']:.0f} ms per iteration "
            f"(mean of {figures['iterations']} after {args.warmup} warm-up)",
            flush=True,
        )
    return 0


def _cmd_methods(_: argparse.Namespace) -> int:
    from napari_zsdenoise.methods import get_method_spec, method_names

    for name in method_names():
        print(f"{name:<12} {get_method_spec(name).summary}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zsdenoise", description="Zero-shot denoising of fluorescence microscopy images.")
    commands = parser.add_subparsers(dest="command", required=True)

    denoise = commands.add_parser("denoise", help="denoise an image file or a folder of them")
    denoise.add_argument("input", help="TIFF/PNG file, or a folder of them")
    denoise.add_argument("-o", "--output", required=True, help="output TIFF file, or folder for folder input")
    denoise.add_argument("--plane", type=int, help="denoise only this plane (flattened index over the leading axes)")
    denoise.add_argument("--overwrite", action="store_true", help="replace existing output files")
    denoise.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    _add_method_options(denoise)
    denoise.set_defaults(func=_cmd_denoise)

    bench = commands.add_parser("bench", help="score a method on a folder with raw/ and gt/ pairs")
    bench.add_argument("pairs_dir", help="folder holding raw/ (noisy) and gt/ (clean) images of matching names")
    bench.add_argument("--pattern", default="*", help="glob on file names, e.g. '*_1.png'")
    bench.add_argument("--limit", type=int, help="use only the first N pairs")
    bench.add_argument("--crop", type=int, help="score the centred CxC crop")
    bench.add_argument("--json", help="also write the figures to this JSON file")
    _add_method_options(bench)
    bench.set_defaults(func=_cmd_bench)

    speed = commands.add_parser("speed", help="time one iteration of a method on square images")
    speed.add_argument("--method", default="mpi-fast")
    speed.add_argument("--size", type=int, nargs="+", default=[256, 512], help="image sides in pixels (default 256 512)")
    speed.add_argument("--iterations", type=int, default=20, help="timed iterations (default 20)")
    speed.add_argument("--warmup", type=int, default=3, help="untimed iterations first (default 3)")
    speed.add_argument("--device", default="auto")
    speed.set_defaults(func=_cmd_speed)

    methods = commands.add_parser("methods", help="list the available methods and presets")
    methods.set_defaults(func=_cmd_methods)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, FileNotFoundError, FileExistsError, NotADirectoryError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
