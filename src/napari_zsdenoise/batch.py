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

from napari_zsdenoise.io import READABLE_SUFFIXES, TIFF_SUFFIXES
from napari_zsdenoise.outputs import (
    OUTPUT_FORMATS,
    check_output_layout,
    is_output_path,
    is_zarr_path,
    matches_key,
    progress_folder,
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
        jobs = [Job(p, output / (p.stem + ".tif")) for p in inputs]
    elif not source.is_file():
        raise FileNotFoundError(f"no such file or folder: {source}")
    elif output_is_folder:
        jobs = [Job(source, output / (source.stem + ".tif"))]
    else:
        if not is_output_path(output):
            raise ValueError(f"cannot write {output.name}: name the output {OUTPUT_FORMATS}")
        jobs = [Job(source, output)]
    _check_collisions(jobs)
    return jobs


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
    if path.suffix.lower() in TIFF_SUFFIXES:
        import tifffile

        with tifffile.TiffFile(path) as tif:
            return tuple(int(n) for n in tif.series[0].shape)
    from PIL import Image

    with Image.open(path) as image:
        width, height = image.size
        channels = len(image.getbands())
    return (height, width) if channels == 1 else (height, width, channels)


def resume_key(source: Path, method: str, parameters: dict[str, Any], seed: int, normalization: str,
               camera_offset: float = 0.0) -> dict[str, Any]:
    """What an output's provenance must say for the same command to skip it as done or continue it.

    The camera offset is part of it: a result with another offset has another zero.
    """
    return json.loads(json.dumps({"source": str(source), "method": method, "parameters": parameters, "seed": seed,
                                  "normalization": normalization, "camera_offset": float(camera_offset)}))


def output_state(job: Job, key: dict[str, Any]) -> str:
    """What ``job``'s output is: ``"new"`` (absent), ``"done"`` (complete, from the same input,
    method, settings and seed), ``"partial"`` (the same, but stopped or killed before the
    end: the same command continues it) or ``"other"`` (anything else there)."""
    progress = progress_folder(job.destination)
    if not job.destination.exists():
        progress_key = _progress_key(progress)
        return ("partial" if not is_zarr_path(job.destination) and progress_key is not None
                and matches_key(progress_key, key) else "new")
    try:
        provenance = read_provenance(job.destination) if job.destination.is_file() or is_zarr_path(job.destination) else {}
    except Exception:  # noqa: BLE001 - an unreadable file is simply not ours
        return "other"
    if not matches_key(provenance, key):
        return "other"
    unfinished = (provenance.get("stopped_early") or provenance.get("planes_not_denoised")
                  or provenance.get("complete") is False)
    return "partial" if unfinished else "done"


def _progress_key(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / "progress.json").read_text()).get("key")
    except (OSError, ValueError):
        return None


def check_outputs(jobs: list[Job], *, overwrite: bool, replaceable: frozenset[Path] = frozenset()) -> None:
    """Before any computing: each output folder can be created and written, no output is a
    folder or (without ``overwrite``) an existing file other than ``replaceable`` ones (a
    stopped run's own partial output), and the disk has room for the results.

    Raises
    ------
    FileExistsError, PermissionError, NotADirectoryError, OSError
        Naming the path and the problem.
    """
    existing = [str(job.destination) for job in jobs if job.destination.exists()]
    folders_as_outputs = [path for path in existing if Path(path).is_dir() and not is_zarr_path(Path(path))]
    zarr_files = [path for path in existing if Path(path).is_file() and is_zarr_path(Path(path))]
    if zarr_files:
        raise FileExistsError(f"an OME-Zarr output is a folder, but these are files: {', '.join(zarr_files)}")
    if folders_as_outputs:
        raise IsADirectoryError(f"cannot write over folder(s): {', '.join(folders_as_outputs)}")
    existing = [path for path in existing if Path(path) not in replaceable]
    if existing and not overwrite:
        raise FileExistsError(f"refusing to overwrite {', '.join(existing)} (use --overwrite)")
    needed: dict[Path, int] = {}
    for job in jobs:
        folder = job.destination.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OSError(f"cannot create the output folder {folder}: {exc.strerror or exc}") from None
        if not os.access(folder, os.W_OK | os.X_OK):
            raise PermissionError(f"cannot write to the output folder {folder}: permission denied")
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
        needed[folder] = needed.get(folder, 0) + size
    for folder, size in needed.items():
        free = shutil.disk_usage(folder).free
        if size + _SPARE_BYTES > free:
            raise OSError(f"the results need about {size / 2**20:.0f} MB in {folder}, which has {free / 2**20:.0f} MB free")


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

    Each finished plane of a stack is saved as soon as it is done, and planes an earlier
    run with the same ``key`` finished are taken from there. ``say`` receives the lines a
    user should read (continuing, a plane that could not be saved); ``watch(run)``, if
    given, is a context manager entered around the run that returns a callable receiving
    each progress event (the CLI's progress line and Ctrl-C handling).

    Raises
    ------
    OSError
        When the result cannot be written where asked; it is then written to
        :func:`fallback_path`, which the message names.
    """
    from napari_zsdenoise.engine import DenoiseRun
    from napari_zsdenoise.io import read_image, read_image_info
    from napari_zsdenoise.outputs import result_writer

    notes: list[str] = []

    def tell(text: str) -> None:
        notes.append(text)
        if say is not None:
            say(text)

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

    run = DenoiseRun(image, request.method, device=request.device, precision=request.precision,
                     normalization=request.normalization, camera_offset=request.camera_offset,
                     seed=request.seed, plane=request.plane,
                     preview_every=0, preview_interval=1.0, finished_planes=finished,
                     on_plane_finished=save_plane if whole else None,
                     output=writer.output_array() if whole else None, **request.overrides)
    with (watch(run) if watch is not None else contextlib.nullcontext(lambda event: None)) as observe:
        for event in run:
            observe(event)
    metadata = {**run.metadata, "source": str(job.source)}
    try:
        where = writer.write(run.result, metadata)
    except OSError as exc:
        where = writer.write(run.result, metadata, fallback_path(job.destination))
        raise OSError(f"cannot write {job.destination} ({exc.strerror or exc}); the result was saved to {where}") from None
    return FileOutcome(job.source, where, metadata, len(writer.records) if whole else 0, notes)


def denoise_file_on_worker(job: Job, request: FileRequest, key: dict[str, Any], continuing: bool) -> FileOutcome:
    """:func:`denoise_file` as a Dask task: torch uses as many threads as the worker has."""
    import torch
    from distributed import get_worker

    torch.set_num_threads(max(1, int(get_worker().state.nthreads)))
    return denoise_file(job, request, key, continuing=continuing)


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
    with contextlib.ExitStack() as stack:
        if scheduler == "local":
            cluster = stack.enter_context(LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1,
                                                       processes=True, dashboard_address=None))
            client = stack.enter_context(Client(cluster))
        else:
            client = stack.enter_context(Client(scheduler))
        futures = {client.submit(denoise_file_on_worker, job, request, keys[job], job in continuing, pure=False,
                                 key=f"denoise-{index}-{job.source.name}"): job for index, job in enumerate(jobs)}
        try:
            for future in as_completed(futures):
                job = futures[future]
                try:
                    outcome = future.result()
                except Exception as exc:  # noqa: BLE001 - any task's failure is reported by file name
                    report(job, None, exc)
                else:
                    report(job, outcome, None)
        except KeyboardInterrupt:
            client.cancel(list(futures))
            raise
