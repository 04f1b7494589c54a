"""The command line's training commands: ``pretrain`` (MPI-style masked pre-training) and ``fit-dataset``
(MID on the user's own planes)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from napari_zsdenoise.cli_progress import say
from napari_zsdenoise.run_record import duration_text


def rerun_arguments(argv: Sequence[str]) -> list[str]:
    """``argv`` without the options that only steer one session, so the card shows how to rerun."""
    kept: list[str] = []
    skip_value = False
    for argument in argv:
        if skip_value:
            skip_value = False
        elif argument == "--resume" or argument.startswith("--time-limit="):
            pass
        elif argument == "--time-limit":
            skip_value = True
        else:
            kept.append(argument)
    return kept


def cmd_pretrain(args: argparse.Namespace) -> int:
    from napari_zsdenoise.pretraining.loop import PretrainConfig, Pretrainer
    from napari_zsdenoise.weights import parse_weights_choice

    config = PretrainConfig(
        mask_recipe=args.mask_recipe,
        iterations=args.iterations,
        batch_size=args.batch_size,
        crop=args.crop,
        folders=tuple(args.folder),
        procedural_images=args.procedural_images,
        procedural_fraction=args.procedural_fraction,
        seed=args.seed,
        checkpoint_every=args.checkpoint_every,
        learning_rate=args.learning_rate,
        init_weights=parse_weights_choice(args.init),
    )
    command = ["zsdenoise", *rerun_arguments(sys.argv[1:] if args.argv is None else args.argv)]
    trainer = Pretrainer(config, args.out, name=args.name, device=args.device, resume=args.resume, command=command, note=args.note)
    if trainer.iteration:
        print(f"resuming at iteration {trainer.iteration} of {config.iterations}", file=sys.stderr)
    corpus = trainer.corpus.description
    print(
        f"corpus: {corpus['folder_planes']} planes from {corpus['folder_files']} files, {corpus['procedural_images']} procedural images "
        f"(fraction {corpus['procedural_fraction']:.2f}); training on {trainer.device}",
        file=sys.stderr,
    )
    for event in trainer.run(report_every=args.report_every, time_limit=args.time_limit):
        rate = event.elapsed / max(event.iteration, 1)
        print(
            f"it {event.iteration}/{event.total} loss {event.loss:.5f} lr {event.learning_rate:.2e} "
            f"{event.elapsed:.0f} s ({rate:.2f} s/it){' [checkpoint]' if event.checkpointed else ''}",
            file=sys.stderr,
            flush=True,
        )
    if trainer.finished:
        print(f"wrote {Path(args.out) / (trainer.name + '.pt')} and its model card", file=sys.stderr)
    else:
        print(f"stopped at iteration {trainer.iteration}; continue with the same command plus --resume", file=sys.stderr)
    return 0


def training_planes(source: Path) -> tuple[list[Any], dict[str, int]]:
    """Every plane of the image file ``source``, or of every readable file in the folder ``source``."""
    from napari_zsdenoise.io import READABLE_SUFFIXES, read_image
    from napari_zsdenoise.methods.mid.training import planes_for_training

    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.is_file() and p.suffix.lower() in READABLE_SUFFIXES)
        if not files:
            raise FileNotFoundError(f"no images ({', '.join(READABLE_SUFFIXES)}) in {source}")
    elif source.is_file():
        files = [source]
    else:
        raise FileNotFoundError(f"no such file or folder: {source}")
    planes: list[Any] = []
    counts: dict[str, int] = {}
    for path in files:
        try:
            found = planes_for_training(read_image(path))
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
        planes.extend(found)
        counts[path.name] = len(found)
    return planes, counts


def check_model_output(source: Path, out: Path, *, overwrite: bool) -> None:
    """Before any training: the model file may be written, and writing it touches no input.

    Raises
    ------
    ValueError, FileExistsError, IsADirectoryError, OSError
        Naming the path and the problem.
    """
    from napari_zsdenoise.batch import check_inputs_untouched, check_writable_folder
    from napari_zsdenoise.io import READABLE_SUFFIXES
    from napari_zsdenoise.methods.mid.training import partial_folder
    from napari_zsdenoise.outputs import describe_lock_holder, lock_holder

    inputs = sorted(p for p in source.iterdir() if p.is_file()) if source.is_dir() else [source]
    check_inputs_untouched([out, partial_folder(out)], inputs, source if source.is_dir() else None)
    if out.suffix.lower() in READABLE_SUFFIXES:
        raise ValueError(f"{out.name} names an image; name the model file .pt")
    if out.is_dir():
        raise IsADirectoryError(f"{out} is a folder; name the model file, e.g. {out / 'model.pt'}")
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass --overwrite to replace it")
    holder = lock_holder(out)
    if holder is not None:
        raise FileExistsError(f"{out} is being written by {describe_lock_holder(holder)}; wait for that fit to end, "
                              f"or stop it")
    check_writable_folder(out.parent)


def cmd_fit_dataset(args: argparse.Namespace) -> int:
    from napari_zsdenoise.methods.mid.settings import MIDTrainingSettings
    from napari_zsdenoise.methods.mid.training import fit_dataset, partial_folder

    settings = MIDTrainingSettings(**{key.removeprefix("training_"): value for key, value in vars(args).items()
                                      if key.startswith("training_")})
    out = Path(args.output)
    check_model_output(Path(args.input), out, overwrite=args.overwrite)
    planes, counts = training_planes(Path(args.input))
    say(args, f"training MID on {len(planes)} plane(s) from {len(counts)} file(s): {settings.rounds} round(s) of "
               f"{settings.iterations_per_round} iterations")
    every = max(1, settings.iterations_per_round // 10)

    def report(event: Any) -> None:
        if args.quiet:
            return
        if event.stage == "train":
            if event.iteration % every and event.iteration != event.iterations:
                return
            text = (f"round {event.round}/{event.rounds} it {event.iteration}/{event.iterations} "
                    f"loss {event.loss:.5f} {duration_text(event.elapsed)}")
        else:
            text = event.message
        print(text, file=sys.stderr, flush=True)

    from napari_zsdenoise.outputs import OutputLock

    try:
        with OutputLock(out) as lock:
            if lock.stale_holder is not None:
                say(args, f"note: {out} was locked by a process that no longer runs (killed?); its lock is taken over")
            fit_dataset(planes, out=out, clean_folders=tuple(args.clean), settings=settings, resume=args.resume,
                        progress=report, device=args.device, sources=counts, overwrite=args.overwrite)
    except KeyboardInterrupt:
        print(f"\ninterrupted: finished rounds are kept in {partial_folder(out)}; run the same command again to "
              f"continue", file=sys.stderr)
        return 130
    from napari_zsdenoise.methods.mid.model import read_model_card

    card = read_model_card(out)
    noise = card["round_history"][-1]["noise"]
    say(args, f"wrote {out}: {len(planes)} plane(s), {settings.rounds} round(s), last round's noise "
               f"{noise['kind']} (variance {noise['a']:.3g}*s + {noise['b']:.3g}), {duration_text(card['seconds'])} on "
               f"{card['device']}\ndenoise with: zsdenoise denoise IMAGE -o RESULT.tif --method mid --weights {out}")
    return 0
