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

from napari_zsdenoise._validation import MAX_SEED, check_seed
from napari_zsdenoise.devices import PRECISIONS
from napari_zsdenoise.normalization import NORMALIZATIONS
from napari_zsdenoise.run_record import duration_text
from napari_zsdenoise.settings import SettingInfo


def _settings_by_name() -> dict[str, list[tuple[str, SettingInfo]]]:
    """Every setting of every registered method, by name: each method's own declaration of it."""
    from napari_zsdenoise.methods import get_method_spec, method_names

    settings: dict[str, list[tuple[str, SettingInfo]]] = {}
    for method in method_names():
        for info in get_method_spec(method).settings():
            settings.setdefault(info.name, []).append((method, info))
    return settings


def _ranges_by_method(declarations: list[tuple[str, SettingInfo]]) -> str:
    """" Range (0, 1): mpi, bsn; [0, 1): mid." — the ranges a setting has, with the methods of each."""
    by_range: dict[str, list[str]] = {}
    for method, info in declarations:
        by_range.setdefault(info.range_text(), []).append(method)
    if list(by_range) == [""]:
        return ""
    if len(by_range) == 1:
        return f" Range {next(iter(by_range))}."
    return " Range " + "; ".join(f"{text or 'unbounded'} for {', '.join(methods)}"
                                for text, methods in by_range.items()) + "."


def _add_method_options(parser: argparse.ArgumentParser, *, grouped: bool = False) -> Any:
    """The method, its settings, the device and the seed; with ``grouped``, under the titles
    "method", "method settings", "device" and "advanced" (returned, for more of its kind).

    A setting's value is read as text here and parsed later by the chosen method's own
    declaration (:func:`_option_settings`): methods that share a name may differ in range.
    """
    from napari_zsdenoise.methods import recommended_method

    method_group = parser.add_argument_group("method") if grouped else parser
    method_group.add_argument("--method", default=recommended_method(),
                              help=f"method or preset (see `zsdenoise methods`); default {recommended_method()}, "
                                   f"the recommended one")
    group = parser.add_argument_group(
        "method settings", "Each defaults to the chosen preset's value; `zsdenoise methods --verbose` lists them per method.")
    for name, declarations in _settings_by_name().items():
        info = declarations[0][1]
        extra = f" ({', '.join(method for method, _ in declarations)})"
        if info.kind == "bool":
            group.add_argument(info.option, dest=f"setting_{name}", action=argparse.BooleanOptionalAction,
                               default=argparse.SUPPRESS,
                               help=info.help.replace("%", "%%") + extra)
        else:
            # Absent unless given: None is a value of its own for some settings (weights).
            group.add_argument(info.option, dest=f"setting_{name}", metavar=name.upper(), default=argparse.SUPPRESS,
                               help=(info.help + _ranges_by_method(declarations)).replace("%", "%%") + extra)
    device_group = parser.add_argument_group("device", "Where and in what precision the training computes.") \
        if grouped else parser
    device_group.add_argument("--device", default="auto",
                              help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps")
    device_group.add_argument("--precision", default="auto", choices=PRECISIONS,
                              help="auto (bfloat16 where the device computes it fast and the method allows it, else "
                                   "fp32), fp32 or bf16; default auto")
    device_group.add_argument("--threads", type=_threads, default=0, help=THREADS_HELP)
    advanced = parser.add_argument_group("advanced", "Rarely needed.") if grouped else group
    advanced.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                          help="any setting of the chosen method by its name, e.g. --set patience=100 (repeatable)")
    (advanced if grouped else parser).add_argument("--seed", type=_seed, default=0,
                                                   help=f"random seed in [0, {MAX_SEED}] (default 0); the same seed "
                                                        f"on the same device reproduces a result")
    return advanced


THREADS_HELP = ("CPU threads; 0 (default): the cores other programs leave free, looked at again every few "
                "seconds (a core another program keeps busy would slow every step); a number fixes them, as "
                "OMP_NUM_THREADS does")


def _threads(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0 (0: automatic), got {text!r}")
    return value


def _argument_parser_for(info: SettingInfo):
    def parse(text: str) -> Any:
        try:
            return info.parse(text)
        except (TypeError, ValueError, FileNotFoundError) as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def _seed(text: str) -> int:
    try:
        return check_seed(int(text))
    except (TypeError, ValueError) as exc:
        raise argparse.ArgumentTypeError(str(exc) if "seed" in str(exc) else f"must be an integer, not {text!r}") \
            from None


def _option_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given as options, each parsed and checked by the chosen method's own declaration.

    Raises
    ------
    ValueError
        For a value out of the method's range, or an option the method does not have.
    """
    from napari_zsdenoise.methods import get_method_spec

    given = {key.removeprefix("setting_"): value for key, value in vars(args).items() if key.startswith("setting_")}
    if not given:
        return {}
    spec = get_method_spec(args.method)
    own = {info.name: info for info in spec.settings()}
    settings: dict[str, Any] = {}
    for name, value in given.items():
        if name not in own:
            others = [method for method, _ in _settings_by_name().get(name, [])]
            raise ValueError(f"--{name.replace('_', '-')} is not a setting of {spec.name} (it is one of "
                             f"{', '.join(others)}); `zsdenoise methods --verbose` lists each method's settings")
        settings[name] = own[name].parse(value) if isinstance(value, str) else value
    return settings


def _method_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given on the command line, by option or by --set, checked against the chosen method."""
    from napari_zsdenoise.methods import get_method_spec

    overrides = _option_settings(args)
    spec = get_method_spec(args.method)
    settings = {info.name: info for info in spec.settings()}
    for item in args.set:
        name, separator, text = item.partition("=")
        name = name.strip().replace("-", "_")
        if not separator:
            raise ValueError(f"--set takes NAME=VALUE, not {item!r}")
        if name not in settings:
            raise ValueError(f"{spec.name} has no setting {name!r}; its settings: {', '.join(settings)}")
        overrides[name] = settings[name].parse(text)
    return overrides


# Without a terminal (a log file, CI, a pipe) progress comes as whole lines: one as each
# plane of a stack finishes and, in between, at most one per this many seconds.
PLAIN_PROGRESS_INTERVAL = 30.0


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def _terminal_is_sized(stream: Any) -> bool:
    try:
        size = os.get_terminal_size(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return False
    return size.columns > 0 and size.lines > 0


def _clock(seconds: float) -> str:
    """'4:05' or '1:02:03', as a progress line counts time."""
    from tqdm import tqdm

    return tqdm.format_interval(seconds)


class _StderrProgress:
    """Progress of one file on stderr: a tqdm bar on a terminal, plain lines anywhere else.

    Called with each progress event of the file's run. The bar shows the share of the run's expected
    time that has passed and the time left the run estimates from its plan (a warm-started plane has
    a budget of its own; early stopping ends most planes before their budget).
    """

    #: Steps of the bar (per mille of the run's expected time).
    BAR_STEPS = 1000

    def __init__(self, label: str, quiet: bool, stream: Any = None) -> None:
        self.label, self.quiet = label, quiet
        self.stream = sys.stderr if stream is None else stream
        self.on_terminal = not quiet and _is_terminal(self.stream)
        self._bar: Any = None
        self._latest: Any = None
        self._line_elapsed = 0.0

    def __call__(self, event: Any) -> None:
        if self.quiet:
            return
        previous, self._latest = self._latest, event
        if self.on_terminal:
            self._show_on_bar(event)
        elif previous is not None and previous.plane != event.plane:
            # The next plane's first event already knows how long the finished one took.
            self._write_line(previous, plane_finished=True, seconds_left=event.eta_seconds)
        elif event.elapsed - self._line_elapsed >= PLAIN_PROGRESS_INTERVAL:
            self._write_line(event)

    def _show_on_bar(self, event: Any) -> None:
        if self._bar is None:
            from tqdm import tqdm

            # Some terminals (a bare pseudo-terminal, some CI consoles) report a size of 0 x 0,
            # on which tqdm would draw nothing: they get a fixed size instead. The state leads and the bar
            # is narrow, so that the plane, the iteration, the loss and the time left fit in 80 columns.
            sized = _terminal_is_sized(self.stream)
            self._bar = tqdm(total=self.BAR_STEPS, file=self.stream, dynamic_ncols=sized,
                             ncols=None if sized else 80, nrows=None if sized else 24, leave=True,
                             bar_format="{desc} {percentage:3.0f}%|{bar:6}|")
        label = self.label if len(self.label) <= 16 else "…" + self.label[-15:]
        left = event.eta_seconds
        self._bar.set_description_str(f"{label} {self._state(event, short=True)} {_clock(event.elapsed)}"
                                      + (f"<{_clock(left)}" if left is not None else ""), refresh=False)
        self._bar.update(min(int(self.BAR_STEPS * event.fraction_done), self.BAR_STEPS) - self._bar.n)

    @staticmethod
    def _state(event: Any, *, plane_finished: bool = False, short: bool = False) -> str:
        plane = f"{'' if short else 'plane '}{event.plane + 1}/{event.n_planes}"
        if plane_finished:
            parts = [f"{plane} finished after {event.iteration}/{event.total} iterations"]
        else:
            parts = [plane] if event.n_planes > 1 else []
            parts.append(f"{'it' if short else 'iteration'} {event.iteration}/{event.total}")
        if event.loss == event.loss:  # not yet read (NaN) on a GPU's first steps
            parts.append(f"loss {event.loss:.3g}")
        return (" " if short else ", ").join(parts)

    def _write_line(self, event: Any, *, plane_finished: bool = False, seconds_left: float | None = None) -> None:
        seconds_left = event.eta_seconds if seconds_left is None else seconds_left
        time_left = f", about {_clock(seconds_left)} left" if seconds_left else ""
        print(f"{self.label}: {self._state(event, plane_finished=plane_finished)}, "
              f"{_clock(event.elapsed)} elapsed{time_left}", file=self.stream, flush=True)
        self._line_elapsed = event.elapsed

    def message(self, text: str) -> None:
        """Print ``text`` as a line of its own, above the bar if one is shown."""
        if self._bar is not None:
            self._bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def close(self, *, finished: bool) -> None:
        """End the progress; ``finished``: the run went to its end (not stopped), so the bar is full."""
        if self._bar is not None:
            if finished:
                self._bar.update(self._bar.total - self._bar.n)
            self._bar.close()
            self._bar = None
        elif finished and self._latest is not None and self._latest.n_planes > 1 and not self.quiet:
            self._write_line(self._latest, plane_finished=True)


def _file_summary(source: Path, written_to: Path, metadata: dict[str, Any], *, on_dask: bool = False) -> str:
    """One line on what became of a file: method, planes, iterations (and those kept), why early stopping
    ended them, time and device."""
    from napari_zsdenoise.run_controller import result_phrases

    total = metadata["planes_total"]
    parts = [metadata["method"], f"{total} plane" + ("s" if total != 1 else ""), *result_phrases(metadata)]
    where = f"{metadata['device']} (a Dask worker)" if on_dask else metadata["device"]
    parts.append(f"{duration_text(metadata['seconds'])} on {where}, {metadata['precision']}")
    return f"denoised {source.name} -> {written_to}: {', '.join(parts)}"


def _finite_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"must be a finite number, not {text!r}")
    return value


def _camera_offset(text: str) -> float:
    value = _finite_number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 (the constant the camera adds to every pixel), not {text!r}")
    return value


def _cmd_denoise(args: argparse.Namespace) -> int:
    from napari_zsdenoise.batch import FileRequest, check_outputs, output_state, plan_jobs, resume_key
    from napari_zsdenoise.methods import get_method_spec
    from napari_zsdenoise.methods.registry import config_parameters

    # Everything that can be checked is checked before the first iteration.
    overrides = _method_overrides(args)
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
        _say(args, f"discarding the finished planes of another run in {destination}.partial (--overwrite)")
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
            _say(args, note)
        finished += 1
        _say(args, _file_summary(job.source, outcome.written_to, outcome.metadata, on_dask=True))
        _warn_if_doubtful(job.source, outcome.metadata)

    continuing = {job for job in todo if states[job] == "partial"}
    denoise_on_dask(todo, request, keys, continuing, args.dask, workers=args.dask_workers, report=report)
    return finished, failed


def _say(args: argparse.Namespace, text: str) -> None:
    if not args.quiet:
        print(text, file=sys.stderr)


def _denoise_one(job: Any, args: argparse.Namespace, request: Any, key: dict[str, Any], *, continuing: bool) -> int:
    """Denoise one file here, with its progress; return 1 when its result was written complete.

    Ctrl-C (or SIGTERM) asks the run to stop after the current iteration: the result so
    far is written, the finished planes are kept for the next run, and the command ends.
    """
    from napari_zsdenoise.batch import denoise_file

    progress = _StderrProgress(job.source.name, args.quiet)

    @contextlib.contextmanager
    def watch(run: Any):
        finished = False
        try:
            with _stop_on_interrupt(run, mid_line=progress.on_terminal):
                yield progress
            finished = not run.stopped_early
        finally:
            progress.close(finished=finished)

    def say(text: str) -> None:
        # Quiet keeps warnings: finished planes that could not be saved are the user's business.
        if not args.quiet or text.startswith("warning:"):
            progress.message(text)

    outcome = denoise_file(job, request, key, continuing=continuing, watch=watch, say=say)
    metadata, where = outcome.metadata, outcome.written_to
    if outcome.stopped:
        missing = len(metadata["planes_not_denoised"])
        total = metadata["planes_total"]
        print(f"stopped: {job.source} -> {where} holds {total - missing} of {total} plane(s) "
              f"denoised (the last one stopped early), the rest unchanged (metadata: planes_not_denoised); "
              f"{outcome.planes_kept} finished plane(s) are kept: run the same command again to continue", file=sys.stderr)
        raise KeyboardInterrupt
    _say(args, _file_summary(job.source, where, metadata))
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


def _worker_count(text: str) -> int:
    cores = os.cpu_count() or 1
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number of workers, not {text!r}") from None
    if not 1 <= count <= cores:
        # Each worker trains with a core of its own: more workers than cores only share them.
        raise argparse.ArgumentTypeError(f"must be between 1 and {cores}, the cores of this machine; got {count}")
    return count


def _cmd_bench(args: argparse.Namespace) -> int:
    from napari_zsdenoise.evaluation import iter_lines, run_benchmark

    overrides = _method_overrides(args)
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


def _rerun_arguments(argv: Sequence[str]) -> list[str]:
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


def _cmd_pretrain(args: argparse.Namespace) -> int:
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
    command = ["zsdenoise", *_rerun_arguments(sys.argv[1:] if args.argv is None else args.argv)]
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


def _training_planes(source: Path) -> tuple[list[Any], dict[str, int]]:
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


def _check_model_output(source: Path, out: Path, *, overwrite: bool) -> None:
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


def _cmd_fit_dataset(args: argparse.Namespace) -> int:
    from napari_zsdenoise.methods.mid.settings import MIDTrainingSettings
    from napari_zsdenoise.methods.mid.training import fit_dataset, partial_folder

    settings = MIDTrainingSettings(**{key.removeprefix("training_"): value for key, value in vars(args).items()
                                      if key.startswith("training_")})
    out = Path(args.output)
    _check_model_output(Path(args.input), out, overwrite=args.overwrite)
    planes, counts = _training_planes(Path(args.input))
    _say(args, f"training MID on {len(planes)} plane(s) from {len(counts)} file(s): {settings.rounds} round(s) of "
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
                _say(args, f"note: {out} was locked by a process that no longer runs (killed?); its lock is taken over")
            fit_dataset(planes, out=out, clean_folders=tuple(args.clean), settings=settings, resume=args.resume,
                        progress=report, device=args.device, sources=counts, overwrite=args.overwrite)
    except KeyboardInterrupt:
        print(f"\ninterrupted: finished rounds are kept in {partial_folder(out)}; run the same command again to "
              f"continue", file=sys.stderr)
        return 130
    from napari_zsdenoise.methods.mid.model import read_model_card

    card = read_model_card(out)
    noise = card["round_history"][-1]["noise"]
    _say(args, f"wrote {out}: {len(planes)} plane(s), {settings.rounds} round(s), last round's noise "
               f"{noise['kind']} (variance {noise['a']:.3g}*s + {noise['b']:.3g}), {duration_text(card['seconds'])} on "
               f"{card['device']}\ndenoise with: zsdenoise denoise IMAGE -o RESULT.tif --method mid --weights {out}")
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
    files.add_argument("--camera-offset", type=_camera_offset, default=0.0, metavar="VALUE",
                       help="the constant the camera adds to every pixel (e.g. 100 for many sCMOS cameras), in the "
                            "input's units: subtracted, so that the result's zero is no light above the camera's "
                            "baseline; values below it are kept, not clipped (default 0)")
    files.add_argument("-q", "--quiet", action="store_true",
                       help="no progress and no summaries on stderr, only errors and skipped files")
    advanced = _add_method_options(denoise, grouped=True)
    advanced.add_argument("--dask", metavar="SCHEDULER",
                          help="run the files as tasks on a Dask cluster: a scheduler address, or 'local' for a "
                               "LocalCluster on this machine (needs the 'cluster' extra)")
    advanced.add_argument("--dask-workers", type=_worker_count, metavar="N",
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
    _add_method_options(bench)
    bench.set_defaults(func=_cmd_bench)

    speed = commands.add_parser("speed", help="time one iteration of a method on square images")
    from napari_zsdenoise.methods import recommended_method

    speed.add_argument("--method", default=recommended_method(),
                       help=f"method or preset (default {recommended_method()}, the recommended one)")
    speed.add_argument("--size", type=int, nargs="+", default=[256, 512], help="image sides in pixels (default 256 512)")
    speed.add_argument("--iterations", type=int, default=20, help="timed iterations (default 20)")
    speed.add_argument("--warmup", type=int, default=3, help="untimed iterations first (default 3)")
    speed.add_argument("--device", default="auto")
    speed.add_argument("--threads", type=_threads, default=0, help=THREADS_HELP)
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
    pretrain.set_defaults(func=_cmd_pretrain, argv=None)

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
            training.add_argument(info.option, dest=f"training_{info.name}", type=_argument_parser_for(info),
                                  metavar=info.name.upper(), default=argparse.SUPPRESS, help=text)
    fit.set_defaults(func=_cmd_fit_dataset)

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
            _option_settings(args)
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
