"""The blend with the noisy image, its weights estimated over the whole plane or tile by tile.

The blended presets end a run by mixing the ensemble with the noisy plane (``blend_noisy``); training and
the held-out checks never see that blend (they judge the ensemble's mean), so a run with
``blend_noisy=false`` ends on exactly the ensemble that the preset would blend. This study saves those
ensembles once (``ensembles``: single FMD 512² images, or 2×2 mosaics of them as in ``mosaics.py``) and
then scores every blend rule on them in seconds (``run``), with the product's own blend functions, so
that a rule is judged on the planes where it matters (a mosaic mixes four noise levels and noise models)
and on the planes where it must not cost anything (single images, tuning frames ``*_1``, confirmation
frames ``*_2``).

Rules: ``none`` (the ensemble), ``plane`` (the weights of the whole plane: what the presets did up to
now; it must reproduce the blended records), ``tiles-N`` (weights per tile of about N pixels a side,
interpolated between tile centres).

Usage:
    python benchmarks/blend_study.py ensembles --store /tmp/ensembles --method bsn-fast --names Confocal_FISH_1 ...
        [--side 2] [--threads 2]
    python benchmarks/blend_study.py run --out benchmarks/results/blend --store /tmp/ensembles --method bsn-fast
        [--rules none plane tiles-256 ...]
    python benchmarks/blend_study.py table --out benchmarks/results/blend
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _study_cli import dispatch, study_parser  # noqa: E402
from mosaics import PAIRS, PART, build_mosaic  # noqa: E402

DEFAULT_RULES = ("none", "plane", "tiles-192", "tiles-256", "tiles-384")


def case_key(names: list[str]) -> str:
    return names[0] if len(names) == 1 else "mosaic-" + "+".join(names)


def cases(names: list[str], side: int) -> list[list[str]]:
    """One case per image, or one per ``side`` × ``side`` names."""
    if side == 1:
        return [[name] for name in names]
    return [names[start: start + side * side] for start in range(0, len(names) - side * side + 1, side * side)]


def save_ensembles(args) -> None:
    import torch

    from napari_zsdenoise import DenoiseRun

    torch.set_num_threads(args.threads)
    folder = Path(args.store) / args.method
    folder.mkdir(parents=True, exist_ok=True)
    for names in cases(list(args.names), args.side):
        key = case_key(names)
        if (folder / f"{key}.npy").exists():
            print(f"{key}: saved before", flush=True)
            continue
        noisy, _ = build_mosaic(Path(args.pairs), names, args.side)
        started = time.perf_counter()
        run = DenoiseRun(noisy, args.method, device="cpu", seed=args.seed, threads=args.threads, preview_every=0,
                         preview_interval=0, blend_noisy=False)
        for _ in run:
            pass
        seconds = time.perf_counter() - started
        plane = run.metadata["planes"][0]
        np.save(folder / f"{key}.npy", np.asarray(run.result, dtype=np.float32))
        (folder / f"{key}.json").write_text(json.dumps({
            "names": names, "side": args.side, "method": args.method, "seed": args.seed, "seconds": seconds,
            "plane": {k: v for k, v in plane.items() if not isinstance(v, (list, dict))}}, indent=1) + "\n")
        print(f"{key}: {seconds:.0f} s", flush=True)


def blended(noisy: np.ndarray, ensemble: np.ndarray, rule: str) -> tuple[np.ndarray, float]:
    """``ensemble`` blended with ``noisy`` by ``rule``, and the mean weight, as a run's last step does it."""
    import torch

    from napari_zsdenoise.methods._early_stopping import looks_spatially_correlated, pixel_independent_blocks
    from napari_zsdenoise.methods._ensemble import MaskedEnsemble, noise_response

    if rule == "none":
        return ensemble, 0.0
    noisy_tensor = torch.from_numpy(noisy.astype(np.float32))[None, None]
    blender = MaskedEnsemble(noisy_tensor, beta=0.0, start="zero")
    tile = 0 if rule == "plane" else int(rule.split("-")[1])
    independent = pixel_independent_blocks(noisy) if tile else not looks_spatially_correlated(noisy)
    result, weight = blender.blended(noise_response(noisy_tensor), torch.from_numpy(ensemble.astype(np.float32))[None, None],
                                     pixel_independent=independent, tile=tile)
    return result[0, 0].numpy(), weight


def score_rules(args) -> None:
    from napari_zsdenoise.evaluation.scoring import score

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    folder = Path(args.store) / args.method
    rows = []
    for path in sorted(folder.glob("*.json")):
        saved = json.loads(path.read_text())
        names, side = saved["names"], saved["side"]
        noisy, clean = build_mosaic(Path(args.pairs), names, side)
        ensemble = np.load(path.with_suffix(".npy"))
        for rule in args.rules:
            started = time.perf_counter()
            result, weight = blended(noisy, ensemble, rule)
            seconds = time.perf_counter() - started
            for index, name in enumerate(names):
                rows_, columns = (slice(index // side * PART, (index // side + 1) * PART),
                                  slice(index % side * PART, (index % side + 1) * PART))
                psnr, ssim = score(result[rows_, columns], clean[rows_, columns])
                rows.append({"case": case_key(names), "side": side, "name": name, "rule": rule, "psnr": psnr,
                             "ssim": ssim, "mean_weight": weight, "blend_seconds": seconds})
        print(f"{case_key(names)} scored", flush=True)
    record = out / f"{args.method}.json"
    record.write_text(json.dumps({"method": args.method, "seed": args.seed, "rows": rows}, indent=1) + "\n")
    print(f"wrote {record}")


def rule_label(rule: str) -> str:
    if rule.startswith("tiles-"):
        return f"tiles of {rule.split('-')[1]}"
    return {"none": "no blend", "plane": "whole plane (before)"}[rule]


def table(out: Path) -> list[str]:
    """Per preset: mean PSNR of each group of 512² images (alone: every image and the mosaics' parts; in the
    mosaics) under each rule."""
    lines = []
    for path in sorted(out.glob("*.json")):
        rows = json.loads(path.read_text())["rows"]
        rules = list(dict.fromkeys(row["rule"] for row in rows))
        psnr = {(row["side"], row["name"], row["rule"]): row["psnr"] for row in rows}
        weight = {(row["side"], row["name"], row["rule"]): row["mean_weight"] for row in rows}
        lines += [f"`{path.stem}`, mean PSNR (dB) of 512² images by blend rule (mean blend weight of the planes):", "",
                  "| images | count | " + " | ".join(rule_label(rule) for rule in rules) + " |",
                  "|---|---|" + "---|" * len(rules)]
        for frame in sorted({row["name"].rsplit("_", 1)[1] for row in rows}):
            alone = sorted({name for side, name, _ in psnr if side == 1 and name.endswith("_" + frame)})
            parts = sorted({name for side, name, _ in psnr if side > 1 and name.endswith("_" + frame)})
            groups = [(f"`*_{frame}` alone", 1, alone), (f"the mosaics' `*_{frame}` parts, alone", 1,
                                                         [name for name in parts if name in alone]),
                      (f"the same parts in 1024² mosaics", 2, parts)]
            for label, side, names in groups:
                if not names:
                    continue
                cells = [f"{np.mean([psnr[side, name, rule] for name in names]):.2f} "
                         f"({np.mean([weight[side, name, rule] for name in names]):.2f})" for rule in rules]
                lines.append(f"| {label} | {len(names)} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def main() -> None:
    parser, commands, runner = study_parser(__doc__)
    saver = commands.add_parser("ensembles")
    for command in (runner, saver):
        command.add_argument("--store", required=True, help="folder of the saved ensembles (not committed)")
        command.add_argument("--method", default="bsn-fast")
        command.add_argument("--seed", type=int, default=0)
        command.add_argument("--pairs", default=str(PAIRS))
    saver.add_argument("--names", nargs="+", required=True)
    saver.add_argument("--side", type=int, default=1, help="1: each image alone; 2: 2×2 mosaics of the names in order")
    saver.add_argument("--threads", type=int, default=2)
    runner.add_argument("--rules", nargs="+", default=list(DEFAULT_RULES))
    args = parser.parse_args()
    if args.command == "ensembles":
        save_ensembles(args)
        return
    dispatch(args, score_rules, table)


if __name__ == "__main__":
    main()
