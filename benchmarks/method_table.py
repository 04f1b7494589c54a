"""Every method on the same FMD images, one JSON per method, then one table beside the papers' numbers.

Each method's figures go to ``OUT/<method>.json`` as soon as it finishes, and methods whose
JSON already exists are skipped; each image's figures go to ``OUT/<method>-images/`` as soon
as it is scored, so even a slow method resumes where it stopped. The table can thus be
filled over several sessions (or on a GPU for the heavy methods) and printed at the end
with ``--table-only``.

Usage:
    python benchmarks/method_table.py --out bench-fmd [--methods zs-n2n zs-n2m-fast ...]
        [--pairs ../shared/data/fmd-test] [--pattern '*_1.png'] [--crop 256] [--crop-origin centre] [--device auto]
        [--trace-every N]
    python benchmarks/method_table.py --out bench-fmd --table-only
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from napari_zsdenoise.evaluation import run_benchmark
from napari_zsdenoise.methods import method_names

# Published means (PSNR dB / SSIM) and where they come from (methods digest §7). Each paper
# used its own protocol, so they compare with each other only within one source.
PAPER_NUMBERS: dict[str, list[str]] = {
    "mpi": ["32.97 / 0.847 [MPI, 48 full FMD images]"],
    "mpi-fast": ["32.68 / 0.846 [MPI]"],
    "bsn": ["31.44 / 0.786 [MPI, no pre-training, β 0.99]"],
    "zs-n2n": ["31.65 / 0.768 [MPI]", "33.48 / 0.897 [ZS-N2M, 20 FMD images 512²]"],
    "zs-n2m-fast": ["34.25 / 0.907 [ZS-N2M*]"],
    "zs-n2m": ["34.53 / 0.915 [ZS-N2M]"],
    "ins-bsn": ["33.95 / 0.885 [INS-BSN, FMDD raw 512²]"],
}


def format_table(results: list[dict]) -> list[str]:
    if not results:
        return ["(no results yet)"]
    first = results[0]
    lines = [
        f"{first['count']} images matching {first['pattern']!r}, "
        f"crop {first['crop'] or 'none (full size)'} ({first.get('crop_origin') or 'centre'}), "
        f"device {first['device']}; noisy input {first['mean_noisy_psnr']:.2f} dB / {first['mean_noisy_ssim']:.3f}",
        "",
        "| method | PSNR / SSIM here | seconds per image | papers (own protocols) |",
        "|---|---|---|---|",
    ]
    for summary in results:
        papers = "; ".join(PAPER_NUMBERS.get(summary["method"], ["–"]))
        lines.append(
            f"| `{summary['method']}` | {summary['mean_psnr']:.2f} / {summary['mean_ssim']:.3f} | "
            f"{summary['mean_seconds']:.0f} | {papers} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder for <method>.json")
    parser.add_argument("--methods", nargs="+", default=None, help="default: every registered method")
    parser.add_argument("--pairs", default="../shared/data/fmd-test")
    parser.add_argument("--pattern", default="*_1.png")
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--crop-origin", default="centre", choices=["centre", "top-left"])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--trace-every", type=int, default=None,
                        help="also score the live preview every N iterations (for MPI: every shorter budget in one run)")
    parser.add_argument("--table-only", action="store_true", help="print the table from the JSON files already there")
    args = parser.parse_args()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    methods = args.methods or method_names()
    if not args.table_only:
        for method in methods:
            target = out / f"{method}.json"
            if target.exists():
                print(f"{method}: {target} exists, skipped", flush=True)
                continue

            def report(entry, method=method) -> None:
                print(f"{method:<12} {entry.name:<24} {entry.psnr:6.2f} dB {entry.ssim:.3f} {entry.seconds:7.1f} s", flush=True)

            summary = run_benchmark(
                args.pairs, method, pattern=args.pattern, crop=args.crop, crop_origin=args.crop_origin,
                denoise_kwargs={"device": args.device, "seed": args.seed}, on_score=report,
                per_image_dir=out / f"{method}-images", trace_every=args.trace_every,
            )
            target.write_text(json.dumps(summary, indent=2) + "\n")
    results = [json.loads((out / f"{m}.json").read_text()) for m in methods if (out / f"{m}.json").exists()]
    print("\n".join(format_table(results)))


if __name__ == "__main__":
    main()
