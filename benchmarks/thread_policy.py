"""CPU thread policy of a training run: thread count and OpenMP wait policy, idle and with a busy core.

Inside napari the GUI thread competes with the run for the cores, so each policy is
timed twice: on an otherwise idle machine, and with one other process keeping a core
busy (a pure-Python loop, standing in for the GUI thread and whatever else runs).

Conditions: torch threads 1 or all cores; ``OMP_WAIT_POLICY`` unset (OpenMP's default,
threads spin between parallel regions) or ``PASSIVE`` (they sleep). Every (round,
condition) runs in a fresh process, in an order that alternates between rounds, so
machine load affects all conditions alike; each reports wall and CPU seconds per
iteration of the ``bsn`` preset (bf16 where supported) after warm-up iterations.

Usage:
    python benchmarks/thread_policy.py run --out benchmarks/results/thread-policy [--size 256] [--rounds 2]
    python benchmarks/thread_policy.py table --out benchmarks/results/thread-policy
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from _study_cli import dispatch, study_parser

WAIT_POLICIES = ("default", "PASSIVE")


def _conditions(cores: int) -> list[tuple[int, str, bool]]:
    return [(threads, wait, busy) for busy in (False, True) for threads in sorted({1, cores})
            for wait in WAIT_POLICIES]


def time_condition(size: int, iterations: int, warmup: int, threads: int) -> dict:
    """Seconds per iteration in this process (its environment already holds the wait policy)."""
    import torch

    from napari_zsdenoise import DenoiseRun
    from napari_zsdenoise.synthetic import fluorescence_phantom, poisson_gaussian_noise

    torch.set_num_threads(threads)
    noisy = poisson_gaussian_noise(fluorescence_phantom((size, size), seed=1), peak_photons=30, seed=2)
    run = DenoiseRun(noisy, "bsn", iterations=warmup + iterations, device="cpu", preview_every=0,
                     preview_interval=0, early_stopping=False)
    marks = [(time.process_time(), time.perf_counter()) for _ in run]
    (cpu0, wall0), (cpu1, wall1) = marks[warmup - 1], marks[-1]
    return {"wall_seconds_per_iteration": (wall1 - wall0) / iterations,
            "cpu_seconds_per_iteration": (cpu1 - cpu0) / iterations,
            "precision": run.metadata["precision"]}


def _busy_process() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def run_conditions(args: argparse.Namespace) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cores = os.cpu_count() or 1
    conditions = _conditions(cores)
    rows = []
    for round_index in range(args.rounds):
        order = conditions if round_index % 2 == 0 else conditions[::-1]
        for threads, wait, busy in order:
            env = dict(os.environ)
            env.pop("OMP_WAIT_POLICY", None)
            if wait != "default":
                env["OMP_WAIT_POLICY"] = wait
            load = _busy_process() if busy else None
            try:
                output = subprocess.run(
                    [sys.executable, __file__, "one", "--size", str(args.size), "--iterations", str(args.iterations),
                     "--warmup", str(args.warmup), "--threads", str(threads)],
                    env=env, check=True, capture_output=True, text=True).stdout
            finally:
                if load is not None:
                    load.kill()
                    load.wait()
            row = {"round": round_index, "threads": threads, "wait_policy": wait, "busy_core": busy,
                   **json.loads(output.strip().splitlines()[-1])}
            rows.append(row)
            print(json.dumps(row), flush=True)
    record = {"size": args.size, "iterations": args.iterations, "warmup": args.warmup, "cores": cores,
              "method": "bsn", "rows": rows}
    (out / f"thread-policy-{args.size}.json").write_text(json.dumps(record, indent=1))


def table(folder: Path) -> list[str]:
    """Markdown tables (median over rounds) of the records in ``folder``."""
    lines = []
    for path in sorted(Path(folder).glob("thread-policy-*.json")):
        record = json.loads(path.read_text())
        lines += [f"### {record['size']}² plane, {record['method']}, {record['cores']} cores, "
                  f"median of {1 + max(r['round'] for r in record['rows'])} rounds",
                  "", "| threads | OMP_WAIT_POLICY | other core busy | wall s/iteration | CPU s/iteration |",
                  "|---|---|---|---|---|"]
        groups: dict[tuple, list[dict]] = {}
        for row in record["rows"]:
            groups.setdefault((row["busy_core"], row["threads"], row["wait_policy"]), []).append(row)
        for (busy, threads, wait), rows in sorted(groups.items()):
            wall = np.median([r["wall_seconds_per_iteration"] for r in rows])
            cpu = np.median([r["cpu_seconds_per_iteration"] for r in rows])
            lines.append(f"| {threads} | {wait} | {'yes' if busy else 'no'} | {wall:.3f} | {cpu:.3f} |")
        lines.append("")
    return lines


def main() -> None:
    parser, commands, runner = study_parser(__doc__)
    runner.add_argument("--size", type=int, default=256)
    runner.add_argument("--rounds", type=int, default=2)
    runner.add_argument("--iterations", type=int, default=15)
    runner.add_argument("--warmup", type=int, default=3)
    one = commands.add_parser("one")
    one.add_argument("--size", type=int, default=256)
    one.add_argument("--iterations", type=int, default=15)
    one.add_argument("--warmup", type=int, default=3)
    one.add_argument("--threads", type=int, default=1)
    dispatch(parser.parse_args(), run_conditions, table,
             one=lambda args: print(json.dumps(time_condition(args.size, args.iterations, args.warmup, args.threads))))


if __name__ == "__main__":
    main()
