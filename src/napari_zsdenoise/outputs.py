"""Where results go while a run computes them: finished planes are saved as they come,
and a stopped run continues from its first unfinished plane.

Two output formats, chosen by the output's name:

- TIFF (``.tif``/``.tiff``): the file is written once, atomically, when the run ends
  (complete or stopped). Until then each finished plane of a stack goes to a progress
  folder next to it, ``<name>.partial/`` (``planes.npy``, a memory map of the whole
  result, and ``progress.json``, the finished planes' records). It survives a crash or a
  kill; the same command then continues from it, and it is removed once the TIFF is
  complete.
- OME-Zarr (``.ome.zarr``/``.zarr``, NGFF 0.4 in Zarr format 2): the store itself is
  written plane by plane, with the finished planes' records in its attributes.

No Qt or napari here; the CLI uses it, and anything else may.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from napari_zsdenoise.io import TIFF_SUFFIXES, ImageInfo, imagej_axes, read_tiff_metadata, write_tiff_atomic

ZARR_SUFFIXES = (".ome.zarr", ".zarr")
OUTPUT_FORMATS = "TIFF (.tif, .tiff) or OME-Zarr (.ome.zarr, .zarr)"
#: Attribute of an OME-Zarr output's group holding the provenance.
ZARR_PROVENANCE = "napari_zsdenoise"
# NGFF 0.4 orders axes time, channel, then space.
_NGFF_ORDER = "TCZYX"
_NGFF_TYPES = {"T": "time", "C": "channel", "Z": "space", "Y": "space", "X": "space"}
_NGFF_UNITS = {"um": "micrometer", "µm": "micrometer", "micron": "micrometer", "microns": "micrometer",
               "micrometer": "micrometer", "nm": "nanometer", "nanometer": "nanometer", "mm": "millimeter",
               "millimeter": "millimeter"}
Index = tuple[int, ...]


def is_zarr_path(path: Path) -> bool:
    return path.name.lower().endswith(ZARR_SUFFIXES)


def is_output_path(path: Path) -> bool:
    """Whether ``path``'s name gives an output format this package writes."""
    return path.suffix.lower() in TIFF_SUFFIXES or is_zarr_path(path)


def check_output_layout(path: Path, ndim: int) -> None:
    """Raise ValueError (before any computing) when the format of ``path`` cannot hold ``ndim`` axes."""
    if is_zarr_path(path) and ndim > len(_NGFF_ORDER):
        raise ValueError(f"OME-Zarr holds at most {len(_NGFF_ORDER)} axes (t, c, z, y, x); the result has {ndim}: "
                         f"write it as .tif instead")


def read_provenance(path: Path) -> dict[str, Any]:
    """The provenance stored in an output of either format (empty if none)."""
    if is_zarr_path(path):
        import zarr

        return dict(zarr.open_group(str(path), mode="r").attrs.get(ZARR_PROVENANCE, {}))
    return read_tiff_metadata(path)


#: Where an output's provenance keeps the key of the run that wrote it.
RESUME_KEY = "resume_key"


def matches_key(provenance: dict[str, Any], key: dict[str, Any]) -> bool:
    """Whether ``provenance`` comes from a run with this key (the input's content, method, settings,
    seed, scaling, precision, plane).

    Results of releases that recorded no key did not fingerprint their input, so nothing
    says they were computed from the data there now: they never match.
    """
    return provenance.get(RESUME_KEY) == key


def progress_folder(destination: Path) -> Path:
    """Where a TIFF output's finished planes wait while its stack is computed."""
    return destination.with_name(destination.name + ".partial")


def read_progress(destination: Path) -> dict[str, Any] | None:
    """What a TIFF output's progress folder records (key, shape, finished planes), or None if none."""
    try:
        progress = json.loads((progress_folder(destination) / "progress.json").read_text())
    except (OSError, ValueError):
        return None
    return progress if isinstance(progress, dict) else None


class ResultWriter(ABC):
    """Saves one run's result: each finished plane as it comes, then the whole result.

    Parameters
    ----------
    destination : Path
        The output's path.
    key : dict
        What identifies the run (input, method, settings, seed); saved planes are used
        again only by a run with the same key.
    shape : tuple of int
        The result's shape (leading axes, then Y and X).
    info : ImageInfo
        The physical layout to carry over from the input.
    """

    def __init__(self, destination: Path, key: dict[str, Any], shape: tuple[int, ...], info: ImageInfo) -> None:
        self.destination = destination
        self.key = key
        self.shape = tuple(int(n) for n in shape)
        self.info = info
        self.records: dict[Index, dict[str, Any]] = {}
        # Whether this writer made what is at (or beside) the destination: a run refused before
        # its first plane was saved removes it again (see forget_if_unused).
        self.created = False

    @abstractmethod
    def finished_planes(self) -> dict[Index, tuple[np.ndarray, dict[str, Any]]]:
        """Planes an earlier run with the same key finished: index -> (estimate, record)."""

    def output_array(self) -> Any:
        """A writable float32 array of the result's shape that the run may fill plane by plane
        (kept on disk, so the result need not fit in memory), or None."""
        return None

    @abstractmethod
    def save_plane(self, index: Index, estimate: np.ndarray, record: dict[str, Any]) -> None:
        """Keep one finished plane, durably, before the run goes on."""

    @abstractmethod
    def write(self, result: np.ndarray, metadata: dict[str, Any], path: Path | None = None) -> Path:
        """Write the whole result (complete or stopped) with its provenance; return where it went."""

    @abstractmethod
    def discard(self) -> None:
        """Forget any progress kept for this destination (a fresh start was asked for)."""

    def forget_if_unused(self) -> None:
        """Remove what this writer created when no plane was saved in it (the run was refused
        or failed before finishing one), so that a refused run leaves nothing behind."""
        if self.created and not self.records:
            self.discard()


class TiffResultWriter(ResultWriter):
    """TIFF output; a stack's finished planes wait in :func:`progress_folder` (see the module)."""

    def __init__(self, destination: Path, key: dict[str, Any], shape: tuple[int, ...], info: ImageInfo) -> None:
        super().__init__(destination, key, shape, info)
        self.folder = progress_folder(destination)
        self._planes: np.memmap | None = None

    def _progress_matches(self) -> bool:
        progress = read_progress(self.destination)
        return progress is not None and progress.get("key") == self.key and progress.get("shape") == list(self.shape)

    def finished_planes(self) -> dict[Index, tuple[np.ndarray, dict[str, Any]]]:
        if not self._progress_matches():
            return {}
        progress = json.loads((self.folder / "progress.json").read_text())
        planes = np.load(self.folder / "planes.npy", mmap_mode="r")
        found = {}
        for record in progress["planes"]:
            index = tuple(record["index"])
            found[index] = (np.array(planes[index] if index else planes), record)
        self.records = {index: record for index, (_, record) in found.items()}
        return found

    def _open_planes(self) -> np.memmap:
        if self._planes is None:
            if self._progress_matches():
                self._planes = np.load(self.folder / "planes.npy", mmap_mode="r+")
                self.records = {tuple(r["index"]): r for r in
                                json.loads((self.folder / "progress.json").read_text())["planes"]}
            else:
                self.discard()
                self.folder.mkdir(parents=True)
                self.created = True
                self._planes = np.lib.format.open_memmap(self.folder / "planes.npy", mode="w+", dtype=np.float32,
                                                         shape=self.shape)
        return self._planes

    def output_array(self) -> np.memmap | None:
        # A single plane is the whole result: nothing to continue from, nothing to map.
        return None if len(self.shape) == 2 else self._open_planes()

    def save_plane(self, index: Index, estimate: np.ndarray, record: dict[str, Any]) -> None:
        if len(self.shape) == 2:
            return
        planes = self._open_planes()
        planes[index] = estimate
        planes.flush()
        self.records[index] = record
        progress = {"key": self.key, "shape": list(self.shape), "planes": list(self.records.values())}
        temporary = self.folder / "progress.json.tmp"
        temporary.write_text(json.dumps(progress, default=str))
        os.replace(temporary, self.folder / "progress.json")

    def write(self, result: np.ndarray, metadata: dict[str, Any], path: Path | None = None) -> Path:
        where = path or self.destination
        write_tiff_atomic(where, result, metadata={**metadata, RESUME_KEY: self.key}, overwrite=True,
                          info=self.info.for_planes(result.ndim))
        if where == self.destination and not metadata.get("stopped_early"):
            self.discard()
        return where

    def discard(self) -> None:
        self._planes = None
        self.records = {}
        if self.folder.exists():
            shutil.rmtree(self.folder)


class ZarrResultWriter(ResultWriter):
    """OME-Zarr output (NGFF 0.4), written plane by plane into the store itself."""

    def __init__(self, destination: Path, key: dict[str, Any], shape: tuple[int, ...], info: ImageInfo) -> None:
        check_output_layout(destination, len(shape))
        super().__init__(destination, key, shape, info)
        self.axes = _ngff_axes(info, len(shape))
        # Position of each of the store's axes among the result's axes.
        self._order = [self.axes.index(axis) for axis in sorted(self.axes, key=_NGFF_ORDER.index)]
        self._array = None

    def _stored_provenance(self) -> dict[str, Any]:
        try:
            return read_provenance(self.destination)
        except Exception:  # noqa: BLE001 - absent or not a store of ours
            return {}

    def _store_index(self, index: Index) -> Index:
        full = tuple(index) + (slice(None), slice(None))
        return tuple(full[axis] for axis in self._order)

    def finished_planes(self) -> dict[Index, tuple[np.ndarray, dict[str, Any]]]:
        provenance = self._stored_provenance()
        if not matches_key(provenance, self.key):
            return {}
        import zarr

        array = zarr.open_array(str(self.destination / "0"), mode="r")
        found = {tuple(r["index"]): (np.asarray(array[self._store_index(tuple(r["index"]))]), r)
                 for r in provenance.get("finished_planes", [])}
        self.records = {index: record for index, (_, record) in found.items()}
        return found

    def _open(self):
        if self._array is None:
            import zarr

            provenance = self._stored_provenance()
            if provenance and matches_key(provenance, self.key):
                self._array = zarr.open_array(str(self.destination / "0"), mode="r+")
                self.records = {tuple(r["index"]): r for r in provenance.get("finished_planes", [])}
            else:
                self._create()
        return self._array

    def _create(self) -> None:
        import zarr

        if self.destination.exists():
            shutil.rmtree(self.destination)
        self.created = True
        group = zarr.open_group(str(self.destination), mode="w", zarr_format=2)
        stored_shape = tuple(self.shape[axis] for axis in self._order)
        chunks = tuple(1 for _ in stored_shape[:-2]) + stored_shape[-2:]
        self._array = group.create_array("0", shape=stored_shape, chunks=chunks, dtype="float32", fill_value=0.0)
        group.attrs["multiscales"] = [_ngff_multiscale(self.destination, self.axes, self._order, self.info)]
        self.records = {}
        self._save_attributes({RESUME_KEY: self.key, "complete": False, "finished_planes": []})

    def _save_attributes(self, provenance: dict[str, Any]) -> None:
        import zarr

        group = zarr.open_group(str(self.destination), mode="r+")
        group.attrs[ZARR_PROVENANCE] = json.loads(json.dumps(provenance, default=str))

    def output_array(self) -> Any:
        # Written into directly only when the store keeps the result's axis order.
        return self._open() if self._order == sorted(self._order) else None

    def save_plane(self, index: Index, estimate: np.ndarray, record: dict[str, Any]) -> None:
        array = self._open()
        array[self._store_index(index)] = estimate
        self.records[index] = record
        self._save_attributes({RESUME_KEY: self.key, "complete": False, "finished_planes": list(self.records.values())})

    def write(self, result: np.ndarray, metadata: dict[str, Any], path: Path | None = None) -> Path:
        if path is not None and path != self.destination:
            return ZarrResultWriter(path, self.key, self.shape, self.info).write(result, metadata)
        array = self._open()
        if result is not array:
            array[...] = np.transpose(result, self._order)
        finished = list(self.records.values()) if metadata.get("stopped_early") else metadata.get("planes", [])
        self._save_attributes({**metadata, RESUME_KEY: self.key, "complete": not metadata.get("stopped_early"),
                               "finished_planes": finished})
        return self.destination

    def discard(self) -> None:
        self._array = None
        self.records = {}
        if self.destination.exists():
            shutil.rmtree(self.destination)


def result_writer(destination: Path, key: dict[str, Any], shape: tuple[int, ...], info: ImageInfo) -> ResultWriter:
    """The writer for ``destination``'s format (see :data:`OUTPUT_FORMATS`)."""
    if is_zarr_path(destination):
        return ZarrResultWriter(destination, key, shape, info)
    if destination.suffix.lower() in TIFF_SUFFIXES:
        return TiffResultWriter(destination, key, shape, info)
    raise ValueError(f"cannot write {destination.name}: name the output {OUTPUT_FORMATS}")


def _ngff_axes(info: ImageInfo, ndim: int) -> str:
    """The result's axis letters for NGFF: the input's where known and valid, else a default."""
    axes = info.axes if info.axes and len(info.axes) == ndim and info.axes.endswith("YX") else None
    if axes is None or len(set(axes)) != ndim or any(axis not in _NGFF_ORDER for axis in axes):
        axes = imagej_axes(None, ndim) or _NGFF_ORDER[-ndim:]
    return axes


def _ngff_multiscale(destination: Path, axes: str, order: list[int], info: ImageInfo) -> dict[str, Any]:
    unit = _NGFF_UNITS.get((info.unit or "").strip().lower())
    scale = {"T": 1.0, "C": 1.0, "Z": info.z_spacing or 1.0}
    if info.pixel_size:
        scale["Y"], scale["X"] = info.pixel_size
    stored = [axes[axis] for axis in order]
    described = []
    for axis in stored:
        entry = {"name": axis.lower(), "type": _NGFF_TYPES[axis]}
        if unit and _NGFF_TYPES[axis] == "space":
            entry["unit"] = unit
        described.append(entry)
    name = destination.name
    for suffix in ZARR_SUFFIXES:
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return {"version": "0.4", "name": name, "axes": described,
            "datasets": [{"path": "0", "coordinateTransformations": [
                {"type": "scale", "scale": [float(scale.get(axis, 1.0)) for axis in stored]}]}]}


def lock_path(destination: Path) -> Path:
    """The lock file beside an output while a run writes it."""
    return destination.with_name(destination.name + ".lock")


class OutputBusy(OSError):
    """Another running process writes this output."""


class OutputLock:
    """Marks ``destination`` as being written by this process, so that a second run of any
    command refuses it instead of mixing its planes into this one's.

    The lock file holds who took it (process, machine, time, for the message). On POSIX
    systems it is also held with ``flock``, which the operating system releases when the
    process dies however it dies: a lock file whose ``flock`` can be taken is stale, left by
    a killed process. Without ``flock`` a lock is stale when its process no longer runs on
    this machine.
    """

    def __init__(self, destination: Path) -> None:
        self.destination = Path(destination)
        self.path = lock_path(self.destination)
        self._descriptor: int | None = None
        self._created_folders: list[Path] = []
        #: Who held the stale lock this one replaced (a killed run), if any.
        self.stale_holder: dict[str, Any] | None = None

    def __enter__(self) -> OutputLock:
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def acquire(self) -> None:
        """Take the lock; raise :class:`OutputBusy` naming the process that holds it.

        Folders missing on the way to the output are created for the lock and removed again by
        :meth:`release` while they are empty, so that a refused run leaves nothing behind.
        """
        folder, self._created_folders = self.path.parent, []
        while not folder.exists() and folder != folder.parent:
            self._created_folders.append(folder)
            folder = folder.parent
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._take()
        except BaseException:
            self._remove_created_folders()
            raise

    def _take(self) -> None:
        while True:
            descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            if not _try_flock(descriptor):
                holder = _read_holder(descriptor)
                os.close(descriptor)
                raise OutputBusy(f"{self.destination} is being written by {_describe_holder(holder)}; wait for that "
                                 f"run to end, or stop it, before running this one")
            # A run that released the lock in between removed the file this descriptor opened: take the new one.
            try:
                same_file = os.path.samestat(os.fstat(descriptor), os.stat(self.path))
            except FileNotFoundError:
                same_file = False
            if same_file:
                break
            os.close(descriptor)
        holder = _read_holder(descriptor)
        if holder and not (_flock is None and _is_running(holder)):
            self.stale_holder = holder
        elif holder:
            os.close(descriptor)
            raise OutputBusy(f"{self.destination} is being written by {_describe_holder(holder)}; wait for that "
                             f"run to end, or stop it, before running this one")
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(descriptor, 0)
        os.lseek(descriptor, 0, os.SEEK_SET)
        os.write(descriptor, json.dumps(me).encode())
        self._descriptor = descriptor

    def release(self) -> None:
        if self._descriptor is None:
            return
        # Removed while still held, so that no other run can take a file about to disappear.
        self.path.unlink(missing_ok=True)
        os.close(self._descriptor)
        self._descriptor = None
        self._remove_created_folders()

    def _remove_created_folders(self) -> None:
        for folder in self._created_folders:  # the deepest first
            try:
                folder.rmdir()
            except OSError:
                break  # it holds results now
        self._created_folders = []


def lock_holder(destination: Path) -> dict[str, Any] | None:
    """Who writes ``destination`` now (a live run's lock), or None when nobody does."""
    path = lock_path(Path(destination))
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        holder = _read_holder(descriptor)
        if _flock is not None:
            return None if _try_flock(descriptor, shared=True) else (holder or {})
        return holder if holder and _is_running(holder) else None
    finally:
        os.close(descriptor)


def describe_lock_holder(holder: dict[str, Any]) -> str:
    return _describe_holder(holder)


try:
    import fcntl as _flock
except ImportError:  # Windows: no flock; the holder's process id decides
    _flock = None  # type: ignore[assignment]


def _try_flock(descriptor: int, *, shared: bool = False) -> bool:
    """Take a lock on the open file without waiting; False when another process holds it."""
    if _flock is None:
        return True
    try:
        _flock.flock(descriptor, (_flock.LOCK_SH if shared else _flock.LOCK_EX) | _flock.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _read_holder(descriptor: int) -> dict[str, Any]:
    try:
        os.lseek(descriptor, 0, os.SEEK_SET)
        holder = json.loads(os.read(descriptor, 4096).decode() or "{}")
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


def _is_running(holder: dict[str, Any]) -> bool:
    if holder.get("host") not in (None, socket.gethostname()):
        return True  # another machine's process cannot be checked from here: assume it runs
    try:
        os.kill(int(holder.get("pid", -1)), 0)
    except (OSError, ValueError, OverflowError):
        return False
    return True


def _describe_holder(holder: dict[str, Any]) -> str:
    if not holder:
        return "another process"
    return (f"process {holder.get('pid', '?')} on {holder.get('host', '?')} (since {holder.get('started', '?')})")
