"""MID on the FMD test set as a dataset: one model per configuration, trained once, then each plane in seconds.

Each FMD configuration (e.g. ``Confocal_FISH``) has four independent noisy frames
(``NAME_1..4``) of one field of view with one ground truth: a user's "stack of one kind".
For each configuration a MID model is fitted (``fit_dataset``, the product's defaults
unless ``--set`` changes them; with ``--clean-from-other-configurations`` the ground truths of
the other eleven configurations are its clean images beside the procedural scenes) on the
full noisy frames

- ``same``: frames 1-4, so the scored frame is among the training planes (as a zero-shot
  method sees its test image);
- ``other``: the three other frames, so the scored frame is never seen in training (unless
  the test set holds a copy of it: WideField_BPAE_B_1 and _2 are one file);

and the scored frame (1, or ``--scored-frame``) is then denoised with ``method="mid"`` (K=10,
and each K of ``--more-passes``; each pass hiding ``--mask-ratio``, by default what the model
says) and scored on the benchmark's crop (256² centre, as
``zsdenoise bench``). The table puts each beside ``bsn`` (early stopping, the method table's
study records, frame 1 only) and the ``bsn-quick`` and ``bsn-balanced`` time-to-quality
records on the same crops. ``--diagnostic`` replaces MID's noise estimate and/or clean images
with the ground truth's, to see what each costs. Resumable: a finished (configuration,
training) record is skipped and an interrupted fit continues from its finished rounds.
Models are written under ``--models`` (not committed: they are the user's kind of
artefact, a few MB each).

Usage:
    python benchmarks/mid_fmd.py run --out benchmarks/results/mid-fmd/DIR --configurations Confocal_FISH ...
        [--training same other] [--crop 256] [--threads 1] [--models /tmp/mid-models] [--set NAME=VALUE ...]
        [--scored-frame 2] [--more-passes 40] [--diagnostic true-noise|true-clean|both] [--mask-ratio 0.1]
    python benchmarks/mid_fmd.py table --out benchmarks/results/mid-fmd/DIR
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ALL_FRAMES = (1, 2, 3, 4)
TRAININGS = ("same", "other")


def training_frames(training: str, scored: int) -> tuple[int, ...]:
    """The frames a model is fitted on: all four (``same``) or all but the scored one (``other``)."""
    return ALL_FRAMES if training == "same" else tuple(frame for frame in ALL_FRAMES if frame != scored)


def _training_settings(pairs: list[str]):
    from napari_zsdenoise.methods.mid.settings import MIDTrainingSettings
    from napari_zsdenoise.settings import describe_settings

    infos = {info.name: info for info in describe_settings(MIDTrainingSettings)}
    values = {}
    for pair in pairs:
        key, _, text = pair.partition("=")
        values[key] = infos[key].parse(text)
    return MIDTrainingSettings(**values)


def configurations_in(pairs: Path) -> list[str]:
    return sorted({path.stem.rsplit("_", 1)[0] for path in (pairs / "gt").glob("*_1.png")})


def _clean_folder(pairs: Path, configuration: str, models: Path) -> Path:
    """A folder of links to the ground truths of every other configuration: clean images of the same
    microscopes that never show the configuration's own field of view."""
    folder = models / f"clean-without-{configuration}"
    folder.mkdir(parents=True, exist_ok=True)
    for other in configurations_in(pairs):
        link = folder / f"{other}.png"
        if other != configuration and not link.exists():
            link.symlink_to((pairs / "gt" / f"{other}_1.png").resolve())
    return folder


DIAGNOSTICS = ("true-noise", "true-clean", "both")


def ground_truth_diagnostic(kind: str | None, planes: list[np.ndarray], truth: np.ndarray, settings) -> dict:
    """What to give ``fit_dataset`` so that it uses what the ground truth says instead of what MID estimates:
    a diagnostic, not MID (its public ``clean_patches`` and ``residuals`` parameters).

    ``true-noise``: every bank residual is ``noisy - ground truth`` (the harvest's network is
    not used). ``true-clean``: the clean patches are the ground truth itself, in each noisy
    frame's normalised units (no procedural scenes). ``both``: the two. How far MID then
    gets shows what its noise estimate and its clean images cost.
    """
    if kind is None:
        return {}
    from napari_zsdenoise.methods.mid import training
    from napari_zsdenoise.methods.mid.model import subplanes
    from napari_zsdenoise.methods.mid.noise_bank import Harvest
    from napari_zsdenoise.normalization import IntensityScaling

    # In the units and sub-planes the fit trains on.
    scalings = [IntensityScaling.fit(plane) for plane in planes]
    _, factor = training.choose_pixel_shuffle([scaling.normalize(plane) for scaling, plane in zip(scalings, planes)],
                                              settings)
    truths = [part for scaling in scalings
              for part in subplanes(np.clip(scaling.normalize(truth), 0.0, 1.0).astype(np.float32), factor)]

    def true_residuals(predict, normalised, *, masks_per_plane, mask_ratio, rng):
        for index, plane in enumerate(normalised):
            plane = np.asarray(plane, dtype=np.float32)
            for mask in range(masks_per_plane):
                keep = rng.random(plane.shape) >= mask_ratio
                yield Harvest(index, mask, keep, truths[index], plane - truths[index])

    class TrueClean(training.CleanPatches):
        def __init__(self, settings, folders=()):
            super().__init__(settings, folders)
            self.folder_planes, self.folder_share = truths, 1.0
            self.description = {**self.description, "diagnostic": "the ground truth as the only clean image"}

        def scale_for(self, noise, rng, median=None):
            self._scaled = (self.folder_planes, [])

    hooks = {}
    if kind in ("true-noise", "both"):
        hooks["residuals"] = true_residuals
    if kind in ("true-clean", "both"):
        hooks["clean_patches"] = TrueClean(settings)
    return hooks


def run(args: argparse.Namespace) -> None:
    import torch

    from napari_zsdenoise.engine import denoise
    from napari_zsdenoise.evaluation.scoring import load_pair, score, to_unit_range
    from napari_zsdenoise.io import read_image
    from napari_zsdenoise.methods.mid.model import read_model_card
    from napari_zsdenoise.methods.mid.training import fit_dataset

    torch.set_num_threads(args.threads)
    pairs, out, models = Path(args.pairs), Path(args.out), Path(args.models)
    settings = _training_settings(args.set)
    out.mkdir(parents=True, exist_ok=True)
    study = out / "study.json"
    # Several processes may share a study, each with its own configurations.
    earlier = json.loads(study.read_text())["configurations"] if study.exists() else []
    study.write_text(json.dumps({
        "configurations": sorted(set(earlier) | set(args.configurations)), "training": args.training, "crop": args.crop,
        "threads": args.threads, "device": args.device, "scored_frame": args.scored_frame,
        "more_passes": args.more_passes, "diagnostic": args.diagnostic, "settings": settings.to_dict(),
        "mask_ratio": args.mask_ratio},
        indent=1) + "\n")
    inference = {} if args.mask_ratio is None else {"mask_ratio": args.mask_ratio}
    for configuration in args.configurations:
        for training in args.training:
            record = out / f"{configuration}-{training}.json"
            if record.exists():
                continue
            frames = [pairs / "raw" / f"{configuration}_{frame}.png"
                      for frame in training_frames(training, args.scored_frame)]
            planes = [to_unit_range(read_image(path)) for path in frames]
            model = models / f"{configuration}-{training}-{args.scored_frame}.pt"
            model.parent.mkdir(parents=True, exist_ok=True)
            clean_folder = _clean_folder(pairs, configuration, models) if args.clean_from_other_configurations \
                else None
            if not model.exists():
                truth = to_unit_range(read_image(pairs / "gt" / frames[0].name))
                fit_dataset(planes, out=model, settings=settings, device=args.device,
                            sources={path.name: 1 for path in frames},
                            clean_folders=(clean_folder,) if clean_folder else (),
                            **ground_truth_diagnostic(args.diagnostic, planes, truth, settings))
            card = read_model_card(model)
            name = f"{configuration}_{args.scored_frame}.png"
            noisy, clean = load_pair(pairs / "raw" / name, pairs / "gt" / name, args.crop, "centre")
            start = time.perf_counter()
            result = denoise(noisy, "mid", weights=str(model), device=args.device, seed=args.seed,
                             **inference)
            seconds = time.perf_counter() - start
            psnr, ssim = score(result, clean)
            noisy_psnr, noisy_ssim = score(noisy, clean)
            more = {}
            for passes in args.more_passes:
                start = time.perf_counter()
                more_result = denoise(noisy, "mid", weights=str(model), device=args.device, seed=args.seed,
                                      iterations=passes, **inference)
                more_seconds = time.perf_counter() - start
                more[str(passes)] = dict(zip(("psnr", "ssim"), score(more_result, clean)), seconds=more_seconds)
            record.write_text(json.dumps({
                "configuration": configuration, "training": training, "trained_on": [path.name for path in frames],
                "clean": (sorted(path.name for path in clean_folder.iterdir()) if clean_folder
                          else "procedural scenes only"), "diagnostic": args.diagnostic,
                "scored": name, "psnr": psnr, "ssim": ssim, "noisy_psnr": noisy_psnr, "noisy_ssim": noisy_ssim,
                "denoise_seconds": seconds, "more_passes": more, "training_seconds": card["seconds"],
                "device": card["device"],
                "round_history": card["round_history"]}, indent=1) + "\n")
            print(f"{configuration:<20} {training:<5} {psnr:6.2f} dB  denoise {seconds:5.1f} s  "
                  f"training {card['seconds']:6.0f} s", flush=True)


# Zero-shot records on the same crops, per preset: folders of time-to-quality records (frames 1 and 2).
PRESET_RECORDS = {"bsn-quick": ("full-1", "full-2"), "bsn-balanced": ("presets-1", "balanced-2")}


def _comparisons() -> dict[str, dict[str, tuple[float, float, float]]]:
    """Per crop (``NAME_1``, ``NAME_2``): (PSNR, SSIM, seconds) of ``bsn`` (ES, frame 1 only) and of the presets."""
    import sys

    sys.path.insert(0, str(HERE))
    from make_benchmarks_doc import load_records

    records = load_records()
    studies = records.studies["none"]
    # bsn's seconds are the study's clock where early stopping ended the run (fp32, before the speed-ups).
    found = {"bsn": {name: (crop.stopped.psnr, crop.stopped.ssim, crop.stopped.seconds or float("nan"))
                     for name, crop in studies.items() if crop.stopped is not None}}
    for preset, folders in PRESET_RECORDS.items():
        found[preset] = {}
        for folder in folders:
            for path in sorted((HERE / "results" / "time-to-quality" / folder / preset).glob("*.json")):
                item = json.loads(path.read_text())["score"]
                found[preset][item["name"]] = (item["psnr"], item["ssim"], item["seconds"])
    return found


def _scores_by_passes(item: dict) -> dict[int, tuple[float, float, float]]:
    """(PSNR, SSIM, seconds) of a record's MID result for each number of masked passes scored."""
    scores = {int(item.get("passes", 10)): (item["psnr"], item["ssim"], item["denoise_seconds"])}
    for passes, more in item.get("more_passes", {}).items():
        scores[int(passes)] = (more["psnr"], more["ssim"], more["seconds"])
    return scores


def table(out: Path) -> list[str]:
    records = [json.loads(path.read_text()) for path in sorted(Path(out).glob("*-*.json"))]
    if not records:
        return [f"no records in {out}"]
    comparisons = _comparisons()
    passes = sorted({k for item in records for k in _scores_by_passes(item)})
    lines = ["| crop | training | " + " | ".join(f"MID K={k} PSNR / SSIM, s" for k in passes)
             + " | MID training s | " + " | ".join(f"`{name}` PSNR / SSIM, s" for name in comparisons) + " |",
             "|---|---|" + "---|" * len(passes) + "---|" + "---|" * len(comparisons)]
    by_training: dict[str, list[dict]] = {}
    for item in records:
        crop = item["scored"].removesuffix(".png")
        mine = _scores_by_passes(item)
        cells = ["–" if k not in mine else f"{mine[k][0]:.2f} / {mine[k][1]:.3f}, {mine[k][2]:.1f}" for k in passes]
        others = []
        for scores in comparisons.values():
            found = scores.get(crop)
            others.append("–" if found is None else f"{found[0]:.2f} / {found[1]:.3f}, {found[2]:.0f}")
        lines.append(f"| {crop} | {item['training']} ({', '.join(item['trained_on'])}) | " + " | ".join(cells)
                     + f" | {item['training_seconds']:.0f} | " + " | ".join(others) + " |")
        by_training.setdefault(item["training"], []).append(item)
    lines.append("")
    for training, items in by_training.items():
        crops = [item["scored"].removesuffix(".png") for item in items]
        for k in passes:
            mine = [_scores_by_passes(item).get(k) for item in items]
            if any(score is None for score in mine):
                continue
            psnr_mid, seconds_mid = np.mean([m[0] for m in mine]), np.mean([m[2] for m in mine])
            summary = (f"{training}, K={k}: {len(items)} crop(s), MID {psnr_mid:.2f} / "
                       f"{np.mean([m[1] for m in mine]):.3f} in {seconds_mid:.1f} s a plane after "
                       f"{np.mean([i['training_seconds'] for i in items]):.0f} s of training")
            for name, scores in comparisons.items():
                found = [scores[crop] for crop in crops if crop in scores]
                if len(found) == len(crops):
                    psnr, seconds = np.mean([f[0] for f in found]), np.mean([f[2] for f in found])
                    summary += (f"; `{name}` {psnr:.2f} dB in {seconds:.0f} s "
                                f"(MID {psnr_mid - psnr:+.2f} dB, {seconds / seconds_mid:.0f}× faster a plane)")
            lines.append(f"- {summary}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    runner = commands.add_parser("run")
    runner.add_argument("--out", required=True)
    runner.add_argument("--configurations", nargs="+", required=True, help="e.g. Confocal_FISH TwoPhoton_MICE")
    runner.add_argument("--training", nargs="+", choices=TRAININGS, default=list(TRAININGS))
    runner.add_argument("--scored-frame", type=int, choices=ALL_FRAMES, default=1,
                        help="the frame scored (2: the confirmation frames, never tuned on)")
    runner.add_argument("--more-passes", type=int, nargs="*", default=[],
                        help="also score these numbers of masked passes (K), beside the default")
    runner.add_argument("--pairs", default="../shared/data/fmd-test")
    runner.add_argument("--crop", type=int, default=256)
    runner.add_argument("--threads", type=int, default=1)
    runner.add_argument("--device", default="cpu")
    runner.add_argument("--seed", type=int, default=0)
    runner.add_argument("--models", default="/tmp/napari-zsdenoise-mid-models")
    runner.add_argument("--clean-from-other-configurations", action="store_true",
                        help="add the ground truths of the other FMD configurations as clean images")
    runner.add_argument("--diagnostic", choices=DIAGNOSTICS,
                        help="fit with the ground truth's noise and/or clean image instead of MID's estimates")
    runner.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="a training setting")
    runner.add_argument("--mask-ratio", type=float, default=None,
                        help="fraction hidden in each denoising pass (default: mid's own)")
    show = commands.add_parser("table")
    show.add_argument("--out", required=True)
    args = parser.parse_args()
    if args.command == "run":
        run(args)
    else:
        print("\n".join(table(Path(args.out))))


if __name__ == "__main__":
    main()
