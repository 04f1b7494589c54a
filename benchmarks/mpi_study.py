"""One MPI filling run per image, many ensembles: every EMA beta and iteration budget at once.

MPI's training trajectory (network, masks, optimiser) does not depend on the EMA weight
beta or on the iteration budget: those only decide how the per-step predictions at the
hidden pixels are averaged and when the run stops. So one 1000-iteration run per image
yields the ``mpi-fast`` preset (beta 0.9, its first 200 iterations), the ``mpi`` preset
(beta 0.99, 1000 iterations) and every other budget, plus other averaging rules fed the
same predictions:

- ``ema-B``: the authors' masked EMA, started at the noisy image (what the product runs);
- ``blend-B``: ``ema-B-unbiased`` combined with the noisy image by the estimated weight
  (what ``blend_noisy=True`` returns; its weight is the row's fourth number);
- ``ema-B-unbiased``: the same EMA started at zero and divided by its per-pixel weight
  ``1 - B**n`` (n = times the pixel was hidden), so no share of the noisy image is left
  in it however short the run (the ensemble that ``blend_noisy=True`` starts from).

The plain ``ema-B`` ensemble for the run's own beta is checked to be bit-identical to the
method's own result, so its figures are the product's. Images are scored as ``zsdenoise
bench`` does; each image's figures go to ``OUT/NAME.json`` as soon as it is done, and
images already there are skipped, so a run can be continued in a later session.

Usage:
    python benchmarks/mpi_study.py --out DIR --weights shipped|none|PATH
        [--pairs ../shared/data/fmd-test] [--pattern '*_1.png'] [--crop 256] [--iterations 1000]
        [--trace-every 25] [--betas 0.9 0.99] [--device cpu] [--holdout 0.05 [--end-with-patience 200]]
    python benchmarks/mpi_study.py --out DIR --summary-only [--at 200 1000]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from napari_zsdenoise.devices import resolve_device
from napari_zsdenoise.evaluation import find_pairs, load_pair, score
from napari_zsdenoise.methods._early_stopping import StoppingRule
from napari_zsdenoise.methods._ensemble import MaskedEnsemble, noise_response, residual_correlation
from napari_zsdenoise.methods.mpi import MPIConfig, MPIMethod
from napari_zsdenoise.normalization import IntensityScaling
from napari_zsdenoise.weights import parse_weights_choice


class StudiedMPI(MPIMethod):
    """MPI that also folds every step's predictions into the study's extra ensembles."""

    def __init__(self, config: MPIConfig, extra_ensembles: list[MaskedEnsemble] | None = None) -> None:
        super().__init__(config)
        self.extra_ensembles = extra_ensembles or []

    def fold_in(self, prediction: torch.Tensor, hidden: torch.Tensor, region=None) -> None:
        super().fold_in(prediction, hidden, region)
        for ensemble in self.extra_ensembles:
            ensemble.update(prediction, hidden, region)


def ensemble_label(ensemble: MaskedEnsemble) -> str:
    return f"ema-{ensemble.beta:g}" + ("-unbiased" if ensemble.start == "zero" else "")


def plane_of(tensor: torch.Tensor) -> np.ndarray:
    return tensor[0, 0].detach().cpu().numpy()


def study_image(noisy: np.ndarray, clean: np.ndarray, args: argparse.Namespace, device: torch.device,
                arrays: Path | None = None) -> dict:
    scaling = IntensityScaling.fit(noisy)
    holdout = {} if not args.holdout else {
        # Validation only: the study runs every iteration and records the held-out error,
        # so any patience can be replayed from the record.
        "early_stopping": True, "holdout_fraction": args.holdout, "patience": 10**9, "validation_every": args.trace_every}
    config = MPIConfig(iterations=args.iterations, ema_beta=args.betas[-1], weights=parse_weights_choice(args.weights),
                       blend_noisy=False, **holdout)
    method = StudiedMPI(config)
    method.setup(device, args.seed)
    method.prepare(scaling.normalize(noisy), args.seed)
    plane = method.noisy
    ensembles = [MaskedEnsemble(plane, beta, start) for beta in args.betas for start in ("noisy", "zero")]
    method.extra_ensembles = ensembles
    holdout_pixels = None if method.early_stopping is None else method.early_stopping.holdout
    trace: dict[str, list[list[float]]] = {ensemble_label(e): [] for e in ensembles}
    response = noise_response(plane)
    for beta in args.betas:
        trace[f"blend-{beta:g}"] = []
    seconds_at: dict[int, float] = {}
    compute = 0.0
    saved: dict[str, np.ndarray] = {}
    for iteration in range(1, args.iterations + 1):
        start = time.perf_counter()
        method.step()
        compute += time.perf_counter() - start
        if iteration % args.trace_every == 0 or iteration == args.iterations:
            seconds_at[iteration] = compute
            for ensemble in ensembles:
                trace[ensemble_label(ensemble)].append([iteration, *score(scaling.denormalize(plane_of(ensemble.mean())), clean)])
                if ensemble.start == "zero":
                    if holdout_pixels is not None:
                        # What early stopping would see for this beta (the method's own
                        # validation trace has the same for the run's own beta).
                        scored = holdout_pixels & (ensemble.weight > 0)
                        error = float(((ensemble.mean() - plane)[scored] ** 2).mean())
                        correlation = residual_correlation(plane, ensemble.mean())
                        trace.setdefault(f"holdout-{ensemble.beta:g}", []).append([iteration, error, correlation])
                    blended, weight = ensemble.blended(response)
                    trace[f"blend-{ensemble.beta:g}"].append(
                        [iteration, *score(scaling.denormalize(plane_of(blended)), clean), weight])
        if (args.end_with_patience and holdout_pixels is not None and iteration % args.trace_every == 0
                and iteration >= PRESETS[0][2]
                and early_stopping_checks(trace[f"holdout-{config.ema_beta:g}"], args.iterations, args.end_with_patience)[2]):
            # The product's early stopping would end the run here; `mpi-fast`'s budget is always kept.
            break
        if arrays is not None and iteration in args.save_at:
            # Raw material for studying other output rules offline (normalised units).
            for ensemble in ensembles:
                if ensemble.start == "zero":
                    saved[f"{ensemble_label(ensemble)}-{iteration}-average"] = plane_of(ensemble.average)
                    saved[f"{ensemble_label(ensemble)}-{iteration}-weight"] = plane_of(ensemble.weight)
    if arrays is not None:
        np.savez_compressed(arrays, noisy=scaling.normalize(noisy), clean=scaling.normalize(clean),
                            scaling=np.array([scaling.offset, scaling.scale]), **saved)
    own = next(e for e in ensembles if e.beta == config.ema_beta and e.start == ("zero" if args.holdout else "noisy"))
    if not np.array_equal(plane_of(own.mean()), method.preview()):
        raise AssertionError("the study's EMA differs from the method's own ensemble")
    record = {"trace": trace, "seconds_at": seconds_at, "weights": method.run_facts()["weights"]}
    if iteration < args.iterations:
        record["last_iteration"] = iteration
    if args.holdout:
        record["validation"] = [list(row) for row in method.early_stopping.validation_trace]
    return record


def summarize(out: Path, at: list[int]) -> None:
    records = [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]
    if not records:
        print("(no images yet)")
        return
    print(f"{len(records)} image(s) in {out}; noisy {np.mean([r['noisy_psnr'] for r in records]):.2f} dB / "
          f"{np.mean([r['noisy_ssim'] for r in records]):.3f}")
    labels = list(dict.fromkeys(label for r in records for label in r["trace"] if not label.startswith("holdout-")))
    print(f"{'iterations':<11}" + "".join(f"{label:>24}" for label in labels) + f"{'s/image':>10}")
    for iteration in at:
        cells = []
        for label in labels:
            rows = [next((row for row in r["trace"][label] if row[0] == iteration), None)
                    for r in records if label in r["trace"]]
            count = f"({len(rows)})" if len(rows) < len(records) else ""
            cells.append(f"{count:>5}{np.mean([row[1] for row in rows]):8.2f} / {np.mean([row[2] for row in rows]):.3f}"
                         if rows and None not in rows else f"{'–':>24}")
        seconds = [r["seconds_at"].get(str(iteration)) for r in records]
        cells.append(f"{np.mean(seconds):10.0f}" if None not in seconds else f"{'–':>10}")
        print(f"{iteration:<11}" + "".join(cells))
    summarize_early_stopping(records)


PRESETS = (("mpi-fast", 0.9, 200), ("mpi", 0.99, 1000))


def early_stopping_checks(checks: list[list[float]], max_iterations: int, patience: int) -> tuple[int, int, bool]:
    """(best check, last check used, whether patience ran out) for held-out rows [iteration, error, correlation].

    The rows go through the product's own :class:`StoppingRule`, so the replay decides as a run would.
    """
    rule, stop = StoppingRule(patience), None
    for iteration, error, *rest in checks:
        if iteration > max_iterations:
            break
        stop = iteration
        # Records made before the correlation rule have none: held-out error only.
        rule.observe(iteration, error, rest[0] if rest else 0.0)
        if rule.finished:
            return rule.best_iteration, stop, True
    return rule.best_iteration, stop, False


def last_iteration(record: dict) -> int:
    """The last iteration a record ran: records made with --end-with-patience end before --iterations."""
    return record.get("last_iteration", record["settings"]["iterations"])


def replay_early_stopping(record: dict, beta: float, max_iterations: int, patience: int) -> tuple[int, int, float, float]:
    """(best check, last iteration run, PSNR, SSIM) of early stopping, replayed from a --holdout record."""
    if beta == record["settings"]["betas"][-1] and "validation" in record:
        # The run's own beta: the method's own checks must be the ones replayed.
        assert record["validation"] == record["trace"][f"holdout-{beta:g}"], "held-out traces disagree"
    best_iteration, stop, ended = early_stopping_checks(record["trace"][f"holdout-{beta:g}"], max_iterations, patience)
    if not ended and stop < max_iterations:
        raise ValueError(f"{record['name']} ended at iteration {stop}, before this patience ({patience}) or budget "
                         f"({max_iterations}) would have stopped it")
    _, psnr, ssim = next(row for row in record["trace"][f"ema-{beta:g}-unbiased"] if row[0] == best_iteration)
    return best_iteration, stop, psnr, ssim


def summarize_early_stopping(records: list[dict], patiences: tuple[int, ...] = (50, 100, 200, 300)) -> None:
    """Each preset without and with early stopping (several patiences), and the best iteration in hindsight."""
    records = [r for r in records if "validation" in r]
    if not records:
        return
    print(f"\nearly stopping replayed on {len(records)} image(s): mean PSNR / SSIM, mean best check, mean iterations run"
          " [(n) = only the n images whose run went that far]")
    for name, beta, budget in PRESETS:
        whole = [r for r in records if last_iteration(r) >= budget]
        count = f" ({len(whole)})" if len(whole) < len(records) else ""
        if whole:
            fixed = [[row for row in r["trace"][f"ema-{beta:g}"] if row[0] <= budget][-1] for r in whole]
            print(f"  {name:<9} fixed {budget} it, authors' ensemble{count}: {np.mean([f[1] for f in fixed]):.2f} / "
                  f"{np.mean([f[2] for f in fixed]):.3f}")
        for patience in patiences:
            runs = []
            for r in records:
                try:
                    runs.append(replay_early_stopping(r, beta, budget, patience))
                except ValueError:
                    continue
            count = f" ({len(runs)})" if len(runs) < len(records) else ""
            if runs:
                print(f"  {name:<9} early stopping, patience {patience:>3}{count}: {np.mean([x[2] for x in runs]):.2f} / "
                      f"{np.mean([x[3] for x in runs]):.3f}, best check {np.mean([x[0] for x in runs]):.0f}, "
                      f"run {np.mean([x[1] for x in runs]):.0f}")
        hindsight = [max((row for row in r["trace"][f"ema-{beta:g}-unbiased"] if row[0] <= budget), key=lambda row: row[1])
                     for r in records]
        # A run ended early has no later iterations to look back on: then this is the best of those it ran.
        print(f"  {name:<9} best iteration in hindsight: {np.mean([h[1] for h in hindsight]):.2f} / "
              f"{np.mean([h[2] for h in hindsight]):.3f} at {np.mean([h[0] for h in hindsight]):.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder for one JSON per image")
    parser.add_argument("--weights", default="shipped", help="shipped, none (random initialisation) or a checkpoint path")
    parser.add_argument("--pairs", default="../shared/data/fmd-test")
    parser.add_argument("--pattern", default="*_1.png")
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--crop-origin", default="centre", choices=["centre", "top-left"])
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--trace-every", type=int, default=25)
    parser.add_argument("--betas", type=float, nargs="+", default=[0.9, 0.99],
                        help="EMA weights to follow; the last is the run's own (checked against the method's result)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--holdout", type=float, default=0.0,
                        help="hold out this share of pixels from the loss (MPI early stopping) and record "
                             "the ensemble's error there every --trace-every iterations")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--end-with-patience", type=int,
                        help="with --holdout: end each image where early stopping with this patience would end the "
                             "run's own beta (never before 200 iterations); cheaper, but longer budgets and patiences "
                             "are then not recorded")
    parser.add_argument("--save-arrays", help="also save each image's unbiased ensembles at --save-at here (npz)")
    parser.add_argument("--save-at", type=int, nargs="+", default=[50, 100, 200, 300, 500, 750, 1000])
    parser.add_argument("--summary-only", action="store_true")
    parser.add_argument("--at", type=int, nargs="+", default=[25, 50, 100, 200, 300, 400, 500, 750, 1000])
    args = parser.parse_args()

    if args.end_with_patience and not args.holdout:
        parser.error("--end-with-patience needs --holdout")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not args.summary_only:
        device = resolve_device(args.device)
        settings = {key: getattr(args, key) for key in ("weights", "crop", "crop_origin", "iterations", "trace_every", "betas", "seed")}
        if args.holdout:
            settings["holdout"] = args.holdout
        for raw_path, gt_path in find_pairs(args.pairs, args.pattern):
            target = out / f"{raw_path.stem}.json"
            if target.exists():
                if json.loads(target.read_text())["settings"] != settings:
                    raise SystemExit(f"{target} was made with other settings; use another --out")
                continue
            arrays = None
            if args.save_arrays:
                arrays = Path(args.save_arrays) / f"{raw_path.stem}.npz"
                arrays.parent.mkdir(parents=True, exist_ok=True)
            noisy, clean = load_pair(raw_path, gt_path, args.crop, args.crop_origin)
            noisy_psnr, noisy_ssim = score(noisy, clean)
            record = {"settings": settings, "name": raw_path.stem, "device": str(device),
                      "threads": torch.get_num_threads(), "noisy_psnr": noisy_psnr, "noisy_ssim": noisy_ssim,
                      **study_image(noisy, clean, args, device, arrays)}
            partial = target.with_suffix(".part")
            partial.write_text(json.dumps(record) + "\n")
            partial.replace(target)
            final = {label: rows[-1][1] for label, rows in record["trace"].items()}
            print(raw_path.stem, "noisy %.2f" % noisy_psnr, " ".join(f"{k} {v:.2f}" for k, v in final.items()),
                  "at %d: %.0f s" % (last_iteration(record), record["seconds_at"][last_iteration(record)]), flush=True)
    summarize(out, args.at)


if __name__ == "__main__":
    main()
