"""Mean PSNR of the live preview against the iteration count, from traced benchmarks.

Reads the per-image figures that ``zsdenoise bench --trace-every N --per-image-dir DIR``
writes (one folder per run) and prints, for the images present in every folder, the mean
PSNR at each traced iteration and where each image peaks. For MPI the preview at
iteration N is what an N-iteration run returns, so this answers "how many iterations?"
without rerunning anything.

Usage:
    python benchmarks/convergence.py LABEL=DIR [LABEL=DIR ...] [--at 100 200 300 500 1000]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def load_traces(folder: Path) -> dict[str, dict[int, float]]:
    traces = {}
    for record_path in sorted(folder.glob("*.json")):
        score = json.loads(record_path.read_text())["score"]
        if score.get("trace"):
            traces[score["name"]] = {int(row[0]): row[1] for row in score["trace"]}
    return traces


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="LABEL=DIR, DIR being a --per-image-dir of a traced bench")
    parser.add_argument("--at", type=int, nargs="+", default=[100, 200, 250, 300, 400, 500, 750, 1000])
    args = parser.parse_args()

    runs = {}
    for item in args.runs:
        label, _, folder = item.partition("=")
        runs[label] = load_traces(Path(folder))
    common = sorted(set.intersection(*(set(traces) for traces in runs.values())))
    if not common:
        raise SystemExit("no image is traced in every folder")
    print(f"{len(common)} image(s): {', '.join(common)}")
    print(f"{'iterations':<12}" + "".join(f"{label:>12}" for label in runs))
    for iteration in args.at:
        cells = []
        for traces in runs.values():
            values = [traces[name].get(iteration) for name in common]
            cells.append(f"{np.mean(values):12.2f}" if None not in values else f"{'–':>12}")
        print(f"{iteration:<12}" + "".join(cells))
    print("\nbest iteration per image (PSNR there / at the last traced iteration):")
    for label, traces in runs.items():
        peaks = []
        for name in common:
            best = max(traces[name], key=traces[name].get)
            last = max(traces[name])
            peaks.append(f"{name} {best} ({traces[name][best]:.2f}/{traces[name][last]:.2f})")
        print(f"  {label}: " + "; ".join(peaks))


if __name__ == "__main__":
    main()
