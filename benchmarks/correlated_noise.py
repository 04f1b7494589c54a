"""Early-stopping scores against PSNR on spatially correlated noise (FMD widefield crops).

One blind-spot filling run per image, never stopped: at every check the study records the
PSNR of the result the run would return there, the held-out error and the residual's
neighbour correlation at lags 1-3 (what early stopping can see), the residual's mean
square and its 2x2 binning noise ratio, and the CPU seconds so far. ``table`` prints, per
image, where the PSNR peaks, which check each score would keep, and the PSNR of a fixed
budget of iterations, which is how ``correlated_noise_iterations`` was chosen.

Usage:
    python benchmarks/correlated_noise.py run --out DIR --names WideField_BPAE_R_1 ... [--iterations 400]
        [--settings '{"width": 48, "blend_noisy": true}'] [--pairs ../shared/data/fmd-test] [--crop 256]
    python benchmarks/correlated_noise.py table --out DIR [--budgets 50 100 150] [--png FILE]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

# The study's own filling run: the candidate recommended preset's settings, validated every
# 25 iterations and never stopped (the trajectory does not depend on patience).
DEFAULT_SETTINGS = {"ema_beta": 0.99, "weights": None, "width": 48, "blend_noisy": True}


def lag_correlation(residual, lag: int) -> float:
    """Mean correlation of ``residual`` between pixels ``lag`` apart, horizontally and vertically."""
    import torch

    centred = residual - residual.mean()

    def correlation(first, second) -> float:
        return float((first * second).mean() / torch.sqrt((first * first).mean() * (second * second).mean()))

    return 0.5 * (correlation(centred[..., :, lag:], centred[..., :, :-lag])
                  + correlation(centred[..., lag:, :], centred[..., :-lag, :]))


def study_image(name: str, args: argparse.Namespace) -> list[dict]:
    import torch

    from napari_zsdenoise.evaluation import find_pairs, load_pair, score
    from napari_zsdenoise.methods._early_stopping import binning_noise_ratio
    from napari_zsdenoise.methods.mpi import MPIConfig, MPIMethod
    from napari_zsdenoise.normalization import IntensityScaling

    raw, gt = find_pairs(args.pairs, f"{name}.png")[0]
    noisy, clean = load_pair(raw, gt, args.crop)
    scaling = IntensityScaling.fit(noisy)
    settings = {**DEFAULT_SETTINGS, **json.loads(args.settings)}
    config = MPIConfig(iterations=args.iterations, early_stopping=True, patience=10**9, validation_every=25, **settings)
    method = MPIMethod(config)
    method.setup(torch.device("cpu"), args.seed)
    method.prepare(scaling.normalize(noisy), args.seed)
    rows, start = [], time.process_time()
    for iteration in range(1, args.iterations + 1):
        record = method.step()
        if iteration % config.validation_every:
            continue
        residual = method.noisy - method._ensemble.mean()
        psnr, ssim = score(scaling.denormalize(method.preview()), clean)
        rows.append({"it": iteration, "psnr": psnr, "ssim": ssim, "err": record.scores.get("holdout_error"),
                     "c1": lag_correlation(residual, 1), "c2": lag_correlation(residual, 2),
                     "c3": lag_correlation(residual, 3), "var": float((residual**2).mean()),
                     "bin": binning_noise_ratio(residual[0, 0]), "cpu": time.process_time() - start})
        print(name, rows[-1], flush=True)
    return rows


def run(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    study = {"settings": {**DEFAULT_SETTINGS, **json.loads(args.settings)}, "crop": args.crop, "seed": args.seed,
             "iterations": args.iterations, "threads": 1}
    (args.out / "study.json").write_text(json.dumps(study, indent=1))
    for name in args.names:
        target = args.out / f"{name}.json"
        if not target.exists():
            target.write_text(json.dumps(study_image(name, args)))


def table(out: Path, budgets: list[int]) -> list[str]:
    """Markdown lines: per image the peak, the check each score keeps, and fixed budgets."""
    header = ("| image | PSNR peak | highest residual correlation keeps | lowest held-out error keeps | "
              + " | ".join(f"{budget} it" for budget in budgets) + " |")
    lines = [header, "|" + "---|" * (4 + len(budgets))]
    means: dict[int, list[float]] = {budget: [] for budget in budgets}
    for name, rows in records(out).items():
        at = {row["it"]: row for row in rows}
        peak = max(rows, key=lambda row: row["psnr"])
        by_correlation = max(rows, key=lambda row: row["c1"])
        by_error = min(rows, key=lambda row: row["err"])
        cells = [f"{at[budget]['psnr']:.2f}" if budget in at else "-" for budget in budgets]
        for budget in budgets:
            means[budget].append(at[budget]["psnr"] if budget in at else float("nan"))
        lines.append(f"| {name} | {peak['psnr']:.2f} dB at {peak['it']} | {by_correlation['psnr']:.2f} at "
                     f"{by_correlation['it']} | {by_error['psnr']:.2f} at {by_error['it']} | " + " | ".join(cells) + " |")
    lines.append("| mean | | | | " + " | ".join(f"{sum(values) / len(values):.2f}" for values in means.values()) + " |")
    return lines


def records(out: Path) -> dict[str, list[dict]]:
    return {path.stem: json.loads(path.read_text()) for path in sorted(out.glob("*.json")) if path.name != "study.json"}


def plot(out: Path, png: Path) -> None:
    """PSNR and residual neighbour correlation against iterations, one line per image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (top, bottom) = plt.subplots(2, 1, figsize=(6, 6), sharex=True)
    for name, rows in records(out).items():
        iterations = [row["it"] for row in rows]
        line, = top.plot(iterations, [row["psnr"] for row in rows], label=name)
        bottom.plot(iterations, [row["c1"] for row in rows], color=line.get_color())
    top.set_ylabel("PSNR (dB)")
    bottom.set_ylabel("residual neighbour correlation")
    bottom.set_xlabel("iteration")
    top.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(png, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run")
    run_parser.add_argument("--out", type=Path, required=True)
    run_parser.add_argument("--names", nargs="+", required=True)
    run_parser.add_argument("--iterations", type=int, default=400)
    run_parser.add_argument("--settings", default="{}", help="JSON object of MPI settings over the defaults")
    run_parser.add_argument("--pairs", type=Path, default=Path("../shared/data/fmd-test"))
    run_parser.add_argument("--crop", type=int, default=256)
    run_parser.add_argument("--seed", type=int, default=0)
    table_parser = commands.add_parser("table")
    table_parser.add_argument("--out", type=Path, required=True)
    table_parser.add_argument("--budgets", type=int, nargs="+", default=[25, 50, 100, 150, 200])
    table_parser.add_argument("--png", type=Path, help="also plot the curves to this file")
    args = parser.parse_args()
    if args.command == "run":
        run(args)
    else:
        print("\n".join(table(args.out, args.budgets)))
        if args.png:
            plot(args.out, args.png)


if __name__ == "__main__":
    main()
