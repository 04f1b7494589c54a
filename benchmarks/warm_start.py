"""Warm start across the planes of a stack: per-plane seconds and PSNR, warm against fresh.

The FMD test set holds four independent noisy frames of each field of view
(``NAME_1.png`` .. ``NAME_4.png``, one ground truth), so each configuration is a
4-frame time stack. Each variant denoises the stack of centre crops in one run; a plane's
seconds are read from the progress events, its PSNR against the ground truth is scored
as ``zsdenoise bench`` does. Variants run one after the other per stack, in an order that
alternates from stack to stack, so machine load affects them alike. One JSON record per
(variant, stack) under ``--out``; an interrupted study continues where it stopped.

A variant is a preset with settings, as in time_to_quality.py: ``bsn-quick:warm_start=true,warm_iterations=150``.

Usage:
    python benchmarks/warm_start.py run --out DIR --variants bsn-quick "bsn-quick:warm_start=true" [--names ...]
        [--crop 256] [--threads 1]
    python benchmarks/warm_start.py run --out DIR --variants ... --noisy sample_data/cells3d_noisy.tif \
        --clean sample_data/cells3d_clean.tif
    python benchmarks/warm_start.py table --out DIR
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _study_cli import dispatch, study_parser  # noqa: E402
from time_to_quality import label_folder, parse_method  # noqa: E402

FRAMES = 4


def stack_names(pairs: Path) -> list[str]:
    """Configurations with all four frames, e.g. ``Confocal_FISH``."""
    stems = {p.stem for p in (pairs / "raw").glob("*.png")}
    return sorted({stem.rsplit("_", 1)[0] for stem in stems
                   if all(f"{stem.rsplit('_', 1)[0]}_{k}" in stems for k in range(1, FRAMES + 1))})


def stack_and_truth(pairs: Path, name: str, args: argparse.Namespace) -> tuple[np.ndarray, list, Callable]:
    """The noisy stack, the clean planes and the scoring function: an FMD configuration's four
    frames (unit range, as ``zsdenoise bench`` scores), or ``--noisy``/``--clean`` files (PSNR over
    the clean stack's range, in its units)."""
    from napari_zsdenoise.evaluation.scoring import load_pair, score

    if args.noisy:
        import tifffile
        from skimage.metrics import peak_signal_noise_ratio, structural_similarity

        noisy, clean = tifffile.imread(args.noisy), tifffile.imread(args.clean).astype(np.float64)
        span = float(clean.max() - clean.min())

        def in_units(estimate: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
            estimate = np.asarray(estimate, dtype=np.float64)
            return (float(peak_signal_noise_ratio(reference, estimate, data_range=span)),
                    float(structural_similarity(reference, estimate, data_range=span)))

        return noisy, list(clean), in_units
    frames = [load_pair(pairs / "raw" / f"{name}_{k}.png", pairs / "gt" / f"{name}_{k}.png", args.crop)
              for k in range(1, FRAMES + 1)]
    return np.stack([frame[0] for frame in frames]), [frame[1] for frame in frames], score


def run_stack(pairs: Path, name: str, label: str, args: argparse.Namespace) -> dict:
    from napari_zsdenoise import DenoiseRun

    noisy, cleans, score = stack_and_truth(pairs, name, args)
    method, settings = parse_method(label)
    run = DenoiseRun(noisy, method, device=args.device, seed=args.seed, preview_every=0, preview_interval=0, **settings)
    started, ends = time.perf_counter(), {}
    for event in run:
        ends[event.plane] = event.elapsed
    seconds = [ends[0]] + [ends[k] - ends[k - 1] for k in range(1, len(cleans))]
    planes = []
    for k, (record, clean) in enumerate(zip(run.metadata["planes"], cleans)):
        psnr, ssim = score(run.result[k], clean)
        planes.append({"psnr": psnr, "ssim": ssim, "seconds": seconds[k], "iterations": record["iterations_done"],
                       "warm_started": record.get("warm_started", False)})
    return {"stack": name, "variant": label, "crop": args.crop, "seconds": time.perf_counter() - started,
            "parameters": run.metadata["parameters"], "precision": run.metadata["precision"],
            "threads": run.metadata["torch_threads"], "planes": planes}


def run(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    pairs, out = Path(args.pairs), Path(args.out)
    names = [Path(args.noisy).stem] if args.noisy else args.names or stack_names(pairs)
    out.mkdir(parents=True, exist_ok=True)
    (out / "study.json").write_text(json.dumps({"variants": args.variants, "names": names, "crop": args.crop,
                                                "threads": args.threads}, indent=1) + "\n")
    for index, name in enumerate(names):
        for label in args.variants if index % 2 == 0 else args.variants[::-1]:
            path = out / label_folder(label) / f"{name}.json"
            if path.exists():
                continue
            record = run_stack(pairs, name, label, args)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(record, indent=1) + "\n")
            print(f"{label:<40} {name:<22} " + " ".join(
                f"{p['psnr']:6.2f}/{p['seconds']:5.1f}s" for p in record["planes"]), flush=True)


def table(out: Path) -> list[str]:
    """Mean PSNR and seconds of the first plane and of the later ones, per variant (stacks every variant has)."""
    study = json.loads((out / "study.json").read_text())
    records = {label: {p.stem: json.loads(p.read_text()) for p in (out / label_folder(label)).glob("*.json")}
               for label in study["variants"]}
    common = sorted(set.intersection(*(set(r) for r in records.values())))
    lines = [f"{len(common)} stack(s), {study['threads']} thread(s): {', '.join(common)}", "",
             "| variant | plane 1 PSNR | plane 1 s | later planes PSNR | later planes s/plane | later planes iterations |",
             "|---|---|---|---|---|---|"]
    for label, by_stack in records.items():
        firsts = [by_stack[name]["planes"][0] for name in common]
        laters = [plane for name in common for plane in by_stack[name]["planes"][1:]]
        lines.append(f"| `{label}` | {np.mean([p['psnr'] for p in firsts]):.2f} | {np.mean([p['seconds'] for p in firsts]):.1f} "
                     f"| {np.mean([p['psnr'] for p in laters]):.2f} | {np.mean([p['seconds'] for p in laters]):.1f} "
                     f"| {np.mean([p['iterations'] for p in laters]):.0f} |")
    return lines


def main() -> None:
    parser, _, runner = study_parser(__doc__)
    runner.add_argument("--variants", nargs="+", required=True)
    runner.add_argument("--pairs", default="../shared/data/fmd-test")
    runner.add_argument("--names", nargs="+", help="configurations, e.g. Confocal_FISH (default: all)")
    runner.add_argument("--crop", type=int, default=256)
    runner.add_argument("--noisy", help="a noisy stack (TIFF) instead of the FMD frames, scored against --clean")
    runner.add_argument("--clean")
    runner.add_argument("--threads", type=int, default=1)
    runner.add_argument("--device", default="cpu")
    runner.add_argument("--seed", type=int, default=0)
    dispatch(parser.parse_args(), run, table)


if __name__ == "__main__":
    main()
