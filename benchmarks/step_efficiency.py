"""Each per-iteration efficiency change of MPI filling, measured alone: speed ratio and PSNR effect.

Variants (each one change against the reference arithmetic: fp32, contiguous tensors,
plain Adam, glibc's default allocator):

- ``bf16``: bfloat16 autocast of the training step (the engine's ``precision``);
- ``channels-last``: the network's weights and activations in channels-last layout;
- ``fused-adam``: torch's fused Adam kernel;
- ``heap``: large tensors kept on the heap during the run (glibc ``mallopt``) instead of
  a fresh ``mmap`` per allocation;
- ``all``: the four together; ``reference``: none of them;
- ``all-fp32-padding``: the four, but reflection padding left to autocast, which pads in
  float32 on the CPU (the product before ``ReflectionPad``): against ``all``, what padding
  in the activations' own dtype saves.

Timing: every (round, variant) runs in a fresh process with one torch thread, in an
order that alternates between rounds, so machine load affects all variants alike. Each
reports CPU seconds and wall seconds per iteration after warm-up iterations.

Quality: each variant runs the ``bsn`` preset (or ``--method``) on FMD crops and is
scored like ``zsdenoise bench``; the figures are the PSNR difference to the reference.

Usage:
    python benchmarks/step_efficiency.py timing --out benchmarks/results/step-efficiency [--size 256] [--rounds 3]
    python benchmarks/step_efficiency.py quality --out DIR [--pattern '*_1.png'] [--limit 2] [--iterations 300]
    python benchmarks/step_efficiency.py table --out DIR
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from napari_zsdenoise.methods.mpi.method import MPIMethod
from napari_zsdenoise.networks.hourglass import ReflectionPad

VARIANTS = ("reference", "bf16", "channels-last", "fused-adam", "heap", "all", "all-fp32-padding")
_CHANGES = {"bf16": {"bf16"}, "channels-last": {"channels-last"}, "fused-adam": {"fused-adam"}, "heap": {"heap"},
            "all": {"bf16", "channels-last", "fused-adam", "heap"}, "reference": set(),
            "all-fp32-padding": {"bf16", "channels-last", "fused-adam", "heap", "fp32-padding"}}
# glibc mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def apply_variant(variant: str, method: str) -> tuple[str, str]:
    """Set the process up for ``variant`` of ``method``; return the method to run (a study subclass of
    the product's MPI registered for this variant) and the precision to ask the engine for."""
    import dataclasses

    from napari_zsdenoise.methods.registry import get_method_spec, register_method

    global _VARIANT_CHANGES
    _VARIANT_CHANGES = _CHANGES[variant]
    if "heap" in _VARIANT_CHANGES:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        libc.mallopt(_M_MMAP_THRESHOLD, 1 << 30)
        libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30)
    name = f"{method}-{variant}-study"
    register_method(dataclasses.replace(get_method_spec(method), name=name, recommendation="",
                                        implementation=f"{__name__}:VariantMPI"))
    return name, "bf16" if "bf16" in _VARIANT_CHANGES else "fp32"


_VARIANT_CHANGES: set[str] = set()


class Float32ReflectionPad(nn.Module):
    """Reflection padding left to autocast, which pads in float32 on the CPU (the product before its own
    ``ReflectionPad``)."""

    def __init__(self, pad: int) -> None:
        super().__init__()
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, (self.pad,) * 4, mode="reflect")


class VariantMPI(MPIMethod):
    """The product's MPI with the layout, optimiser and padding of the variant this process measures."""

    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if "channels-last" in _VARIANT_CHANGES else torch.contiguous_format

    def make_optimizer(self, learning_rate: float) -> torch.optim.Optimizer:
        if "fp32-padding" in _VARIANT_CHANGES:
            for module in list(self.network.modules()):
                for name, child in list(module.named_children()):
                    if isinstance(child, ReflectionPad):
                        setattr(module, name, Float32ReflectionPad(child.pad))
        return torch.optim.Adam(self.network.parameters(), lr=learning_rate,
                                fused=True if "fused-adam" in _VARIANT_CHANGES else None)


def time_variant(variant: str, size: int, iterations: int, warmup: int, method: str) -> dict:
    """CPU and wall seconds per iteration of one variant (run in its own process)."""
    import torch

    from napari_zsdenoise import DenoiseRun
    from napari_zsdenoise.synthetic import fluorescence_phantom, poisson_gaussian_noise

    torch.set_num_threads(1)
    method, precision = apply_variant(variant, method)
    noisy = poisson_gaussian_noise(fluorescence_phantom((size, size), seed=1), peak_photons=30, seed=2)
    run = DenoiseRun(noisy, method, iterations=warmup + iterations, device="cpu", precision=precision,
                     preview_every=0, preview_interval=0, early_stopping=False)
    marks = []
    for _ in run:
        marks.append((time.process_time(), time.perf_counter()))
    (cpu0, wall0), (cpu1, wall1) = marks[warmup - 1], marks[-1]
    return {"variant": variant, "cpu_seconds_per_iteration": (cpu1 - cpu0) / iterations,
            "wall_seconds_per_iteration": (wall1 - wall0) / iterations}


def run_timing(args: argparse.Namespace) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for round_index in range(args.rounds):
        order = VARIANTS if round_index % 2 == 0 else VARIANTS[::-1]
        for variant in order:
            command = [sys.executable, __file__, "_time-one", variant, "--size", str(args.size),
                       "--iterations", str(args.iterations), "--warmup", str(args.warmup), "--method", args.method]
            row = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
            row["round"] = round_index
            rows.append(row)
            print(json.dumps(row), flush=True)
    record = {"size": args.size, "iterations": args.iterations, "warmup": args.warmup, "method": args.method,
              "threads": 1, "rows": rows}
    (out / f"timing-{args.method}-{args.size}.json").write_text(json.dumps(record, indent=1) + "\n")


def run_quality(args: argparse.Namespace) -> None:
    from napari_zsdenoise.evaluation import find_pairs

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for raw_path, gt_path in find_pairs(args.pairs, args.pattern)[: args.limit]:
        for variant in args.variants:
            target = out / f"quality-{args.method}-{args.iterations}-{raw_path.stem}-{variant}.json"
            if target.exists():
                continue
            command = [sys.executable, __file__, "_quality-one", variant, str(raw_path), str(gt_path),
                       "--crop", str(args.crop), "--iterations", str(args.iterations), "--method", args.method]
            row = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
            target.write_text(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)


def quality_one(variant: str, raw_path: str, gt_path: str, crop: int, iterations: int, method: str) -> dict:
    import torch

    from napari_zsdenoise import DenoiseRun
    from napari_zsdenoise.evaluation import load_pair, score

    torch.set_num_threads(1)
    study_method, precision = apply_variant(variant, method)
    noisy, clean = load_pair(Path(raw_path), Path(gt_path), crop)
    run = DenoiseRun(noisy, study_method, iterations=iterations, device="cpu", precision=precision, seed=0,
                     preview_every=0, preview_interval=0)
    for _ in run:
        pass
    psnr, ssim = score(run.result, clean)
    return {"variant": variant, "image": Path(raw_path).stem, "crop": crop, "method": method, "iterations": iterations,
            "iterations_done": run.metadata["planes"][0]["iterations_done"], "psnr": psnr, "ssim": ssim,
            "seconds": run.metadata["seconds"]}


def table(out: Path) -> list[str]:
    """Markdown lines: each variant's speed ratio against the reference and its PSNR effect."""
    lines = []
    for path in sorted(out.glob("timing-*.json")):
        record = json.loads(path.read_text())
        by_variant: dict[str, list[dict]] = {}
        for row in record["rows"]:
            by_variant.setdefault(row["variant"], []).append(row)
        reference_cpu = np.median([r["cpu_seconds_per_iteration"] for r in by_variant["reference"]])
        reference_wall = np.median([r["wall_seconds_per_iteration"] for r in by_variant["reference"]])
        quality = _quality_effects(out, record["method"])
        lines += [f"`{record['method']}`, {record['size']}² plane, 1 thread, median of {len(by_variant['reference'])} "
                  f"interleaved rounds of {record['iterations']} iterations:", "",
                  "| change | CPU s/it | speed-up (CPU) | speed-up (wall) | PSNR change |", "|---|---|---|---|---|"]
        for variant in VARIANTS:
            rows = by_variant.get(variant, [])
            if not rows:
                continue
            cpu = np.median([r["cpu_seconds_per_iteration"] for r in rows])
            wall = np.median([r["wall_seconds_per_iteration"] for r in rows])
            lines.append(f"| {variant} | {cpu:.3f} | {reference_cpu / cpu:.2f}× | {reference_wall / wall:.2f}× | "
                         f"{quality.get(variant, '–')} |")
        lines.append("")
    return lines


def _quality_effects(out: Path, method: str) -> dict[str, str]:
    rows = [json.loads(p.read_text()) for p in out.glob(f"quality-{method}-*.json")]
    reference = {r["image"]: r["psnr"] for r in rows if r["variant"] == "reference"}
    effects = {}
    for variant in VARIANTS:
        deltas = [r["psnr"] - reference[r["image"]] for r in rows if r["variant"] == variant and r["image"] in reference]
        if deltas:
            effects[variant] = f"{np.mean(deltas):+.3f} dB ({len(deltas)} crops)"
    return effects


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    timing = commands.add_parser("timing")
    timing.add_argument("--out", required=True)
    timing.add_argument("--size", type=int, default=256)
    timing.add_argument("--rounds", type=int, default=3)
    timing.add_argument("--iterations", type=int, default=20)
    timing.add_argument("--warmup", type=int, default=5)
    timing.add_argument("--method", default="bsn")
    one = commands.add_parser("_time-one")
    one.add_argument("variant", choices=VARIANTS)
    one.add_argument("--size", type=int)
    one.add_argument("--iterations", type=int)
    one.add_argument("--warmup", type=int)
    one.add_argument("--method")
    quality = commands.add_parser("quality")
    quality.add_argument("--out", required=True)
    quality.add_argument("--pairs", default="../shared/data/fmd-test")
    quality.add_argument("--pattern", default="*_1.png")
    quality.add_argument("--limit", type=int, default=2)
    quality.add_argument("--crop", type=int, default=256)
    quality.add_argument("--iterations", type=int, default=300)
    quality.add_argument("--method", default="bsn")
    quality.add_argument("--variants", nargs="+", default=[v for v in VARIANTS if v != "heap"],
                         help="heap is left out by default: it changes no arithmetic")
    quality_single = commands.add_parser("_quality-one")
    quality_single.add_argument("variant", choices=VARIANTS)
    quality_single.add_argument("raw")
    quality_single.add_argument("gt")
    quality_single.add_argument("--crop", type=int)
    quality_single.add_argument("--iterations", type=int)
    quality_single.add_argument("--method")
    show = commands.add_parser("table")
    show.add_argument("--out", required=True)
    args = parser.parse_args()
    if args.command == "timing":
        run_timing(args)
    elif args.command == "_time-one":
        print(json.dumps(time_variant(args.variant, args.size, args.iterations, args.warmup, args.method)))
    elif args.command == "quality":
        run_quality(args)
    elif args.command == "_quality-one":
        print(json.dumps(quality_one(args.variant, args.raw, args.gt, args.crop, args.iterations, args.method)))
    else:
        print("\n".join(table(Path(args.out))))


if __name__ == "__main__":
    main()
