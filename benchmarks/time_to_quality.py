"""Time to quality: PSNR against seconds of computing, for several methods run interleaved.

For every image the methods run one after another, in an order that alternates from
image to image, so machine load affects them alike. Each (method, image) is one
``zsdenoise bench`` record (``--per-image-dir``), with the live preview scored every
``--trace-every`` iterations and the seconds of computing at each point, so an
interrupted study continues where it stopped. ``plot`` draws mean PSNR against seconds,
one line per method, from the committed records, and prints each method's final figures.

A method is a preset name, optionally with settings: ``bsn:patience=100,iterations=600``.
A trailing ``@reference`` runs it with the arithmetic of the product before the speed-ups
(fp32, contiguous tensors, plain Adam), for side-by-side comparisons with older releases.
Images whose records are missing for some method are left out of that comparison.

Usage:
    python benchmarks/time_to_quality.py run --out DIR --methods bsn mpi-fast [--pattern '*_1.png'] [--limit 4]
        [--crop 256] [--crop-origin centre] [--trace-every 25] [--threads 2] [--device cpu] [--precision auto]
    python benchmarks/time_to_quality.py plot --out DIR [--png DIR/curve.png]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


REFERENCE_SUFFIX = "@reference"


def precision_for(label: str, requested: str) -> str:
    """fp32 (the arithmetic before the speed-ups) for a label ending in ``@reference``, else ``requested``."""
    return "fp32" if label.endswith(REFERENCE_SUFFIX) else requested


def parse_method(text: str) -> tuple[str, dict]:
    """``"bsn:patience=100,iterations=600"`` -> ("bsn", {"patience": 100, "iterations": 600})."""
    from napari_zsdenoise.methods import get_method_spec

    name, _, settings_text = text.removesuffix(REFERENCE_SUFFIX).partition(":")
    infos = {info.name: info for info in get_method_spec(name).settings()}
    settings = {}
    for item in filter(None, settings_text.split(",")):
        key, _, value = item.partition("=")
        settings[key] = infos[key].parse(value)
    return name, settings


def label_folder(label: str) -> str:
    return label.replace(":", "__").replace(",", "_").replace("=", "-").replace("@", "_at_")


def run(args: argparse.Namespace) -> None:
    import torch

    from napari_zsdenoise.evaluation import find_pairs, run_benchmark

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    pairs = [pair for pair in find_pairs(args.pairs, args.pattern) if not args.names or pair[0].stem in args.names]
    pairs = pairs[: args.limit]
    out.mkdir(parents=True, exist_ok=True)
    (out / "study.json").write_text(json.dumps({"methods": args.methods, "pattern": args.pattern, "limit": args.limit,
                                                "names": args.names,
                                                "crop": args.crop, "crop_origin": args.crop_origin,
                                                "threads": args.threads}, indent=1) + "\n")
    for index, (raw_path, _) in enumerate(pairs):
        order = args.methods if index % 2 == 0 else args.methods[::-1]
        for label in order:
            method, settings = parse_method(label)
            summary = run_benchmark(
                args.pairs, method, pattern=raw_path.name, crop=args.crop, crop_origin=args.crop_origin,
                denoise_kwargs={"device": args.device, "seed": args.seed,
                                "precision": precision_for(label, args.precision), **settings},
                per_image_dir=out / label_folder(label), trace_every=args.trace_every)
            image = summary["images"][0]
            print(f"{label:<32} {image['name']:<22} {image['psnr']:6.2f} dB {image['seconds']:7.1f} s", flush=True)


def load_records(out: Path) -> dict[str, dict[str, dict]]:
    """{method label: {image: score}} from the per-image records under ``out``."""
    study = json.loads((out / "study.json").read_text())
    records = {}
    for label in study["methods"]:
        folder = out / label_folder(label)
        records[label] = {json.loads(p.read_text())["score"]["name"]: json.loads(p.read_text())["score"]
                          for p in sorted(folder.glob("*.json"))}
    return records


def mean_curve(scores: list[dict], grid: np.ndarray) -> np.ndarray:
    """Mean over images of the traced PSNR at each time of ``grid`` (the last traced value after a run ended)."""
    curves = []
    for score in scores:
        seconds = np.array([row[3] for row in score["trace"]])
        psnr = np.array([row[1] for row in score["trace"]])
        curves.append(np.interp(grid, seconds, psnr, left=np.nan, right=score["psnr"]))
    return np.nanmean(np.array(curves), axis=0)


def plot(args: argparse.Namespace) -> None:
    out = Path(args.out)
    records = load_records(out)
    common = sorted(set.intersection(*(set(images) for images in records.values())))
    if not common:
        raise SystemExit("no image has records for every method")
    print(f"{len(common)} image(s): {', '.join(common)}")
    print(f"{'method':<36} {'PSNR':>7} {'SSIM':>6} {'s/image':>8}")
    longest = max(score["seconds"] for images in records.values() for score in images.values())
    grid = np.linspace(0, longest, 400)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    for label, images in records.items():
        scores = [images[name] for name in common]
        print(f"{label:<36} {np.mean([s['psnr'] for s in scores]):7.2f} {np.mean([s['ssim'] for s in scores]):6.3f} "
              f"{np.mean([s['seconds'] for s in scores]):8.1f}")
        axes.plot(grid, mean_curve(scores, grid), label=label)
        axes.plot(np.mean([s["seconds"] for s in scores]), np.mean([s["psnr"] for s in scores]), "o", color=axes.lines[-1].get_color())
    axes.set_xlabel("seconds of computing per image")
    axes.set_ylabel(f"mean PSNR (dB), {len(common)} images")
    axes.set_title("live preview (line) and result (dot)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    png = Path(args.png) if args.png else out / "time-to-quality.png"
    figure.savefig(png, dpi=120)
    print(f"wrote {png}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    runner = commands.add_parser("run")
    runner.add_argument("--out", required=True)
    runner.add_argument("--methods", nargs="+", required=True)
    runner.add_argument("--pairs", default="../shared/data/fmd-test")
    runner.add_argument("--pattern", default="*_1.png")
    runner.add_argument("--limit", type=int)
    runner.add_argument("--names", nargs="+", help="only these images (file stems), e.g. a fixed tuning subset")
    runner.add_argument("--crop", type=int, default=256)
    runner.add_argument("--crop-origin", default="centre", choices=["centre", "top-left"])
    runner.add_argument("--trace-every", type=int, default=25)
    runner.add_argument("--threads", type=int, default=2)
    runner.add_argument("--device", default="cpu")
    runner.add_argument("--precision", default="auto")
    runner.add_argument("--seed", type=int, default=0)
    plotter = commands.add_parser("plot")
    plotter.add_argument("--out", required=True)
    plotter.add_argument("--png")
    args = parser.parse_args()
    run(args) if args.command == "run" else plot(args)


if __name__ == "__main__":
    main()
