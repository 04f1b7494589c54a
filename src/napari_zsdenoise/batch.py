"""Files in, files out: plan a batch, check it before any computing, and know what is already done.

The CLI's ``denoise`` command is a thin layer over this module and the engine.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_zsdenoise.io import READABLE_SUFFIXES
from napari_zsdenoise.outputs import (
    OUTPUT_FORMATS,
    check_output_layout,
    is_output_path,
    is_zarr_path,
    OutputLock,
    describe_lock_holder,
    lock_holder,
    matches_key,
    progress_folder,
    read_progress,
    read_provenance,
)

# Room kept free beyond the outputs themselves (file system overhead, temporary files).
_SPARE_BYTES = 16 * 2**20


@dataclass(frozen=True)
class Job:
    """One input file and where its result goes."""

    source: Path
    destination: Path


def plan_jobs(source: str | Path, output: str | Path) -> list[Job]:
    """The jobs for an input file or folder and an output file or folder.

    A folder input gives one ``<stem>.tif`` per readable file. An output that is an
    existing folder or ends with a path separator is a folder; one named ``.ome.zarr``
    or ``.zarr`` is an OME-Zarr store, never a folder of outputs.

    Raises
    ------
    FileNotFoundError
        If the input does not exist or a folder holds no readable image.
    ValueError
        If two inputs would be written to the same file, or a single output is neither TIFF nor OME-Zarr.
    NotADirectoryError
        If the input is a folder and the output an existing file.
    """
    source, output_text = Path(source), str(output)
    output = Path(output)
    output_is_folder = not is_zarr_path(output) and (output.is_dir() or output_text.endswith(("/", os.sep)))
    if source.is_dir():
        inputs = sorted(p for p in source.iterdir() if p.is_file() and p.suffix.lower() in READABLE_SUFFIXES)
        if not inputs:
            raise FileNotFoundError(f"no images ({', '.join(READABLE_SUFFIXES)}) in {source}")
        if output.exists() and not output.is_dir():
            raise NotADirectoryError(f"{output} must be a folder when the input is a folder")
        if not output.exists() and (is_output_path(output) or output.suffix.lower() in READABLE_SUFFIXES):
            raise ValueError(f"the input {source} is a folder, so the output must be a folder (one .tif per image); "
                             f"{output.name} names a file: name a folder instead, e.g. {output.with_suffix('')}{os.sep}")
        jobs = [Job(p, output / (p.stem + ".tif")) for p in inputs]
    elif not source.is_file():
        raise FileNotFoundError(f"no such file or folder: {source}")
    elif output_is_folder:
        jobs = [Job(source, output / (source.stem + ".tif"))]
    else:
        if not is_output_path(output):
            raise ValueError(f"cannot write {output.name}: name the output {OUTPUT_FORMATS}")
        jobs = [Job(source, output)]
    check_inputs_untouched([job.destination for job in jobs], [job.source for job in jobs],
                           source if source.is_dir() else None)
    _check_collisions(jobs)
    return jobs


def check_inputs_untouched(outputs: list[Path], inputs: list[Path], input_folder: Path | None = None) -> None:
    """Refuse, before any computing and whatever ``--overwrite`` says, an output that would modify,
    replace or delete an input: one that is an input (the same path, or the same file through a
    link), that contains one (a folder or ``.zarr`` store around it, which writing would
    replace), or that lies inside the input folder, where its results would mix with the inputs.

    Raises
    ------
    ValueError
        Naming the output and the input.
    """
    folder = _real(input_folder) if input_folder is not None else None
    for output in outputs:
        real_output = _real(output)
        for candidate in (output, *_companions(output)):
            real = _real(candidate)
            for source in inputs:
                real_source = _real(source)
                if real == real_source or _same_file(candidate, source):
                    raise ValueError(f"refusing to write {output}: it is the input {source}, which is never "
                                     f"replaced; choose another output name")
                if real_source.is_relative_to(real):
                    raise ValueError(f"refusing to write {output}: it contains the input {source}, which is never "
                                     f"replaced or deleted; choose an output outside it")
        if folder is not None and real_output.is_relative_to(folder):
            raise ValueError(f"refusing to write {output}: it lies inside the input folder {input_folder}, where "
                             f"results would mix with the inputs; choose an output folder outside it")


def _companions(output: Path) -> list[Path]:
    """What a run writes beside an output while it works: the progress folder and the lock."""
    from napari_zsdenoise.outputs import lock_path

    return [progress_folder(output), lock_path(output)]


def _real(path: Path) -> Path:
    """``path`` made absolute with every link resolved (as far as it exists)."""
    return Path(os.path.realpath(path))


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)  # hard links too
    except OSError:
        return False  # one of them does not exist


def _check_collisions(jobs: list[Job]) -> None:
    by_destination: dict[Path, list[Path]] = {}
    for job in jobs:
        by_destination.setdefault(job.destination, []).append(job.source)
    clashes = [f"{' and '.join(p.name for p in sources)} -> {destination}"
               for destination, sources in by_destination.items() if len(sources) > 1]
    if clashes:
        raise ValueError(f"several inputs would be written to the same file: {'; '.join(clashes)}; rename one of them")


def image_shape(path: Path) -> tuple[int, ...]:
    """The shape of the image in ``path``, read from its header (no pixels are loaded)."""
    from napari_zsdenoise.io import read_image_shape

    return read_image_shape(path)


# Inputs up to this size are hashed whole; larger ones by evenly spaced blocks of this many bytes.
_HASHED_WHOLE_BYTES = 8 * 2**20
_SAMPLED_BLOCK_BYTES = 64 * 2**10
_SAMPLED_BLOCKS = 64


def input_fingerprint(path: Path) -> dict[str, Any]:
    """A cheap fingerprint of an input file's content: its size in bytes, the image's shape and
    type, and a hash of the whole file or, for a large one, of evenly spaced blocks of it.

    Part of a run's resume key, so that a result is skipped or continued only for the data it
    was computed from, wherever that data lies and whatever its file is called.
    """
    import hashlib

    size = path.stat().st_size
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as handle:
        if size <= _HASHED_WHOLE_BYTES:
            digest.update(handle.read())
        else:
            for offset in np.linspace(0, size - _SAMPLED_BLOCK_BYTES, _SAMPLED_BLOCKS).astype(np.int64):
                handle.seek(int(offset))
                digest.update(handle.read(_SAMPLED_BLOCK_BYTES))
    try:
        shape, dtype = _header(path)
    except Exception:  # noqa: BLE001 - an unreadable input fails later, by name, without stopping the rest
        shape, dtype = (), "unreadable"
    return {"bytes": size, "shape": list(shape), "dtype": dtype, "hash": digest.hexdigest()}


def _header(path: Path) -> tuple[tuple[int, ...], str]:
    """The image's shape and its stored type (a TIFF's dtype, a PNG's mode), from the header."""
    from napari_zsdenoise.io import TIFF_SUFFIXES, read_image_shape

    shape = read_image_shape(path)
    if path.suffix.lower() in TIFF_SUFFIXES:
        import tifffile

        with tifffile.TiffFile(path) as tif:
            return shape, str(tif.series[0].dtype)
    from PIL import Image

    with Image.open(path) as image:
        return shape, f"png {image.mode}"


def resume_key(source: Path, method: str, parameters: dict[str, Any], seed: int, normalization: str,
               camera_offset: float = 0.0, precision: str = "auto", plane: int | None = None) -> dict[str, Any]:
    """What an output's provenance must say for the same command to skip it as done or continue it:
    the input's content (:func:`input_fingerprint`), the method and every setting of the run.

    The camera offset is part of it: a result with another offset has another zero.
    """
    return json.loads(json.dumps({"input": input_fingerprint(source), "method": method, "parameters": parameters,
                                  "seed": seed, "normalization": normalization, "camera_offset": float(camera_offset),
                                  "precision": precision, "plane": plane}))


def output_state(job: Job, key: dict[str, Any]) -> str:
    """What ``job``'s output is: ``"new"`` (absent), ``"done"`` (complete, from the same input,
    method, settings and seed), ``"partial"`` (the same, but stopped or killed before the
    end: the same command continues it), ``"foreign"`` (absent, but a progress folder holds
    finished planes of another run) or ``"other"`` (anything else there)."""
    if not job.destination.exists():
        progress = read_progress(job.destination) if not is_zarr_path(job.destination) else None
        if progress is None:
            return "new"
        return "partial" if progress.get("key") == key else "foreign"
    try:
        provenance = read_provenance(job.destination) if job.destination.is_file() or is_zarr_path(job.destination) else {}
    except Exception:  # noqa: BLE001 - an unreadable file is simply not ours
        return "other"
    if not matches_key(provenance, key):
        return "other"
    unfinished = (provenance.get("stopped_early") or provenance.get("planes_not_denoised")
                  or provenance.get("complete") is False)
    return "partial" if unfinished else "done"


def check_outputs(jobs: list[Job], *, overwrite: bool, replaceable: frozenset[Path] = frozenset(),
                  foreign: frozenset[Path] = frozenset()) -> None:
    """Before any computing, and without creating anything: no output is being written by another
    run, each output folder can be created and written, no output is a folder or (without
    ``overwrite``) an existing file other than ``replaceable`` ones (a stopped run's own partial
    output), no ``foreign`` output's progress folder holding another run's finished planes
    would be discarded without ``overwrite``, and the disk has room for the results.

    Raises
    ------
    FileExistsError, PermissionError, NotADirectoryError, OSError
        Naming the path and the problem.
    """
    busy = [(job.destination, holder) for job in jobs if (holder := lock_holder(job.destination)) is not None]
    if busy:
        raise FileExistsError("; ".join(f"{destination} is being written by {describe_lock_holder(holder)}"
                                        for destination, holder in busy) + ": wait for that run to end, or stop it")
    existing = [str(job.destination) for job in jobs if job.destination.exists()]
    folders_as_outputs = [path for path in existing if Path(path).is_dir() and not is_zarr_path(Path(path))]
    zarr_files = [path for path in existing if Path(path).is_file() and is_zarr_path(Path(path))]
    if zarr_files:
        raise FileExistsError(f"an OME-Zarr output is a folder, but these are files: {', '.join(zarr_files)}")
    if folders_as_outputs:
        raise IsADirectoryError(f"cannot write over folder(s): {', '.join(folders_as_outputs)}")
    existing = [path for path in existing if Path(path) not in replaceable]
    if existing and not overwrite:
        raise FileExistsError(f"refusing to overwrite {', '.join(existing)}, which this command did not write "
                              f"(another input, method or setting; use --overwrite to replace)")
    if foreign and not overwrite:
        held = [f"{progress_folder(destination)} ({_planes_described(destination)})" for destination in sorted(foreign)]
        raise FileExistsError(f"{'; '.join(held)}: finished planes of another run (another input, method or "
                              f"setting); run that command again to finish it, or use --overwrite to discard them")
    needed: dict[Path, int] = {}
    for job in jobs:
        folder = job.destination.parent
        check_writable_folder(folder)
        try:
            shape = image_shape(job.source)
        except Exception:  # noqa: BLE001 - an unreadable input fails later, by name, without stopping the rest
            shape = ()
        check_output_layout(job.destination, len(shape))
        # float32 output, one value per input pixel; a TIFF stack's finished planes also
        # wait in its progress folder until the file is written.
        size = 4 * int(np.prod(shape)) if shape else 0
        if len(shape) > 2 and not is_zarr_path(job.destination):
            size *= 2
        existing_folder = _nearest_existing(folder)
        needed[existing_folder] = needed.get(existing_folder, 0) + size
    for folder, size in needed.items():
        free = shutil.disk_usage(folder).free
        if size + _SPARE_BYTES > free:
            raise OSError(f"the results need about {size / 2**20:.0f} MB in {folder}, which has {free / 2**20:.0f} MB free")


def _planes_described(destination: Path) -> str:
    progress = read_progress(destination) or {}
    planes = progress.get("planes") or []
    key = progress.get("key") or {}
    method = f" of {key['method']}" if isinstance(key, dict) and key.get("method") else ""
    return f"{len(planes)} plane(s){method}"


def _nearest_existing(folder: Path) -> Path:
    folder = Path(os.path.abspath(folder))
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def check_writable_folder(folder: Path) -> None:
    """Raise OSError (naming the folder) unless ``folder`` exists and can be written, or can be
    created: checked on the nearest folder that exists, by the permissions and by creating and
    removing a file there (a read-only mount refuses even root). Nothing is left behind.
    """
    folder = Path(folder)
    existing = _nearest_existing(folder)
    if not existing.is_dir():
        raise NotADirectoryError(f"cannot create the output folder {folder}: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write to the output folder {folder}: permission denied")
    import tempfile

    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise PermissionError(f"cannot write to the output folder {folder}: {exc.strerror or exc}") from None


def fallback_path(destination: Path) -> Path:
    """Where a result goes when its destination cannot be written: the system's temporary folder."""
    import tempfile

    return Path(tempfile.gettempdir()) / f"zsdenoise-{os.getpid()}-{destination.name}"


@dataclass(frozen=True)
class FileRequest:
    """How every file of a batch is denoised: the method and the run-level choices."""

    method: str
    overrides: dict[str, Any]
    device: str | None = None
    precision: str = "auto"
    normalization: str = "plane"
    camera_offset: float = 0.0
    seed: int = 0
    plane: int | None = None
    threads: int = 0


@dataclass
class FileOutcome:
    """What denoising one file gave: where the result went and what the run recorded."""

    source: Path
    written_to: Path
    metadata: dict[str, Any]
    planes_kept: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def stopped(self) -> bool:
        return bool(self.metadata.get("stopped_early"))


def denoise_file(job: Job, request: FileRequest, key: dict[str, Any], *, continuing: bool = False,
                 say: Callable[[str], None] | None = None, watch: Callable[[Any], Any] | None = None) -> FileOutcome:
    """Denoise one file and write its result; the unit of work of a batch, local or on a cluster.

    The output is locked while the run writes it (:class:`~napari_zsdenoise.outputs.OutputLock`),
    so a second run refuses it. Each finished plane of a stack is saved as soon as it is done,
    and planes an earlier run with the same ``key`` finished are taken from there. A run
    refused or failed before its first saved plane leaves nothing behind. ``say`` receives the
    lines a user should read (continuing, a plane that could not be saved); ``watch(run)``, if
    given, is a context manager entered around the run that returns a callable receiving each
    progress event (the CLI's progress line and Ctrl-C handling).

    Raises
    ------
    OSError
        When the result cannot be written where asked; it is then saved to
        :func:`fallback_path`, which the message names.
    """
    notes: list[str] = []

    def tell(text: str) -> None:
        notes.append(text)
        if say is not None:
            say(text)

    with OutputLock(job.destination) as lock:
        if lock.stale_holder is not None:
            tell(f"note: {job.destination} was locked by {describe_lock_holder(lock.stale_holder)}, which no "
                 f"longer runs (killed?); its lock is taken over")
        return _denoise_locked(job, request, key, continuing, tell, watch, notes)


def _denoise_locked(job: Job, request: FileRequest, key: dict[str, Any], continuing: bool,
                    tell: Callable[[str], None], watch: Callable[[Any], Any] | None, notes: list[str]) -> FileOutcome:
    from napari_zsdenoise.engine import DenoiseRun
    from napari_zsdenoise.io import read_image, read_image_info
    from napari_zsdenoise.outputs import result_writer

    image = read_image(job.source, lazy=True)
    info = read_image_info(job.source)
    whole = request.plane is None
    writer = result_writer(job.destination, key, image.shape if whole else image.shape[-2:], info)
    finished = writer.finished_planes() if whole else {}
    if continuing:
        n_planes = math.prod(image.shape[:-2]) if whole else 1
        tell(f"continuing {job.source}: {len(finished)} of {n_planes} plane(s) already denoised by an earlier run "
             f"of this command" + (", the rest are computed now" if finished else ""))
    unsaved: list[tuple[int, ...]] = []

    def save_plane(index: tuple[int, ...], estimate: Any, record: dict[str, Any]) -> None:
        # A plane that cannot be saved now is still in the result, written at the end.
        try:
            writer.save_plane(index, estimate, record)
        except OSError as exc:
            if not unsaved:
                tell(f"warning: cannot save finished planes of {job.source} as they come "
                     f"({exc.strerror or exc}); they are kept in memory and written at the end")
            unsaved.append(index)

    try:
        run = DenoiseRun(image, request.method, device=request.device, precision=request.precision,
                         normalization=request.normalization, camera_offset=request.camera_offset,
                         seed=request.seed, plane=request.plane, threads=request.threads or None,
                         preview_every=0, preview_interval=1.0, finished_planes=finished,
                         on_plane_finished=save_plane if whole else None,
                         output=writer.output_array() if whole else None, **request.overrides)
        with (watch(run) if watch is not None else contextlib.nullcontext(lambda event: None)) as observe:
            for event in run:
                observe(event)
    except BaseException:
        writer.forget_if_unused()
        raise
    metadata = {**run.metadata, "source": str(job.source)}
    where = write_or_save_elsewhere(writer, run.result, metadata)
    return FileOutcome(job.source, where, metadata, len(writer.records) if whole else 0, notes)


def write_or_save_elsewhere(writer: Any, result: np.ndarray, metadata: dict[str, Any]) -> Path:
    """Write a computed result where asked; failing that for any reason, save it to
    :func:`fallback_path` (with its metadata, or failing that too as a bare float32 TIFF) and
    raise OSError naming both, so that a result is never lost to a writing problem."""
    try:
        return writer.write(result, metadata)
    except Exception as exc:  # noqa: BLE001 - whatever went wrong, the result must land somewhere
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else f"{type(exc).__name__}: {exc}"
    fallback = fallback_path(writer.destination)
    try:
        where = writer.write(result, metadata, fallback)
    except Exception:  # noqa: BLE001 - the metadata itself may be the problem: keep the pixels
        import tifffile

        where = fallback.with_name(fallback.stem + "-pixels-only.tif")
        tifffile.imwrite(where, np.asarray(result, dtype=np.float32), photometric="minisblack")
        try:
            where.with_suffix(".json").write_text(json.dumps(metadata, default=str))
        except OSError:
            pass
    raise OSError(f"cannot write {writer.destination} ({reason}); the result was saved to {where}")


def denoise_file_on_worker(job: Job, request: FileRequest, key: dict[str, Any],
                           continuing: bool) -> tuple[FileOutcome | None, str | None]:
    """:func:`denoise_file` as a Dask task: torch uses as many threads as the worker has.

    A file's failure comes back as its one-line message, not as a failed task, so that Dask
    logs no traceback and the others go on.
    """
    import torch
    from distributed import get_worker

    torch.set_num_threads(max(1, int(get_worker().state.nthreads)))
    try:
        return denoise_file(job, request, key, continuing=continuing), None
    except Exception as exc:  # noqa: BLE001 - reported by file name, like a local batch
        return None, str(exc) or type(exc).__name__


def denoise_on_dask(jobs: list[Job], request: FileRequest, keys: dict[Job, dict[str, Any]], continuing: set[Job],
                    scheduler: str, *, workers: int | None = None,
                    report: Callable[[Job, FileOutcome | None, BaseException | None], None]) -> None:
    """Run each job as a task on a Dask ``distributed`` cluster: ``scheduler`` is an address, or
    ``"local"`` for a :class:`~distributed.LocalCluster` of ``workers`` single-threaded processes.

    ``report(job, outcome, error)`` is called as each task ends, with its outcome or the
    error it raised; one failing task does not stop the others. Each task writes its own
    output, so finished files are kept whatever happens to the rest.
    """
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise RuntimeError("--dask needs the distributed package: pip install 'napari-zsdenoise[cluster]'") from None
    import logging

    with contextlib.ExitStack() as stack:
        if scheduler == "local":
            # Its workers' own log lines are not the user's business: errors come back by file name.
            cluster = stack.enter_context(LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1,
                                                       processes=True, dashboard_address=None,
                                                       silence_logs=logging.ERROR))
            client = stack.enter_context(Client(cluster))
        else:
            client = stack.enter_context(Client(scheduler))
        futures = {client.submit(denoise_file_on_worker, job, request, keys[job], job in continuing, pure=False,
                                 key=f"denoise-{index}-{job.source.name}"): job for index, job in enumerate(jobs)}
        try:
            for future in as_completed(futures):
                job = futures[future]
                try:
                    outcome, message = future.result()
                except Exception as exc:  # noqa: BLE001 - a lost worker or the like: reported by file name
                    report(job, None, exc)
                else:
                    report(job, outcome, None if message is None else RuntimeError(message))
        except KeyboardInterrupt:
            client.cancel(list(futures))
            raise
