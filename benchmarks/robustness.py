"""Robustness beyond the FMD tuning split: cases a user of another microscope meets, and stopping rules replayed.

The cases are built in memory from data on hand, never from the `*_1`/`*_2` frames the presets were tuned and
confirmed on (frames 3 and 4 of FMD, averages of all four, the bundled synthetic samples):

- ``ladder``: the mean of k = 1, 2, 4 noisy frames of one field of view (noise falls by sqrt(k), the ground
  truth stays), so high-SNR inputs (noisy >= 35 dB) are covered;
- ``correlated``: noisy and clean planes upsampled 1.5x and 2x (a camera whose pixels oversample the optics),
  and FMD widefield;
- ``units``: 16-bit counts with a gain and an offset (x20 + 100), 8-bit frames stretched to 0..255;
- ``size``: centre crops of 128², 256² and 512² (a preset starts a 512² plane on a crop, whose rule also decides
  when to leave it, so that plane is recorded as the preset runs it, ``--as-preset``);
- ``synthetic``: the bundled simulated samples.

``record`` runs each (case, preset) once with early stopping *observing but never ending the run*
(``patience`` beyond the budget, no anti-correlation stop, no fixed budget on correlated noise), up to
``--iterations``, and keeps the
held-out checks and the PSNR/SSIM of the result each check would keep (the live preview at the check, scored
against the clean plane) with the seconds of computing so far. Stopping rules do not change the training
(same seed, same masks), so any rule is then *replayed* exactly on the record by the product's own
:class:`~napari_zsdenoise.methods._early_stopping.StoppingRule`: the kept PSNR, the iteration and the seconds
a run with that rule would have given, the best check in hindsight and the fixed-budget PSNR.
``baseline`` runs `mpi-fast` with a given checkpoint (the authors' own, their fixed 200 iterations) on every
case. ``table`` prints the comparison; ``make_robustness_doc.py`` writes docs/robustness.md from the records.

Usage:
    python benchmarks/robustness.py record --out benchmarks/results/robustness --preset bsn-balanced
        [--iterations 500] [--cases ladder correlated] [--threads 2]
    python benchmarks/robustness.py baseline --out benchmarks/results/robustness \
        --weights ../shared/reference/mpi-official-weights/imgnet_80_95_singlechannel_skip.pth
    python benchmarks/robustness.py table --out benchmarks/results/robustness
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FMD = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "fmd-test"
CHECK_EVERY = 25
SEED = 0
#: The folder of the authors' fast preset's records (`mpi-fast` with their checkpoint, 200 iterations).
BASELINE = "mpi-fast-authors"


@dataclass
class Case:
    """A noisy plane in the units a user would have, its clean plane in [0, 1], and the map back to [0, 1]."""

    name: str
    group: str
    noisy: np.ndarray
    clean: np.ndarray
    offset: float = 0.0
    gain: float = 1.0

    def to_unit(self, image: np.ndarray) -> np.ndarray:
        return (np.asarray(image, dtype=np.float64) - self.offset) / self.gain


def _frames(stem: str) -> tuple[list[np.ndarray], np.ndarray]:
    from skimage.io import imread

    frames = [imread(FMD / "raw" / f"{stem}_{k}.png").astype(np.float64) / 255 for k in (1, 2, 3, 4)]
    return frames, imread(FMD / "gt" / f"{stem}_1.png").astype(np.float64) / 255


def _centre(image: np.ndarray, size: int) -> np.ndarray:
    top, left = (image.shape[0] - size) // 2, (image.shape[1] - size) // 2
    return image[top:top + size, left:left + size]


def _as_uint8(unit: np.ndarray) -> np.ndarray:
    return np.clip(np.round(unit * 255), 0, 255).astype(np.uint8)


def build_cases(crop: int = 128) -> list[Case]:
    """Every case of the suite (see the module's docstring); empty when the FMD data is absent."""
    from skimage.transform import rescale

    if not (FMD / "raw").is_dir():
        return []
    cases = []
    for stem in ("Confocal_MICE", "TwoPhoton_MICE", "Confocal_BPAE_B", "Confocal_BPAE_G"):
        frames, clean = _frames(stem)
        for k, chosen in ((1, [2]), (2, [2, 3]), (4, [0, 1, 2, 3])):
            # An average of 8-bit frames is no longer 8-bit: kept as float32, as a user's averaged stack would be.
            mean = np.mean([frames[i] for i in chosen], axis=0)
            noisy, gain = (_as_uint8(mean), 255.0) if k == 1 else (mean.astype(np.float32), 1.0)
            cases.append(Case(f"{stem}-mean{k}", "ladder", _centre(noisy, crop), _centre(clean, crop), gain=gain))
    for stem in ("Confocal_FISH", "TwoPhoton_BPAE_G"):
        frames, clean = _frames(stem)
        for factor in (1.5, 2.0):
            noisy = rescale(frames[2], factor, order=1)
            cases.append(Case(f"{stem}-up{factor:g}", "correlated", _centre(_as_uint8(noisy), crop),
                              _centre(rescale(clean, factor, order=1), crop), gain=255.0))
    for stem in ("WideField_BPAE_G", "WideField_BPAE_R"):
        frames, clean = _frames(stem)
        cases.append(Case(f"{stem}-3", "correlated", _centre(_as_uint8(frames[2]), crop), _centre(clean, crop),
                          gain=255.0))
    frames, clean = _frames("TwoPhoton_MICE")
    counts = np.round(_centre(frames[3], crop) * 255 * 20 + 100).astype(np.uint16)
    cases.append(Case("TwoPhoton_MICE-4-gain20-offset100", "units", counts, _centre(clean, crop),
                      offset=100.0, gain=255 * 20.0))
    frames, clean = _frames("Confocal_BPAE_R")
    plane = _centre(frames[3], crop)
    low, high = float(plane.min()), float(plane.max())
    stretched = _as_uint8((plane - low) / (high - low))
    cases.append(Case("Confocal_BPAE_R-4-stretched", "units", stretched, _centre(clean, crop),
                      offset=-low / (high - low) * 255, gain=255 / (high - low)))
    # A dim 8-bit camera: few grey levels (0..~40), and a background clipped at zero by a camera without offset.
    frames, clean = _frames("TwoPhoton_BPAE_B")
    dim = np.round(_centre(frames[3], crop) * 40).astype(np.uint8)
    cases.append(Case("TwoPhoton_BPAE_B-4-dim-8bit", "units", dim, _centre(clean, crop), gain=40.0))
    frames, clean = _frames("Confocal_BPAE_G")
    plane = _centre(frames[3], crop)
    floor = float(np.quantile(plane, 0.3))
    clipped = np.clip(np.round((plane - floor) * 255), 0, 255).astype(np.uint8)
    cases.append(Case("Confocal_BPAE_G-4-clipped", "units", clipped, _centre(clean, crop), offset=-floor * 255,
                      gain=255.0))
    frames, clean = _frames("Confocal_FISH")
    for size in (128, 256, 512):
        cases.append(Case(f"Confocal_FISH-4-{size}", "size", _centre(_as_uint8(frames[3]), size),
                          _centre(clean, size), gain=255.0))
    cases.extend(_synthetic_cases(crop))
    return cases


def fmd_split_cases(frame: int, crop: int = 256) -> list[Case]:
    """The twelve FMD configurations' frame ``frame`` (1: the tuning split, 2: the confirmation split), centre
    crops: the preset figures the robustness work must keep."""
    from skimage.io import imread

    cases = []
    for path in sorted((FMD / "raw").glob(f"*_{frame}.png")):
        clean = imread(FMD / "gt" / f"{path.stem[:-2]}_1.png").astype(np.float64) / 255
        cases.append(Case(path.stem, f"fmd-{frame}", _centre(imread(path), crop), _centre(clean, crop), gain=255.0))
    return cases


def _synthetic_cases(crop: int) -> list[Case]:
    from napari_zsdenoise.sample_data import cells_2d, cells_zstack

    cases = []
    for name, layers, pick in (("cells2d", cells_2d(), lambda a: a), ("cells3d-plane6", cells_zstack(), lambda a: a[6])):
        clean, noisy = (pick(np.asarray(layer[0], dtype=np.float64)) for layer in layers)
        low, high = float(clean.min()), float(clean.max())
        cases.append(Case(name, "synthetic", _centre(pick(layers[1][0]), crop), _centre((clean - low) / (high - low), crop),
                          offset=low, gain=high - low))
    return cases


def _settings_for_recording(preset: str) -> dict:
    """The preset's settings with its checks kept but never ending the run, and no fixed correlated budget."""
    from napari_zsdenoise.methods import get_method_spec

    config = get_method_spec(preset).default_config
    if not getattr(config, "early_stopping", False):
        return {}
    return {"patience": 10**9, "correlated_noise_iterations": 0, "max_residual_anticorrelation": 0,
            "validation_every": CHECK_EVERY}


def record_case(case: Case, preset: str, iterations: int | None, *, weights: str | None = None,
                as_preset: bool = False, overrides: dict | None = None) -> dict:
    """One run of ``preset`` on ``case``, observed at every check (see the module's docstring); with
    ``as_preset`` a run as the preset (and ``overrides``) would end it, still scored at every check."""
    from napari_zsdenoise.engine import DenoiseRun
    from napari_zsdenoise.evaluation import score
    from napari_zsdenoise.methods._early_stopping import looks_spatially_correlated

    settings = {} if as_preset else _settings_for_recording(preset)
    settings.update(overrides or {})
    if iterations is not None:
        settings["iterations"] = iterations
    if weights is not None:
        settings["weights"] = weights
    run = DenoiseRun(case.noisy, preset, device="cpu", seed=SEED, preview_every=CHECK_EVERY, preview_interval=0,
                     **settings)
    trace, scoring, start = [], 0.0, time.perf_counter()
    for event in run:
        if event.preview is not None:
            began = time.perf_counter()
            trace.append([event.iteration, *score(case.to_unit(event.preview), case.clean), began - start - scoring])
            scoring += time.perf_counter() - began
    seconds = time.perf_counter() - start - scoring
    stopping = getattr(run.method, "early_stopping", None)
    plane = run.metadata.get("planes", [{}])[0] if isinstance(run.metadata.get("planes"), list) else {}
    return {
        "case": case.name, "group": case.group, "preset": preset, "iterations": iterations, "seconds": seconds,
        "result": list(score(case.to_unit(run.result), case.clean)),
        "noisy": list(score(case.to_unit(case.noisy), case.clean)),
        "trace": trace,
        "checks": [list(row) for row in stopping.validation_trace] if stopping is not None else [],
        "correlated_up_front": None if looks_spatially_correlated(case.noisy.astype(np.float64)) else False,
        "plane": {key: value for key, value in plane.items() if isinstance(value, (int, float, str, bool, type(None)))},
        "weights": weights, "shape": list(case.noisy.shape), "dtype": str(case.noisy.dtype),
        "as_preset": as_preset, "overrides": overrides or {},
    }


def replay(record: dict, rule_settings: dict) -> dict:
    """What a run of the record's preset with ``rule_settings`` (its stopping settings) would have kept."""
    from napari_zsdenoise.methods import get_method_spec
    from napari_zsdenoise.methods._early_stopping import make_stopping_rule

    config = get_method_spec(record["preset"]).make_config(**rule_settings)
    by_iteration = {row[0]: row for row in record["trace"]}
    last = record["trace"][-1][0]
    if not config.early_stopping or not record["checks"]:
        budget = min(config.iterations, last)
        row = by_iteration[budget]
        return {"psnr": row[1], "ssim": row[2], "iteration": budget, "seconds": row[3], "best": None}
    rule = make_stopping_rule(config, correlated_noise=record["correlated_up_front"])
    if "start_crop_iterations" in record["plane"]:
        raise ValueError(f"{record['case']}: a start-crop run cannot be replayed from its whole-plane checks")
    stop = last
    for iteration, error, correlation in record["checks"]:
        if iteration > config.iterations:
            break
        rule.observe(iteration, error, correlation)
        stop = iteration
        if rule.finished:
            break
    row = by_iteration[rule.best_iteration]
    # A rule still going when the record ends (at its --iterations, below the preset's maximum) is cut there:
    # ``cut`` says so, and its figures are those of a run with that maximum.
    return {"psnr": row[1], "ssim": row[2], "iteration": stop, "seconds": by_iteration[stop][3],
            "best": rule.best_iteration, "rule": rule.summary(),
            "cut": not rule.finished and stop < config.iterations}


def _as_run(record: dict) -> dict:
    """A record made as the preset, in the form of :func:`replay`'s answer."""
    plane = record["plane"]
    return {"psnr": record["result"][0], "ssim": record["result"][1], "iteration": plane.get("iterations_done"),
            "seconds": record["seconds"], "best": plane.get("best_iteration"),
            "rule": {key: plane.get(key) for key in ("stop_reason", "best_iteration", "held_out_gain")}, "cut": False}


def hindsight(record: dict, up_to: int | None = None) -> tuple[float, int]:
    """The best PSNR of the record's trace (up to an iteration) and where it was."""
    rows = [row for row in record["trace"] if up_to is None or row[0] <= up_to]
    best = max(rows, key=lambda row: row[1])
    return best[1], best[0]


def _record_path(out: Path, preset: str, case: str, tag: str = "") -> Path:
    return out / (preset + tag) / f"{case}.json"


def cmd_record(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    from napari_zsdenoise.methods import get_method_spec

    infos = {info.name: info for info in get_method_spec(args.preset).settings()}
    overrides = {key: infos[key].parse(value) for key, _, value in (item.partition("=") for item in args.set)}
    cases = fmd_split_cases(args.fmd_split) if args.fmd_split else build_cases(args.crop)
    for case in cases:
        if args.cases and case.group not in args.cases and case.name not in args.cases:
            continue
        path = _record_path(out, args.preset, case.name, args.tag)
        if path.is_file():
            continue
        record = record_case(case, args.preset, None if args.as_preset else args.iterations, weights=args.weights,
                             as_preset=args.as_preset, overrides=overrides)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record) + "\n")
        best, at = hindsight(record)
        print(f"{args.preset + args.tag:<22} {case.name:<36} noisy {record['noisy'][0]:6.2f}  best {best:6.2f} at {at:4d}"
              f"  kept {record['result'][0]:6.2f}  {record['seconds']:6.1f} s", flush=True)


def load_records(out: Path, folder: str) -> dict[str, dict]:
    return {path.stem: json.loads(path.read_text()) for path in sorted((out / folder).glob("*.json"))}


#: The rules compared in the table: (label, preset folder, stopping settings replayed on its records).
RULES = (
    ("bsn-balanced, old rule", "bsn-balanced",
     {"patience": 25, "rising_checks": 0, "plateau_patience": 0, "max_residual_anticorrelation": 0}),
    ("bsn-balanced, rising checks only", "bsn-balanced", {"max_residual_anticorrelation": 0}),
    ("bsn-balanced", "bsn-balanced", {}),
    ("bsn-fast", "bsn-fast", {}),
)


def table_rows(out: Path) -> tuple[list[str], list[dict]]:
    """Per case (from the records alone): noisy PSNR, each rule's replay (kept PSNR, iteration, seconds), the
    hindsight best and the fixed-300 PSNR of each preset's record, and the baseline's kept PSNR."""
    records = {folder: load_records(out, folder) for folder in {rule[1] for rule in RULES}}
    baseline = load_records(out, BASELINE)
    labels = [label for label, folder, _ in RULES if records[folder]]
    names = dict.fromkeys(name for folder in records.values() for name in folder)
    rows = []
    for name in names:
        first = next(folder[name] for folder in records.values() if name in folder)
        row = {"case": name, "group": first["group"], "noisy": first["noisy"][0]}
        for label, folder, settings in RULES:
            record = records[folder].get(name)
            if record is None:
                continue
            if record.get("as_preset"):
                # A plane the preset starts on a crop (512²): its rule also decided when to leave the crop, so
                # it is run as the preset and stands for the preset's own rule only.
                row[label] = _as_run(record) if not settings else None  # "–": not measured
            else:
                row[label] = replay(record, settings)
            row[f"{folder} hindsight"] = hindsight(record)
            # A run as the preset started on a crop: its early trace is the crop's, not a fixed budget's.
            row[f"{folder} fixed 300"] = None if record.get("as_preset") else next(
                (r[1] for r in record["trace"] if r[0] == 300), None)
        if name in baseline:
            row[BASELINE], row[f"{BASELINE} ssim"] = baseline[name]["result"][:2]
            row[f"{BASELINE} seconds"] = baseline[name]["seconds"]
        rows.append(row)
    return labels, rows


#: The rule of the recommended preset before this suite, and the one its FMD split records were run with:
#: both replayed on those records (each ends at or before the rule the records were run with).
OLD_RULE = {"rising_checks": 0, "plateau_patience": 0, "max_residual_anticorrelation": 0}
AS_RUN = {"max_residual_anticorrelation": 0}


def fmd_rows(out: Path, frame: int) -> list[dict]:
    """Per FMD crop of split ``frame``: the earlier rule, the rule the run was made with (checked against the
    run's own result) and the preset's rule, all replayed on the same run (the run holds all they need)."""
    rows = []
    for name, record in load_records(out, f"bsn-balanced-fmd-{frame}").items():
        old = replay(record, {**record["overrides"], **OLD_RULE})
        as_run = replay(record, {**record["overrides"], **AS_RUN})
        if abs(as_run["psnr"] - record["result"][0]) > 1e-6:
            raise AssertionError(f"{name}: the replay of the run's own rule ({as_run['psnr']:.4f} dB) differs from "
                                 f"its result ({record['result'][0]:.4f} dB)")
        new = replay(record, {})
        if new["iteration"] > as_run["iteration"]:
            raise AssertionError(f"{name}: the preset's rule ends after the run did, so it cannot be replayed on it")
        rows.append({"case": name, "noisy": record["noisy"][0], "old": old,
                     "as run": {**as_run, "seconds": record["seconds"]}, "new": new})
    return rows


def recorded_fmd_rows(out: Path, preset: str, frame: int) -> list[dict]:
    """Per FMD crop of split ``frame``: ``preset``'s own rule replayed on its record (made without a stop)."""
    return [{"case": name, "noisy": record["noisy"][0], "kept": replay(record, {}), "hindsight": hindsight(record)}
            for name, record in load_records(out, f"{preset}-fmd-{frame}").items()]


def cmd_table(args: argparse.Namespace) -> None:
    for frame in (1, 2):
        rows = fmd_rows(Path(args.out), frame)
        for row in rows:
            print(f"{row['case']:<24}" + "".join(
                f"   {key} {row[key]['psnr']:6.2f} @{row[key]['iteration']:4d} {row[key]['seconds']:6.1f} s"
                for key in ("old", "as run", "new")))
        if rows:
            print(f"FMD *_{frame} ({len(rows)} crops):" + ",".join(
                f" {key} {np.mean([r[key]['psnr'] for r in rows]):.2f} dB {np.mean([r[key]['seconds'] for r in rows]):.1f} s"
                for key in ("old", "as run", "new")))
    labels, rows = table_rows(Path(args.out))
    print(f"{'case':<36}{'noisy':>7}" + "".join(f"{label:>26}" for label in labels) + f"{'authors':>9}")
    for row in rows:
        cells = []
        for label in labels:
            kept = row.get(label)
            cells.append(f"{kept['psnr']:8.2f} @{kept['iteration']:4d} {kept['seconds']:5.1f}s" if kept else " " * 26)
        authors = row.get(BASELINE)
        print(f"{row['case']:<36}{row.get('noisy', float('nan')):7.2f}" + "".join(f"{c:>26}" for c in cells)
              + (f"{authors:9.2f}" if authors is not None else ""))


def cmd_baseline(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    for case in build_cases(args.crop):
        path = _record_path(out, BASELINE, case.name)
        if path.is_file() or (args.cases and case.group not in args.cases and case.name not in args.cases):
            continue
        record = record_case(case, "mpi-fast", 200, weights=args.weights)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record) + "\n")
        print(f"mpi-fast (authors)     {case.name:<36} noisy {record['noisy'][0]:6.2f}  kept {record['result'][0]:6.2f}"
              f"  {record['seconds']:6.1f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("record", "baseline", "table"):
        command = commands.add_parser(name)
        command.add_argument("--out", default="benchmarks/results/robustness")
        command.add_argument("--cases", nargs="*", default=[])
        command.add_argument("--crop", type=int, default=128)
        command.add_argument("--threads", type=int, default=2)
    commands.choices["record"].add_argument("--preset", default="bsn-balanced")
    commands.choices["record"].add_argument("--iterations", type=int, default=500)
    commands.choices["record"].add_argument("--weights", default=None)
    commands.choices["record"].add_argument("--tag", default="")
    commands.choices["record"].add_argument("--as-preset", action="store_true",
                                            help="end the runs as the preset does (no recording settings)")
    commands.choices["record"].add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE")
    commands.choices["record"].add_argument("--fmd-split", type=int, default=0,
                                            help="the FMD frames 1 or 2 (256² centre crops) instead of the suite")
    commands.choices["baseline"].add_argument("--weights", required=True)
    args = parser.parse_args()
    {"record": cmd_record, "baseline": cmd_baseline, "table": cmd_table}[args.command](args)


if __name__ == "__main__":
    main()
