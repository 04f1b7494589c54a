"""The large-plane tax: a mosaic of FMD fields denoised as one plane against its parts denoised alone.

A 1024² plane is a 2×2 mosaic, a 2048² plane a 4×4 mosaic, of whole 512² FMD test images (noisy frames
beside noisy frames, their ground truths beside each other in the same places). The mosaic is denoised as
one plane, in a fresh process (so that its peak resident memory is its own), with the preset as it ships:
on this CPU its start crop, whole-plane steps and, where the memory budget asks for them, crops and tiles.
Each 512² part is then cut out of the result and scored with the papers' protocol, so that the mean of
the parts compares with the same images denoised alone (``zsdenoise bench`` records, e.g.
``benchmarks/results/fmd-512-full``, same preset and seed).

FMD has twelve configurations, so a 4×4 mosaic repeats four fields; the record names every part.

Usage:
    python benchmarks/mosaics.py run --out benchmarks/results/mosaics --side 2 [--method bsn-balanced] [--set blend_noisy=false]
        [--names Confocal_FISH_1 ...] [--threads 2]
    python benchmarks/mosaics.py table --out benchmarks/results/mosaics [--alone benchmarks/results/fmd-512-full]
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _study_cli import dispatch, study_parser  # noqa: E402

PAIRS = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "fmd-test"
PART = 512
# What the table repeats of each mosaic's run record.
PLANE_FACTS = ("start_crop", "start_crop_iterations", "start_crop_best_iteration", "iterations_done", "best_iteration",
               "trained_on_crops", "blend_weight", "estimated_gain_db")
# One field of each FMD configuration first, then other frames of the first configurations.
DEFAULT_NAMES = ("Confocal_FISH_1", "WideField_BPAE_B_1", "TwoPhoton_MICE_1", "Confocal_BPAE_B_1",
                 "Confocal_MICE_1", "TwoPhoton_BPAE_G_1", "WideField_BPAE_R_1", "Confocal_BPAE_R_1",
                 "TwoPhoton_BPAE_B_1", "WideField_BPAE_G_1", "Confocal_BPAE_G_1", "TwoPhoton_BPAE_R_1",
                 "Confocal_FISH_2", "WideField_BPAE_B_2", "TwoPhoton_MICE_2", "Confocal_BPAE_B_2")


def build_mosaic(pairs_dir: Path, names: list[str], side: int) -> tuple[np.ndarray, np.ndarray]:
    """The noisy and clean ``side`` × ``side`` mosaics (unit range) of the named 512² images, row by row."""
    from napari_zsdenoise.evaluation.scoring import load_pair

    noisy = np.zeros((side * PART, side * PART))
    clean = np.zeros_like(noisy)
    for index, name in enumerate(names[: side * side]):
        rows = slice(index // side * PART, (index // side + 1) * PART)
        columns = slice(index % side * PART, (index % side + 1) * PART)
        noisy[rows, columns], clean[rows, columns] = load_pair(pairs_dir / "raw" / f"{name}.png",
                                                               pairs_dir / "gt" / f"{name}.png", None)
    return noisy, clean


def parsed_settings(method: str, items: list[str]) -> dict:
    """``["blend_noisy=false"]`` -> ``{"blend_noisy": False}``, parsed as time_to_quality.py parses its labels."""
    from time_to_quality import parse_method

    return parse_method(f"{method}:{','.join(items)}")[1]


def one_mosaic(args) -> dict:
    import torch

    from napari_zsdenoise import DenoiseRun
    from napari_zsdenoise.evaluation.scoring import score

    torch.set_num_threads(args.threads)
    names = list(args.names)[: args.side**2]
    noisy, clean = build_mosaic(Path(args.pairs), names, args.side)
    started = time.perf_counter()
    run = DenoiseRun(noisy, args.method, device="cpu", seed=args.seed, threads=args.threads, preview_every=0,
                     preview_interval=0, **parsed_settings(args.method, args.set))
    for _ in run:
        pass
    seconds = time.perf_counter() - started
    parts = []
    for index, name in enumerate(names):
        rows = slice(index // args.side * PART, (index // args.side + 1) * PART)
        columns = slice(index % args.side * PART, (index % args.side + 1) * PART)
        psnr, ssim = score(run.result[rows, columns], clean[rows, columns])
        noisy_psnr, _ = score(noisy[rows, columns], clean[rows, columns])
        parts.append({"name": name, "psnr": psnr, "ssim": ssim, "noisy_psnr": noisy_psnr})
    plane = run.metadata["planes"][0]
    return {"side": args.side, "pixels": int(noisy.size), "method": args.method, "settings": args.set, "seed": args.seed,
            "threads": args.threads, "precision": run.metadata["precision"], "seconds": seconds,
            "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,  # kilobytes on Linux
            "parts": parts, "plane": {key: value for key, value in plane.items() if not isinstance(value, (list, dict))
                                      or key in ("start_crop", "phases")}}


def run_mosaics(args) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{args.method}{''.join('-' + item.replace('=', '-') for item in args.set)}-{args.side * PART}.json"
    if path.exists():
        print(f"{path} exists")
        return
    command = [sys.executable, __file__, "one", "--side", str(args.side), "--method", args.method, "--threads",
               str(args.threads), "--seed", str(args.seed), "--pairs", str(args.pairs), "--names", *args.names,
               *[f"--set={item}" for item in args.set]]
    printed = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    path.write_text(json.dumps(json.loads(printed.strip().splitlines()[-1]), indent=1) + "\n")
    print(f"wrote {path}", flush=True)


def alone_scores(folder: Path, method: str) -> dict[str, dict]:
    """{image: score} of the images denoised alone (``zsdenoise bench --per-image-dir`` records)."""
    scores = [json.loads(path.read_text())["score"] for path in sorted((folder / f"{method}-images").glob("*.json"))]
    return {score["name"]: score for score in scores}


def _fact(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def table(out: Path, alone: Path | None = None) -> list[str]:
    alone = alone or out.parent / "fmd-512-full"
    lines = ["| plane | preset | parts | mean PSNR of the parts in the mosaic | the same parts denoised alone (512²) | "
             "difference | seconds | s per megapixel (alone: mean) | peak RSS |", "|---|---|---|---|---|---|---|---|---|"]
    notes = []
    for path in sorted(out.glob("*.json"), key=lambda p: json.loads(p.read_text())["pixels"]):
        record = json.loads(path.read_text())
        single = alone_scores(alone, record["method"])
        known = [part for part in record["parts"] if part["name"] in single]
        inside = np.mean([part["psnr"] for part in known]) if known else float("nan")
        apart = np.mean([single[part["name"]]["psnr"] for part in known]) if known else float("nan")
        apart_speed = (np.mean([single[part["name"]]["seconds"] for part in known]) / (PART * PART / 1e6)
                       if known else float("nan"))
        side = record["side"] * PART
        label = " ".join([record["method"], *record.get("settings", [])])
        lines.append(f"| {side}² | `{label}` | {len(record['parts'])} ({len(known)} with a 512² record) | "
                     f"{inside:.2f} | {apart:.2f} | {inside - apart:+.2f} | {record['seconds']:.0f} | "
                     f"{record['seconds'] / (record['pixels'] / 1e6):.0f} ({apart_speed:.0f}) | "
                     f"{record['peak_rss_bytes'] / 2**30:.2f} GiB |")
        per_part = ", ".join(f"{part['name']} {part['psnr']:.2f}"
                             + (f" ({single[part['name']]['psnr']:.2f})" if part["name"] in single else "")
                             for part in record["parts"])
        notes.append(f"- {side}², `{label}`: {per_part} dB in the mosaic (alone); the plane's run: "
                     + ", ".join(f"{key} {_fact(record['plane'][key])}" for key in PLANE_FACTS if key in record["plane"]) + ".")
    return lines + ["", *notes]


def main() -> None:
    parser, commands, runner = study_parser(__doc__)
    for command in (runner, one := commands.add_parser("one")):
        command.add_argument("--side", type=int, default=2, help="parts per side: 2 (1024²) or 4 (2048²)")
        command.add_argument("--method", default="bsn-balanced")
        command.add_argument("--names", nargs="+", default=list(DEFAULT_NAMES))
        command.add_argument("--threads", type=int, default=2)
        command.add_argument("--seed", type=int, default=0)
        command.add_argument("--pairs", default=str(PAIRS))
        command.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                             help="a setting of the preset, e.g. blend_noisy=false (repeatable)")
    table_parser = commands.choices["table"]
    table_parser.add_argument("--alone", help="folder of the 512² records (default: fmd-512-full beside --out)")
    args = parser.parse_args()
    if args.command == "table":
        print("\n".join(table(Path(args.out), Path(args.alone) if args.alone else None)))
        return
    dispatch(args, run_mosaics, table, lambda parsed: print(json.dumps(one_mosaic(parsed))))


if __name__ == "__main__":
    main()
