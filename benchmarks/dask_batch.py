"""A folder batch in one process against the same batch on a 2-worker Dask LocalCluster.

Both run the command line as a user would (``zsdenoise denoise IN/ -o OUT/``, the second with
``--dask local --dask-workers 2``) on the same folder of images, in a fresh process each, the two
variants alternating round by round so that machine load affects them alike. The one process
computes each file with every core (torch's default thread count); each Dask worker computes
its own files with one thread. Recorded: wall seconds, CPU seconds of the command and its
children, and the largest difference between the two variants' results (they differ only by
the thread count's order of floating-point sums).

The images are centre crops of the FMD ``*_1`` images, written as TIFF to a temporary folder
(never into the repository).

Usage:
    python benchmarks/dask_batch.py run --out benchmarks/results/dask-batch [--images 8] [--crop 128] \
        [--method mpi-fast] [--rounds 2]
    python benchmarks/dask_batch.py table --out benchmarks/results/dask-batch
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _study_cli import dispatch, study_parser

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PAIRS = ROOT.parent / "shared" / "data" / "fmd-test"
VARIANTS = {"one process": [], "LocalCluster, 2 workers": ["--dask", "local", "--dask-workers", "2"]}


def write_inputs(pairs: Path, folder: Path, images: int, crop: int) -> list[str]:
    import numpy as np
    import tifffile
    from skimage.io import imread

    names = sorted(path.stem for path in (pairs / "raw").glob("*_1.png"))[:images]
    for name in names:
        image = np.asarray(imread(pairs / "raw" / f"{name}.png"))
        top, left = (image.shape[0] - crop) // 2, (image.shape[1] - crop) // 2
        tifffile.imwrite(folder / f"{name}.tif", image[top:top + crop, left:left + crop])
    return names


def run_once(source: Path, destination: Path, method: str, extra: list[str]) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "napari_zsdenoise", "denoise", str(source), "-o", str(destination),
                    "--method", method, "-q", *extra], check=True, env=os.environ.copy())
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_seconds": wall, "cpu_seconds": cpu}


def largest_difference(first: Path, second: Path) -> float:
    import numpy as np
    import tifffile

    return max(float(np.max(np.abs(tifffile.imread(a) - tifffile.imread(second / a.name))))
               for a in sorted(first.glob("*.tif")))


def run(args: argparse.Namespace) -> None:
    pairs = Path(args.pairs)
    if not (pairs / "raw").is_dir():
        sys.exit(f"no FMD pairs at {pairs}: pass --pairs")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        source = Path(scratch) / "in"
        source.mkdir()
        names = write_inputs(pairs, source, args.images, args.crop)
        rounds = []
        for number in range(args.rounds):
            order = list(VARIANTS) if number % 2 == 0 else list(reversed(VARIANTS))
            timings = {}
            for variant in order:
                destination = Path(scratch) / f"out-{number}-{len(timings)}"
                timings[variant] = {**run_once(source, destination, args.method, VARIANTS[variant]),
                                    "output": str(destination)}
                print(number, variant, f"{timings[variant]['wall_seconds']:.1f} s", flush=True)
            outputs = [Path(timing.pop("output")) for timing in timings.values()]
            rounds.append({"order": order, "timings": timings,
                           "largest_difference": largest_difference(*outputs)})
    import torch

    record = {"images": names, "crop": args.crop, "method": args.method, "cpu_count": os.cpu_count(),
              "torch_version": torch.__version__, "rounds": rounds}
    path = out / f"batch-{len(names)}x{args.crop}-{args.method}.json"
    path.write_text(json.dumps(record, indent=1) + "\n")
    print("\n".join(table(out)))


def table(out: Path) -> list[str]:
    lines = ["| batch | variant | wall s (each round) | CPU s (each round) | wall against one process | "
             "largest difference between the variants' results |", "|---|---|---|---|---|---|"]
    for path in sorted(Path(out).glob("batch-*.json")):
        record = json.loads(path.read_text())
        batch = f"{len(record['images'])} images, {record['crop']}², `{record['method']}`"
        walls = {variant: [r["timings"][variant]["wall_seconds"] for r in record["rounds"]] for variant in VARIANTS}
        baseline = sum(walls["one process"])
        difference = max(r["largest_difference"] for r in record["rounds"])
        for variant in VARIANTS:
            cpus = [r["timings"][variant]["cpu_seconds"] for r in record["rounds"]]
            lines.append(f"| {batch} | {variant} | {', '.join(f'{w:.0f}' for w in walls[variant])} | "
                         f"{', '.join(f'{c:.0f}' for c in cpus)} | {sum(walls[variant]) / baseline:.2f}× | "
                         f"{difference:.2g} |")
    return lines


def main() -> None:
    parser, _, runner = study_parser(__doc__)
    runner.add_argument("--pairs", default=str(DEFAULT_PAIRS))
    runner.add_argument("--images", type=int, default=8)
    runner.add_argument("--crop", type=int, default=128)
    runner.add_argument("--method", default="mpi-fast")
    runner.add_argument("--rounds", type=int, default=2)
    dispatch(parser.parse_args(), run, table)


if __name__ == "__main__":
    main()
