"""A long synthetic z-stack, warm start against fresh planes: seconds, PSNR and peak memory.

The stack is a seeded 3-D ``fluorescence_phantom`` (planes decorrelate over 10-30
planes, the first ones nearly empty, as above a sample) with the bundled samples' noise
(25 photons at the brightest pixel, read noise 2, offset 100). ``warm`` denoises the whole
stack with the preset as it is (``bsn-balanced`` starts each plane after the first from
the one before); ``fresh`` denoises every ``--every``-th plane from scratch
(``warm_start=false``), which costs what those planes would cost in a fresh run of the
whole stack, so the whole fresh stack is estimated as their mean times the plane count
(the table says so). Each variant runs in its own process so that its peak resident
memory is its own. PSNR is over the clean stack's range, in its units, as in
``warm_start.py``.

Usage:
    python benchmarks/long_stack.py run --out benchmarks/results/long-stack/z100-256 [--planes 100] [--size 256]
        [--every 10] [--method bsn-balanced] [--variants warm fresh]
    python benchmarks/long_stack.py table --out DIR
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _study_cli import dispatch, study_parser  # noqa: E402

PEAK_PHOTONS, READ_NOISE, OFFSET = 25.0, 2.0, 100.0
PHANTOM_SEED, NOISE_SEED = 5, 15
VARIANTS = ("warm", "fresh")


def make_stack(planes: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The noisy stack (uint16 camera counts) and its expectation (float)."""
    from napari_zsdenoise.synthetic import fluorescence_phantom, poisson_gaussian_noise

    clean = fluorescence_phantom((planes, size, size), seed=PHANTOM_SEED)
    noisy = poisson_gaussian_noise(clean, peak_photons=PEAK_PHOTONS, read_noise=READ_NOISE, offset=OFFSET,
                                   seed=NOISE_SEED)
    return np.clip(np.round(noisy), 0, 65535).astype(np.uint16), clean * PEAK_PHOTONS + OFFSET


def run_variant(args: argparse.Namespace) -> None:
    """One variant in this process; prints its record as one JSON line."""
    import torch
    from skimage.metrics import peak_signal_noise_ratio

    from napari_zsdenoise import DenoiseRun

    torch.set_num_threads(args.threads)
    noisy, clean = make_stack(args.planes, args.size)
    indices = list(range(args.planes)) if args.variant == "warm" else list(range(0, args.planes, args.every))
    settings = {} if args.variant == "warm" else {"warm_start": False}
    span = float(clean.max() - clean.min())
    started = time.perf_counter()
    run = DenoiseRun(noisy[indices], args.method, device="cpu", seed=args.seed, preview_every=0, preview_interval=0,
                     **settings)
    ends = {}
    for event in run:
        ends[event.plane] = event.elapsed
    seconds = [ends[0]] + [ends[k] - ends[k - 1] for k in range(1, len(indices))]
    planes = [{"plane": index, "psnr": float(peak_signal_noise_ratio(clean[index], run.result[k].astype(np.float64),
                                                                      data_range=span)),
               "noisy_psnr": float(peak_signal_noise_ratio(clean[index], noisy[index].astype(np.float64),
                                                           data_range=span)),
               "seconds": seconds[k], "iterations": record["iterations_done"],
               "warm_started": record.get("warm_started", False)}
              for k, (index, record) in enumerate(zip(indices, run.metadata["planes"]))]
    # ru_maxrss is in kilobytes on Linux.
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"variant": args.variant, "method": args.method, "planes": planes,
                      "seconds": time.perf_counter() - started, "peak_rss_bytes": peak_rss,
                      "array_bytes": int(noisy.nbytes + run.result.nbytes), "threads": args.threads}))


def run(args: argparse.Namespace) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "study.json").write_text(json.dumps({key: getattr(args, key) for key in
                                                ("planes", "size", "every", "method", "threads", "seed")}, indent=1) + "\n")
    for variant in args.variants:
        path = out / f"{variant}.json"
        if path.exists():
            continue
        command = [sys.executable, __file__, "one", variant, "--planes", str(args.planes), "--size", str(args.size),
                   "--every", str(args.every), "--method", args.method, "--threads", str(args.threads),
                   "--seed", str(args.seed)]
        printed = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        path.write_text(json.dumps(json.loads(printed.strip().splitlines()[-1]), indent=1) + "\n")
        print(f"{variant}: done", flush=True)


def table(out: Path) -> list[str]:
    study = json.loads((out / "study.json").read_text())
    records = {variant: json.loads((out / f"{variant}.json").read_text())
               for variant in VARIANTS if (out / f"{variant}.json").exists()}
    lines = [f"{study['planes']} planes of {study['size']}², `{study['method']}`, {study['threads']} thread(s), "
             f"fresh planes: every {study['every']}th.", "",
             "| variant | planes run | s for the stack | s per plane after the first | PSNR on the fresh variant's "
             "planes after the first | peak RSS | input + output arrays |", "|---|---|---|---|---|---|---|"]
    shared = None
    if "fresh" in records:
        shared = {p["plane"] for p in records["fresh"]["planes"][1:]}
    for variant, record in records.items():
        planes = record["planes"]
        later = [p["seconds"] for p in planes[1:]]
        total = record["seconds"]
        stack_seconds = (f"{total:.0f}" if variant == "warm" else
                         f"≈ {planes[0]['seconds'] + np.mean(later) * (study['planes'] - 1):.0f} (estimated)")
        scored = [p["psnr"] for p in planes if shared is not None and p["plane"] in shared]
        psnr = f"{np.mean(scored):.2f} ({len(scored)} planes)" if scored else "–"
        lines.append(f"| {variant} | {len(planes)} | {stack_seconds} | {np.mean(later):.1f} | {psnr} | "
                     f"{record['peak_rss_bytes'] / 2**30:.2f} GiB | {record['array_bytes'] / 2**30:.2f} GiB |")
    if "fresh" in records and "warm" in records:
        noisy = [p["noisy_psnr"] for p in records["fresh"]["planes"][1:]]
        lines += ["", f"Noisy input on those planes: {np.mean(noisy):.2f} dB."]
    return lines


def main() -> None:
    parser, commands, runner = study_parser(__doc__)
    for command in (runner, one := commands.add_parser("one")):
        command.add_argument("--planes", type=int, default=100)
        command.add_argument("--size", type=int, default=256)
        command.add_argument("--every", type=int, default=10)
        command.add_argument("--method", default="bsn-balanced")
        command.add_argument("--threads", type=int, default=1)
        command.add_argument("--seed", type=int, default=0)
    runner.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    one.add_argument("variant", choices=VARIANTS)
    dispatch(parser.parse_args(), run, table, run_variant)


if __name__ == "__main__":
    main()
