"""Peak memory and seconds of one large plane: how the memory budget keeps a run within bounds.

Each case runs in a fresh process: a synthetic float32 plane of the given side, the
``bsn`` preset for a few iterations (so that at least one whole-plane fill happens), on
the CPU with one torch thread. It reports the process's peak resident memory, the bytes
of the input and output arrays, what the run chose (``trained_on_crops``) and the
seconds per iteration. A few iterations say nothing about quality; the point is memory.

Usage:
    python benchmarks/large_planes.py run --out benchmarks/results/large-planes --sizes 2048 8192 \
        [--budgets 0 1024] [--iterations 4]
    python benchmarks/large_planes.py table --out benchmarks/results/large-planes
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from _study_cli import dispatch, study_parser


def one_case(size: int, budget_mb: int, iterations: int) -> dict:
    import resource

    import numpy as np
    import torch

    from napari_zsdenoise import DenoiseRun

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    plane = (100 + 20 * rng.random((size, size), dtype=np.float32)).astype(np.float32)
    started = time.perf_counter()
    run = DenoiseRun(plane, "bsn", device="cpu", iterations=iterations, early_stopping=False, memory_budget_mb=budget_mb,
                     preview_every=0, preview_interval=0)
    for _ in run:
        pass
    seconds = time.perf_counter() - started
    facts = run.metadata["planes"][0]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux
    return {"size": size, "budget_mb": budget_mb, "iterations": iterations, "seconds": seconds,
            "peak_rss_bytes": peak, "arrays_bytes": 2 * plane.nbytes, "trained_on_crops": facts.get("trained_on_crops"),
            "reason": facts.get("reason"), "precision": run.metadata["precision"]}


def run_cases(args: argparse.Namespace) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for size in args.sizes:
        for budget in args.budgets:
            path = out / f"plane-{size}-budget-{budget}.json"
            if path.exists():
                continue
            printed = subprocess.run([sys.executable, __file__, "one", "--size", str(size), "--budget", str(budget),
                                      "--iterations", str(args.iterations)], check=True, capture_output=True, text=True)
            record = json.loads(printed.stdout.strip().splitlines()[-1])
            path.write_text(json.dumps(record, indent=1) + "\n")
            print(json.dumps(record), flush=True)


def table(out: Path) -> list[str]:
    lines = ["| plane | memory budget | trained on crops of | peak RSS | input + output arrays | peak beyond them | s/iteration |",
             "|---|---|---|---|---|---|---|"]
    records = [json.loads(p.read_text()) for p in sorted(Path(out).glob("plane-*.json"))]
    for r in sorted(records, key=lambda r: (r["size"], r["budget_mb"])):
        gib = 2**30
        lines.append(f"| {r['size']}² | {'automatic' if not r['budget_mb'] else str(r['budget_mb']) + ' MB'} | "
                     f"{r['trained_on_crops'] or 'whole plane'} | {r['peak_rss_bytes'] / gib:.2f} GiB | "
                     f"{r['arrays_bytes'] / gib:.2f} GiB | {(r['peak_rss_bytes'] - r['arrays_bytes']) / gib:.2f} GiB | "
                     f"{r['seconds'] / r['iterations']:.1f} |")
    return lines


def main() -> None:
    parser, commands, runner = study_parser(__doc__)
    runner.add_argument("--sizes", type=int, nargs="+", default=[2048])
    runner.add_argument("--budgets", type=int, nargs="+", default=[0, 1024])
    runner.add_argument("--iterations", type=int, default=4)
    one = commands.add_parser("one")
    one.add_argument("--size", type=int, required=True)
    one.add_argument("--budget", type=int, default=0)
    one.add_argument("--iterations", type=int, default=4)
    dispatch(parser.parse_args(), run_cases, table,
             one=lambda args: print(json.dumps(one_case(args.size, args.budget, args.iterations))))


if __name__ == "__main__":
    main()
