"""Command-line interface: ``zsdenoise denoise | bench | speed | pretrain | fit-dataset | methods``."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from napari_zsdenoise.cli_options import (
    THREADS_HELP,
    add_method_options,
    argument_parser_for,
    camera_offset_option,
    method_overrides,
    option_settings,
    threads_option,
    worker_count_option,
)
from napari_zsdenoise.cli_progress import StderrProgress, say
from napari_zsdenoise.cli_training import cmd_fit_dataset, cmd_pretrain
from napari_zsdenoise.normalization import NORMALIZATIONS
from napari_zsdenoise.run_record import duration_text


def _file_summary(source: Path, written_to: Path, metadata: dict[str, Any], *, on_dask: bool = False) -> str:
    """One line on what became of a file: method, planes, iterations (and those kept), why early stopping
    ended them, time and device."""
    from napari_zsdenoise.run_controller import result_phrases

    total = metadata["planes_total"]
    parts = [metadata["method"], f"{total} plane" + ("s" if total != 1 else ""), *result_phrases(metadata)]
    where = f"{metadata['device']} (a Dask worker)" if on_dask else metadata["device"]
    parts.append(f"{duration_text(metadata['seconds'])} on {where}, {metadata['precision']}")
    return f"denoised {source.name} -> {written_to}: {', '.join(parts)}"


def _cmd_denoise(args: argparse.Namespace) -> int:
    from napari_zsdenoise.batch import FileRequest, check_outputs, output_state, plan_jobs, resume_key
    from napari_zsdenoise.methods import get_method_spec
    from napari_zsdenoise.methods.registry import config_parameters

    # Everything that can be checked is checked before the first iteration.
    overrides = method_overrides(args)
    spec = get_method_spec(args.method)
    parameters = json.loads(json.dumps(config_parameters(spec.make_config(**overrides))))
    jobs = plan_jobs(args.input, args.output)
    method = spec.name
    keys = {job: resume_key(job.source, method, parameters, args.seed, args.normalization, args.camera_offset,
                            args.precision, args.plane) for job in jobs}
    states = {job: output_state(job, keys[job]) for job in jobs}
    done = [job for job in jobs if states[job] == "done"]
    todo = [job for job in jobs if states[job] != "done"]
    partial = frozenset(job.destination for job in todo if states[job] == "partial")
    foreign = frozenset(job.destination for job in todo if states[job] == "foreign")
    check_outputs(todo, overwrite=args.overwrite, replaceable=partial, foreign=foreign)
    for destination in sorted(foreign):
        say(args, f"discarding the finished planes of another run in {destination}.partial (--overwrite)")
    # Said even with -q: a skipped file is a decision the user should see.
    for job in done:
        print(f"skipped {job.source}: {job.destination} is already denoised with these settings (same input content)",
              file=sys.stderr)
    request = FileRequest(method, overrides, device=args.device, precision=args.precision, threads=args.threads,
                          normalization=args.normalization, camera_offset=args.camera_offset, seed=args.seed,
                          plane=args.plane)
    failed: list[tuple[Path, str]] = []
    finished = 0
    if args.dask:
        finished, failed = _denoise_on_dask(todo, request, keys, states, args)
        todo = []
    for job in todo:
        try:
            written = _denoise_one(job, args, request, keys[job], continuing=states[job] == "partial")
        except KeyboardInterrupt:
            if len(jobs) > 1:
                print(f"interrupted: {finished + len(done)} of {len(jobs)} file(s) finished and kept; run the same "
                      f"command again to continue", file=sys.stderr)
            return 130
        except (ValueError, TypeError, OSError, RuntimeError) as exc:
            print(f"error: {_naming_the_file(job.source, exc)}", file=sys.stderr)
            failed.append((job.source, _one_line(exc)))
            continue
        finished += written
    if len(jobs) > 1:
        summary = f"{finished} denoised, {len(done)} skipped (already done), {len(failed)} failed"
        print(summary + "".join(f"\n  failed: {source}: {reason}" for source, reason in failed), file=sys.stderr)
    return 1 if failed else 0


def _naming_the_file(source: Path, error: BaseException) -> str:
    """The error as one line that names the file once (many messages already start with it)."""
    text = _one_line(error)
    return text if str(source) in text else f"{source}: {text}"


def _one_line(error: BaseException) -> str:
    """An error's message as one line (some libraries' messages run over several)."""
    text = " ".join(str(error).split())
    return text or type(error).__name__


def _denoise_on_dask(todo: list, request: Any, keys: dict, states: dict,
                     args: argparse.Namespace) -> tuple[int, list[tuple[Path, str]]]:
    """The files as tasks on a Dask cluster; returns how many were denoised and which failed."""
    from napari_zsdenoise.batch import denoise_on_dask

    failed: list[tuple[Path, str]] = []
    finished = 0

    def report(job: Any, outcome: Any, error: BaseException | None) -> None:
        nonlocal finished
        if error is not None:
            print(f"error: {_naming_the_file(job.source, error)}", file=sys.stderr)
            failed.append((job.source, _one_line(error)))
            return
        for note in outcome.notes:
            say(args, note)
        finished += 1
        say(args, _file_summary(job.source, outcome.written_to, outcome.metadata, on_dask=True))
        _warn_if_doubtful(job.source, outcome.metadata)

    continuing = {job for job in todo if states[job] == "partial"}
    denoise_on_dask(todo, request, keys, continuing, args.dask, workers=args.dask_workers, report=report)
    return finished, failed


def _denoise_one(job: Any, args: argparse.Namespace, request: Any, key: dict[str, Any], *, continuing: bool) -> int:
    """Denoise one file here, with its progress; return 1 when its result was written complete.

    Ctrl-C (or SIGTERM) asks the run to stop after the current iteration: the result so
    far is written, the finished planes are kept for the next run, and the command ends.
    """
    from napari_zsdenoise.batch import denoise_file

    progress = StderrProgress(job.source.name, args.quiet)

    @contextlib.contextmanager
    def watch(run: Any):
        finished = False
        try:
            with _stop_on_interrupt(run, mid_line=progress.on_terminal):
                yield progress
            finished = not run.stopped_early
        finally:
            progress.close(finished=finished)

    def tell(text: str) -> None:
        # Quiet keeps warnings: finished planes that could not be saved are the user's business.
        if not args.quiet or text.startswith("warning:"):
            progress.message(text)

    outcome = denoise_file(job, request, key, continuing=continuing, watch=watch, say=tell)
    metadata, where = outcome.metadata, outcome.written_to
    if outcome.stopped:
        missing = len(metadata["planes_not_denoised"])
        total = metadata["planes_total"]
        print(f"stopped: {job.source} -> {where} holds {total - missing} of {total} plane(s) "
              f"denoised (the last one stopped early), the rest unchanged (metadata: planes_not_denoised); "
              f"{outcome.planes_kept} finished plane(s) are kept: run the same command again to continue", file=sys.stderr)
        raise KeyboardInterrupt
    say(args, _file_summary(job.source, where, metadata))
    _warn_if_doubtful(job.source, metadata)
    return 1


def _warn_if_doubtful(source: Path, metadata: dict[str, Any]) -> None:
    """A warning line per doubtful trait of the result (said even with -q: the result may need a rerun)."""
    from napari_zsdenoise.result_notes import result_doubts

    for doubt in result_doubts(metadata):
        print(f"warning: {source.name}: {doubt}", file=sys.stderr)


@contextlib.contextmanager
def _stop_on_interrupt(run: Any, *, mid_line: bool = True):
    """The first Ctrl-C or SIGTERM stops ``run`` gracefully; a second Ctrl-C interrupts at once.

    ``mid_line``: a progress bar may hold the current line, so the notice starts a new one.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        run.stop()
        print(("\n" if mid_line else "") + "stopping after this iteration; finished planes are kept "
              "(Ctrl-C again to abort)", file=sys.stderr)
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = {signum: signal.signal(signum, stop) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _cmd_bench(args: argparse.Namespace) -> int:
    from napari_zsdenoise.evaluation import iter_lines, run_benchmark

    overrides = method_overrides(args)
    print(f"{'image':<24} {'PSNR':>7} {'SSIM':>6} {'noisy':>7} {'seconds':>8}", flush=True)

    def report(entry: Any) -> None:
        print(f"{entry.name:<24} {entry.psnr:7.2f} {entry.ssim:6.3f} {entry.noisy_psnr:7.2f} {entry.seconds:8.1f}", flush=True)

    summary = run_benchmark(
        args.pairs_dir,
        args.method,
        pattern=args.pattern,
        limit=args.limit,
        crop=args.crop,
        crop_origin=args.crop_origin,
        denoise_kwargs={"device": args.device, "precision": args.precision, "seed": args.seed,
                        "threads": args.threads or None, **overrides},
        on_score=report,
        per_image_dir=args.per_image_dir,
        trace_every=args.trace_every,
    )
    for line in iter_lines(summary):
        print(line)
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))
    return 0


def _cmd_speed(args: argparse.Namespace) -> int:
    from napari_zsdenoise.evaluation import time_iterations

    for size in args.size:
        figures = time_iterations(args.method, size, iterations=args.iterations, warmup=args.warmup, device=args.device,
                                  threads=args.threads or None)
        print(
            f"{figures['method']} {size}x{size} on {figures['device']}: {figures['ms_per_iteration']:.0f} ms per iteration "
            f"(mean of {figures['iterations']} after {args.warmup} warm-up)",
            flush=True,
        )
    return 0


def _cmd_methods(args: argparse.Namespace) -> int:
    from napari_zsdenoise.methods import get_method_spec, method_names

    for name in method_names():
        spec = get_method_spec(name)
        print(f"{name:<12} [{spec.hint}] {spec.summary}" if spec.hint else f"{name:<12} {spec.summary}")
        if spec.recommendation:
            print(f"{'':<12} recommended: {spec.recommendation}")
        if not args.verbose:
            continue
        if spec.citation:
            print(f"{'':<12} {spec.citation}")
        for info in spec.settings():
            level = "advanced" if info.advanced else "basic"
            bounds = f" in {info.range_text()}" if info.range_text() else ""
            print(f"{'':<14}{info.option:<24} {info.default!s:<10} {level:<9}{info.help}{bounds}")
        print()
    return 0


class _OneLineErrors(argparse.ArgumentParser):
    """A parser whose errors are one line that points to --help, not a screen of usage first."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from napari_zsdenoise import __version__

    parser = _OneLineErrors(prog="zsdenoise", description="Zero-shot denoising of fluorescence microscopy images.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_OneLineErrors)

    denoise = commands.add_parser("denoise", help="denoise an image file or a folder of them")
    files = denoise.add_argument_group("input and output")
    files.add_argument("input", help="TIFF/PNG file, or a folder of them")
    files.add_argument("-o", "--output", required=True, help="output file, TIFF (.tif) or OME-Zarr (.ome.zarr), or a "
                       "folder for folder input (TIFF files); a stopped run is continued by the same command")
    files.add_argument("--plane", type=int, help="denoise only this plane (flattened index over the leading axes)")
    files.add_argument("--overwrite", action="store_true", help="replace existing output files")
    files.add_argument("--normalization", default="plane", choices=NORMALIZATIONS,
                       help="scale intensities per plane (default) or by one scaling for the whole stack, which "
                            "keeps the noise of dim out-of-focus planes from being stretched")
    files.add_argument("--camera-offset", type=camera_offset_option, default=0.0, metavar="VALUE",
                       help="the constant the camera adds to every pixel (e.g. 100 for many sCMOS cameras), in the "
                            "input's units: subtracted, so that the result's zero is no light above the camera's "
                            "baseline; values below it are kept, not clipped (default 0)")
    files.add_argument("-q", "--quiet", action="store_true",
                       help="no progress and no summaries on stderr, only errors and skipped files")
    advanced = add_method_options(denoise, grouped=True)
    advanced.add_argument("--dask", metavar="SCHEDULER",
                          help="run the files as tasks on a Dask cluster: a scheduler address, or 'local' for a "
                               "LocalCluster on this machine (needs the 'cluster' extra)")
    advanced.add_argument("--dask-workers", type=worker_count_option, metavar="N",
                          help=f"with --dask local: worker processes, one torch thread each, 1 to the number of "
                               f"cores ({os.cpu_count() or 1} here; default: one per core)")
    denoise.set_defaults(func=_cmd_denoise)

    bench = commands.add_parser("bench", help="score a method on a folder with raw/ and gt/ pairs")
    bench.add_argument("pairs_dir", help="folder holding raw/ (noisy) and gt/ (clean) images of matching names")
    bench.add_argument("--pattern", default="*", help="glob on file names, e.g. '*_1.png'")
    bench.add_argument("--limit", type=int, help="use only the first N pairs")
    bench.add_argument("--crop", type=int, help="score the CxC crop (centred unless --crop-origin top-left)")
    bench.add_argument("--crop-origin", default="centre", choices=["centre", "top-left"], help="where the crop sits (the MPI authors' FMD script: top-left)")
    bench.add_argument("--per-image-dir", help="write each image's figures here and skip images already scored there with the same settings (to continue an interrupted run)")
    bench.add_argument("--trace-every", type=int, help="also score the live preview every N iterations (written to --json)")
    bench.add_argument("--json", help="also write the figures to this JSON file")
    add_method_options(bench)
    bench.set_defaults(func=_cmd_bench)

    speed = commands.add_parser("speed", help="time one iteration of a method on square images")
    from napari_zsdenoise.methods import recommended_method

    speed.add_argument("--method", default=recommended_method(),
                       help=f"method or preset (default {recommended_method()}, the recommended one)")
    speed.add_argument("--size", type=int, nargs="+", default=[256, 512], help="image sides in pixels (default 256 512)")
    speed.add_argument("--iterations", type=int, default=20, help="timed iterations (default 20)")
    speed.add_argument("--warmup", type=int, default=3, help="untimed iterations first (default 3)")
    speed.add_argument("--device", default="auto")
    speed.add_argument("--threads", type=threads_option, default=0, help=THREADS_HELP)
    speed.set_defaults(func=_cmd_speed)

    pretrain = commands.add_parser("pretrain", help="masked pre-training of MPI weights (Ma et al. 2024)")
    pretrain.add_argument("--out", required=True, help="output folder (state.pt, then <name>.pt and <name>.json)")
    pretrain.add_argument("--folder", action="append", default=[], help="folder of clean images (repeatable)")
    pretrain.add_argument("--mask-recipe", default="80-95", choices=["80-95", "30"], help="hidden fraction per sample (default 80-95)")
    pretrain.add_argument("--iterations", type=int, default=80_000, help="optimiser steps = cosine schedule length (default 80000)")
    pretrain.add_argument("--batch-size", type=int, default=16, help="crops per step (default 16)")
    pretrain.add_argument("--crop", type=int, default=96, help="crop side in pixels (default 96)")
    pretrain.add_argument("--procedural-images", type=int, default=256, help="procedural pool size (default 256; 0 = none)")
    pretrain.add_argument("--procedural-fraction", type=float, default=0.5, help="share of crops from the procedural pool (default 0.5)")
    pretrain.add_argument("--learning-rate", type=float, default=2e-3, help="start of the cosine schedule (default 2e-3; ends at 1e-5)")
    pretrain.add_argument("--init", help="start from these weights (shipped or one of our .pt files) instead of random, e.g. to go on with larger crops")
    pretrain.add_argument("--seed", type=int, default=0)
    pretrain.add_argument("--checkpoint-every", type=int, default=250, help="iterations between resumable checkpoints")
    pretrain.add_argument("--report-every", type=int, default=10, help="iterations between progress lines")
    pretrain.add_argument("--time-limit", type=float, help="checkpoint and stop after this many seconds (continue with --resume)")
    pretrain.add_argument("--resume", action="store_true", help="continue the run in --out")
    pretrain.add_argument("--name", help="file name stem of the result (default mpi-hourglass-<recipe>)")
    pretrain.add_argument("--device", default="auto")
    pretrain.add_argument("--note", help="free text for the model card (e.g. how the machine was shared)")
    pretrain.set_defaults(func=cmd_pretrain, argv=None)

    fit = commands.add_parser(
        "fit-dataset", help="train a MID model on your noisy images, for --method mid (Chihaoui & Favaro 2025)",
        description="Train a MID (Mask, Inpaint and Denoise) model on noisy images of one kind (same microscope "
                    "and camera settings): every plane of every file is a training plane. Then denoise with "
                    "--method mid --weights MODEL.pt.")
    fit.add_argument("input", help="noisy TIFF/PNG file or stack, or a folder of them")
    fit.add_argument("-o", "--output", required=True, help="the model file to write (.pt); finished rounds are "
                     "kept in OUTPUT.partial/ until it is written, so a stopped fit continues with the same command")
    fit.add_argument("--clean", action="append", default=[], metavar="FOLDER",
                     help="folder of clean or high-SNR images of similar structures (repeatable), used beside "
                          "procedural fluorescence scenes")
    fit.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps")
    fit.add_argument("--overwrite", action="store_true", help="replace an existing model file")
    fit.add_argument("--no-resume", dest="resume", action="store_false",
                     help="start afresh even if OUTPUT.partial/ holds finished rounds")
    fit.add_argument("-q", "--quiet", action="store_true", help="no progress and no summary, only errors")
    from napari_zsdenoise.methods.mid.settings import MIDTrainingSettings
    from napari_zsdenoise.settings import describe_settings

    training = fit.add_argument_group("training settings")
    for info in describe_settings(MIDTrainingSettings):
        text = (info.help + (f" Range {info.range_text()}." if info.range_text() else "") +
                f" Default {info.default}.").replace("%", "%%")
        if info.kind == "bool":
            training.add_argument(info.option, dest=f"training_{info.name}", action=argparse.BooleanOptionalAction,
                                  default=argparse.SUPPRESS, help=text)
        else:
            training.add_argument(info.option, dest=f"training_{info.name}", type=argument_parser_for(info),
                                  metavar=info.name.upper(), default=argparse.SUPPRESS, help=text)
    fit.set_defaults(func=cmd_fit_dataset)

    methods = commands.add_parser("methods", help="list the available methods and presets")
    methods.add_argument("-v", "--verbose", action="store_true", help="also every setting with its default, level and range")
    methods.set_defaults(func=_cmd_methods)
    return parser


def _check_before_running(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse, as the parser refuses any bad option, what the parser alone cannot judge: a
    setting's value by the chosen method's own range, and options that need one another."""
    from napari_zsdenoise.methods import method_names

    command = f"{parser.prog} {args.command}"
    if getattr(args, "method", None) in method_names() and any(key.startswith("setting_") for key in vars(args)):
        try:
            option_settings(args)
        except (TypeError, ValueError, FileNotFoundError) as exc:
            parser.exit(2, f"{command}: error: {_one_line(exc)}\n")
    if args.command == "denoise":
        if args.dask_workers is not None and args.dask != "local":
            parser.exit(2, f"{command}: error: --dask-workers is the number of local workers: it needs --dask local "
                           f"(a scheduler at an address has its own workers)\n")


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    import signal
    import threading

    parser = build_parser()
    args = parser.parse_args(argv)
    if argv is not None and hasattr(args, "argv"):
        args.argv = list(argv)
    _check_before_running(parser, args)
    if threading.current_thread() is threading.main_thread():
        # SIGTERM ends the command like Ctrl-C: temporary files are removed, finished work kept.
        signal.signal(signal.SIGTERM, _terminate)
    try:
        return args.func(args)
    except (ValueError, TypeError, OSError) as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
