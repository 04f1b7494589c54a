"""CPU thread policy of a training run: thread count and OpenMP wait policy, idle and with a busy core.

Inside napari the GUI thread competes with the run for the cores, so each policy is
timed twice: on an otherwise idle machine, and with one other process keeping a core
busy (a pure-Python loop, standing in for the GUI thread and whatever else runs).

Conditions: torch threads 1 or all cores; ``OMP_WAIT_POLICY`` unset (OpenMP's default,
threads spin between parallel regions) or ``PASSIVE`` (they sleep). Every (round,
condition) runs in a fresh process, in an order that alternates between rounds, so
machine load affects all conditions alike; each reports wall and CPU seconds per
iteration of the ``bsn`` preset (bf16 where supported) after warm-up iterations.

``choice`` times what the product does (threads chosen from the cores other processes leave
free, ``DenoiseRun(threads=None)``) against fixed thread counts, with 0, 1 or 2 other core-bound
processes, OpenMP's default wait policy (the command line's), the recommended preset:
the product's choice with k busy processes against an idle run on n - k threads, and idle against
today's default (all cores).

Usage:
    python benchmarks/thread_policy.py run --out benchmarks/results/thread-policy [--size 256] [--rounds 2]
    python benchmarks/thread_policy.py choice --out benchmarks/results/thread-policy [--size 256] [--rounds 2]
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


def time_condition(size: int, iterations: int, warmup: int, threads: int, method: str = "bsn") -> dict:
    """Seconds per iteration in this process (its environment already holds the wait policy); ``threads``
    0 leaves the count to the product."""
    import torch

    from napari_zsdenoise import DenoiseRun
    from napari_zsdenoise.synthetic import fluorescence_phantom, poisson_gaussian_noise

    if method == "bsn":  # the first study set torch's count itself
        torch.set_num_threads(threads)
    noisy = poisson_gaussian_noise(fluorescence_phantom((size, size), seed=1), peak_photons=30, seed=2)
    run = DenoiseRun(noisy, method, iterations=warmup + iterations, device="cpu", preview_every=0,
                     preview_interval=0, early_stopping=False, threads=None if method == "bsn" else threads)
    marks = [(time.process_time(), time.perf_counter()) for _ in run]
    (cpu0, wall0), (cpu1, wall1) = marks[warmup - 1], marks[-1]
    return {"wall_seconds_per_iteration": (wall1 - wall0) / iterations,
            "cpu_seconds_per_iteration": (cpu1 - cpu0) / iterations,
            "precision": run.metadata["precision"], "cpu_threads": run.metadata.get("cpu_threads")}


#: (threads given to the run: 0 the product's choice, busy processes) of the ``choice`` study.
def _choices(cores: int) -> list[tuple[int, int]]:
    return [(threads, busy) for busy in range(cores + 1) for threads in (0, *sorted({1, cores}))]


def run_choices(args: argparse.Namespace) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cores = os.cpu_count() or 1
    rows = []
    for round_index in range(args.rounds):
        conditions = _choices(cores)
        for threads, busy in conditions if round_index % 2 == 0 else conditions[::-1]:
            env = {key: value for key, value in os.environ.items()
                   if key not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
            loads = [_busy_process() for _ in range(busy)]
            try:
                time.sleep(0.5)  # the busy processes running before the run looks at the cores
                output = subprocess.run(
                    [sys.executable, __file__, "one", "--size", str(args.size), "--iterations", str(args.iterations),
                     "--warmup", str(args.warmup), "--threads", str(threads), "--method", args.method],
                    env=env, check=True, capture_output=True, text=True).stdout
            finally:
                for load in loads:
                    load.kill()
                    load.wait()
            row = {"round": round_index, "threads": threads, "busy_processes": busy,
                   **json.loads(output.strip().splitlines()[-1])}
            rows.append(row)
            print(json.dumps(row), flush=True)
    record = {"size": args.size, "iterations": args.iterations, "warmup": args.warmup, "cores": cores,
              "method": args.method, "rows": rows}
    (out / f"thread-choice-{args.size}.json").write_text(json.dumps(record, indent=1) + "\n")


def choice_table(folder: Path) -> list[str]:
    """Markdown: seconds per iteration of the product's choice and of fixed counts with 0..n busy processes,
    and the two ratios the choice is held to."""
    lines = []
    for path in sorted(Path(folder).glob("thread-choice-*.json"), key=lambda p: json.loads(p.read_text())["size"]):
        record = json.loads(path.read_text())
        cores, rounds = record["cores"], 1 + max(r["round"] for r in record["rows"])
        wall: dict[tuple[int, int], float] = {}
        chosen: dict[int, list[int]] = {}
        for key in {(r["threads"], r["busy_processes"]) for r in record["rows"]}:
            rows = [r for r in record["rows"] if (r["threads"], r["busy_processes"]) == key]
            wall[key] = float(np.median([r["wall_seconds_per_iteration"] for r in rows]))
            if key[0] == 0:
                chosen[key[1]] = sorted({r["cpu_threads"]["threads"] for r in rows})
        lines += [f"{record['size']}² plane, `{record['method']}`, {cores} cores, OpenMP's default wait policy, "
                  f"median of {rounds} interleaved rounds of {record['iterations']} iterations (wall seconds per "
                  "iteration):", "",
                  "| other core-bound processes | product's choice (threads it chose) | "
                  + " | ".join(f"{t} thread{'s' if t > 1 else ''} fixed" for t in sorted({1, cores}))
                  + " | choice ÷ idle run on n − k threads |", "|---" * (3 + len({1, cores})) + "|"]
        for busy in range(cores + 1):
            if (0, busy) not in wall:
                continue
            reference = wall.get((max(1, cores - busy), 0))
            ratio = f"{wall[(0, busy)] / reference:.2f}×" if reference else "–"
            if busy >= cores:
                ratio += " (n − k = 0: against 1 thread)"
            fixed = " | ".join(f"{wall.get((t, busy), float('nan')):.3f}" for t in sorted({1, cores}))
            lines.append(f"| {busy} | {wall[(0, busy)]:.3f} ({', '.join(map(str, chosen[busy]))}) | {fixed} | {ratio} |")
        if (cores, 0) in wall:
            lines += ["", f"Idle, the product's choice against today's default of {cores} threads: "
                          f"{wall[(0, 0)] / wall[(cores, 0)]:.2f}×.", ""]
    return lines


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
    return policy_table(folder) + choice_table(folder)


def policy_table(folder: Path) -> list[str]:
    """Markdown tables of the first study (thread count and wait policy, one busy core or none)."""
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
    one.add_argument("--method", default="bsn")
    choice = commands.add_parser("choice")
    choice.add_argument("--out", required=True)
    choice.add_argument("--size", type=int, default=256)
    choice.add_argument("--rounds", type=int, default=2)
    choice.add_argument("--iterations", type=int, default=12)
    choice.add_argument("--warmup", type=int, default=3)
    choice.add_argument("--method", default="bsn-balanced")
    args = parser.parse_args()
    if args.command == "choice":
        run_choices(args)
        return
    dispatch(args, run_conditions, table,
             one=lambda args: print(json.dumps(time_condition(args.size, args.iterations, args.warmup, args.threads,
                                                              args.method))))


if __name__ == "__main__":
    main()
