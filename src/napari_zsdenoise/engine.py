"""The denoising engine: one loop that every method, the CLI and the napari widget share.

It imports neither Qt nor napari. Use :func:`denoise` for a blocking call, or iterate a
:class:`DenoiseRun` to receive :class:`ProgressEvent` s (with previews) while it works.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from napari_zsdenoise._runtime import CpuThreads, large_allocations_on_the_heap
from napari_zsdenoise._validation import check_finite, check_image_array, check_seed
from napari_zsdenoise.methods.registry import config_parameters, get_method_spec, recommended_method
from napari_zsdenoise.normalization import NORMALIZATIONS, IntensityScaling, stack_sample, subtract_baseline


# Reading a loss makes the host wait for the device. On a GPU that happens only every this
# many steps and when a preview is due; on the CPU it costs nothing, so every step.
LOSS_READ_EVERY = 20


def loss_is_read(device_type: str, iteration: int, preview_due: bool) -> bool:
    """Whether the engine reads this step's loss (see ``LOSS_READ_EVERY``)."""
    return device_type == "cpu" or preview_due or iteration % LOSS_READ_EVERY == 0


@dataclass(frozen=True)
class ProgressEvent:
    """A snapshot of a running denoise.

    Attributes
    ----------
    iteration : int
        Iterations finished on the current plane (1-based).
    total : int
        Iterations planned per plane.
    loss : float
        Training loss of the latest iteration whose loss was read (normalised units): on
        a GPU it may be up to ``LOSS_READ_EVERY`` steps old between previews.
    preview : numpy.ndarray or None
        Current estimate of the plane (2-D float32, input intensity units less the camera
        offset), or None on events emitted between previews.
    elapsed : float
        Seconds since the run started.
    plane : int
        Position of the current plane among the planes being processed (0-based).
    n_planes : int
        Number of planes being processed.
    plane_index : tuple of int
        Index of the current plane in the input's leading axes (empty for 2-D input).
    scores : Mapping[str, float]
        Named figures the method computed in this step (e.g. a held-out check), if any.
    plane_elapsed : float
        Seconds since the current plane started.
    seconds_per_plane : float or None
        Mean seconds of the planes this run has finished so far (None before the first):
        with early stopping a plane rarely runs all ``total`` iterations, so the planes
        already done predict the rest better than the iteration budget does.
    seconds_left : float or None
        The run's own estimate of the seconds until it ends (see :attr:`eta_seconds`).
    """

    iteration: int
    total: int
    loss: float
    preview: np.ndarray | None
    elapsed: float
    plane: int
    n_planes: int
    plane_index: tuple[int, ...]
    scores: Mapping[str, float] = field(default_factory=dict)
    plane_elapsed: float = 0.0
    seconds_per_plane: float | None = None
    seconds_left: float | None = None

    @property
    def fraction_done(self) -> float:
        """Fraction of the whole run finished, in [0, 1]: of its expected time when the run estimated it."""
        if self.seconds_left is not None and self.elapsed > 0:
            return self.elapsed / (self.elapsed + self.seconds_left)
        return (self.plane * self.total + self.iteration) / (self.n_planes * self.total)

    @property
    def eta_seconds(self) -> float | None:
        """Estimated seconds until the whole run finishes, or None before the first step.

        A :class:`DenoiseRun` fills :attr:`seconds_left` from its plan (:meth:`DenoiseRun.expected_seconds_left`);
        an event without it estimates from the iteration budget and the planes finished.
        """
        if self.seconds_left is not None:
            return self.seconds_left
        if self.seconds_per_plane is None:
            done = self.fraction_done
            return None if done <= 0 else self.elapsed * (1 - done) / done
        # The current plane at the pace of its own iterations so far, but no longer than a typical
        # plane of this run; every later plane as long as a typical one.
        at_this_pace = self.plane_elapsed * (self.total - self.iteration) / max(self.iteration, 1)
        this_plane = min(at_this_pace, max(self.seconds_per_plane - self.plane_elapsed, 0.0))
        return this_plane + (self.n_planes - self.plane - 1) * self.seconds_per_plane


class DenoiseRun:
    """A denoise of one image (2-D, or a stack of 2-D planes along its leading axes).

    Iterate it to run; each yielded :class:`ProgressEvent` reports progress. After the
    loop, :attr:`result` holds the denoised array and :attr:`metadata` its provenance.
    :meth:`stop` (safe from another thread) ends the run after the current iteration
    and keeps what was computed so far: the interrupted plane's current estimate, and the
    input values in the planes never reached (listed in ``metadata["planes_not_denoised"]``).

    The method is built and set up (weights loaded) on construction, so bad settings or
    weights fail here, before any computing. A run runs once: iterating it again raises
    RuntimeError. :meth:`stop` before iterating gives the input (less ``camera_offset``)
    as the result, with ``stopped_early`` True and every plane listed as not denoised.

    Parameters
    ----------
    image : array-like
        Real-valued image, ``ndim >= 2``; the last two axes are Y and X. Never modified.
        numpy, dask and zarr arrays and memory maps are read plane by plane; other
        array-likes (lists, torch tensors) are converted to numpy first.
    method : str, optional
        A registered method or preset name (see :func:`napari_zsdenoise.method_names`); by default the
        recommended preset (:func:`napari_zsdenoise.methods.registry.recommended_method`), as in the CLI and the dock.
    config : dataclass, optional
        Complete settings for the method; by default the preset's, updated by ``overrides``.
    device : str, optional
        ``"auto"`` / None (CUDA, then MPS, then CPU), or e.g. ``"cpu"``, ``"cuda:1"``, ``"mps"``.
    precision : {"auto", "fp32", "bf16"}
        What the training steps compute in. ``"auto"``: bfloat16 autocast where the device
        has fast bf16 (CPUs with bf16 instructions, CUDA Ampere and newer) and the method
        allows it (:attr:`DenoisingMethod.bf16_safe`), else fp32. The choice is recorded
        in the provenance.
    normalization : {"plane", "stack"}
        How intensities are scaled for the network: each plane by its own robust
        percentiles, or every plane of a stack by the same ones (fitted on evenly spaced
        planes), which keeps the noise of dim, out-of-focus planes from being stretched.
        The result is always in the input's units.
    camera_offset : float
        The constant a camera adds to every pixel (e.g. 100 ADU on many sCMOS cameras), in
        the input's units. It is subtracted from the input before the intensity scaling, and
        the result is in the input's units with it removed: zero is no light above the
        camera's baseline. Values below the offset are kept, not clipped, because clipping
        would bias the noise. As the scaling is an affine percentile stretch, the denoising
        itself does not change with the offset; only the result's zero moves. Recorded in
        the provenance.
    seed : int
        Seeds network initialisation and masks; the same seed on the same device
        reproduces a run.
    plane : int or tuple of int, optional
        Process only this plane (index into the leading axes; an int indexes them
        flattened). The result is then 2-D.
    preview_every : int
        Attach a preview at least every this many iterations (0: never by count).
    preview_interval : float
        Also attach a preview when this many seconds have passed since the last one
        (0: never by time).
    finished_planes : Mapping, optional
        Planes already denoised by an earlier run with the same settings (plane index ->
        (estimate, provenance record)): they are taken as they are, not computed again,
        and their records say ``"resumed": True``.
    on_plane_finished : callable, optional
        Called as ``on_plane_finished(index, estimate, record)`` as soon as a plane is
        denoised to its end (not for a plane cut short by :meth:`stop`), so that a caller
        can save finished work while the run goes on.
    output : array-like, optional
        A writable float32 array of :attr:`output_shape` (a memory map, a zarr array) that
        receives each plane as it is computed and becomes :attr:`result`, so that a
        stack's result need not fit in memory. By default a new numpy array.
    threads : int, optional
        CPU threads of a run on the CPU. None or 0: the cores other processes leave free, looked at
        before the first step and every few seconds while the run computes (a core another program keeps
        busy would make every step wait for it); a number fixes them, as ``OMP_NUM_THREADS`` does. Seeded
        runs repeat exactly with the same thread count; the counts used are in the provenance
        (``cpu_threads``).
    **overrides
        Settings of the method's config to change, e.g. ``iterations=50``.
    """

    def __init__(
        self,
        image: Any,
        method: str | None = None,
        *,
        config: Any = None,
        device: str | None = None,
        precision: str = "auto",
        normalization: str = "plane",
        camera_offset: float = 0.0,
        seed: int = 0,
        plane: int | tuple[int, ...] | None = None,
        preview_every: int = 10,
        preview_interval: float = 0.25,
        finished_planes: Mapping[tuple[int, ...], tuple[np.ndarray, dict[str, Any]]] | None = None,
        on_plane_finished: Callable[[tuple[int, ...], np.ndarray, dict[str, Any]], None] | None = None,
        output: Any = None,
        threads: int | None = None,
        **overrides: Any,
    ) -> None:
        self.spec = get_method_spec(recommended_method() if method is None else method)
        self.config = self.spec.resolve_config(config, **overrides)
        seed = check_seed(seed)
        self.camera_offset = _checked_camera_offset(camera_offset)
        if preview_every < 0 or preview_interval < 0:
            raise ValueError("preview_every and preview_interval must be >= 0")
        image = _as_image_array(image)
        self.shape = check_image_array(image, min_size=self.config.min_size)
        self.image = image
        self.seed = int(seed)
        self.preview_every = int(preview_every)
        self.preview_interval = float(preview_interval)
        self._plane_indices = self._select_planes(plane)
        self._single_plane = plane is not None
        self._finished_planes = self._check_finished_planes(finished_planes or {})
        self._on_plane_finished = on_plane_finished
        if output is not None and (tuple(output.shape) != self.output_shape or np.dtype(output.dtype) != np.float32):
            raise ValueError(f"output must be a float32 array of shape {self.output_shape}; got {np.dtype(output.dtype)} "
                             f"{tuple(output.shape)}")
        self._output = output
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, (int, np.integer))
                                    or threads < 0):
            raise ValueError(f"threads must be a whole number >= 0 (0: chosen from the free cores); got {threads!r}")
        self.threads = int(threads) if threads else None
        self._cpu_threads: CpuThreads | None = None
        # Every value is checked now, so that a bad one fails before any torch work rather than
        # after the planes before it were computed; a memory-mapped or lazy (dask, zarr) stack is
        # read plane by plane for it, so it is never loaded whole.
        if type(image) is np.ndarray:
            check_finite(image, offset=self.camera_offset)
        else:
            for index in self._plane_indices:
                if index not in self._finished_planes:
                    self._load_plane(index)
        from napari_zsdenoise.devices import out_of_memory_as_error, resolve_device, resolve_precision

        self.device = resolve_device(device)
        self.method = self.spec.build(self.config)
        self.precision = resolve_precision(precision, self.device, method_allows=self.method.bf16_safe)
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {', '.join(NORMALIZATIONS)}; got {normalization!r}")
        self.normalization = normalization
        with out_of_memory_as_error(self.device, advice=self.config.out_of_memory_advice):
            self.method.setup(self.device, self.seed, self.precision)
        self._check_context_planes(image)
        self._stop = threading.Event()
        self.result: np.ndarray | None = None
        self.metadata: dict[str, Any] = {}
        self._plane_seconds: list[float] = []
        #: (warm, iterations, seconds) of each plane this run finished, for the time left.
        self._finished_this_run: list[tuple[bool, int, float]] = []
        self._warm_flags: list[bool] | None = None
        self.stopped_early = False
        self._started = False

    def _select_planes(self, plane: int | tuple[int, ...] | None) -> list[tuple[int, ...]]:
        leading = self.shape[:-2]
        all_planes = list(np.ndindex(*leading)) if leading else [()]
        if plane is None:
            return all_planes
        if isinstance(plane, (int, np.integer)) and not isinstance(plane, bool):
            if not -len(all_planes) <= plane < len(all_planes):
                raise ValueError(f"plane {plane} is out of range for {len(all_planes)} plane(s)")
            return [all_planes[int(plane)]]
        index = tuple(int(i) for i in plane)
        if len(index) != len(leading) or any(not 0 <= i < n for i, n in zip(index, leading)):
            raise ValueError(f"plane index {plane} does not fit the leading axes {leading}")
        return [index]

    def _check_finished_planes(self, finished: Mapping) -> dict[tuple[int, ...], tuple[np.ndarray, dict[str, Any]]]:
        planes = {}
        for index, (estimate, record) in finished.items():
            index = tuple(int(i) for i in index)
            if index not in self._plane_indices:
                raise ValueError(f"finished plane {index} is not among the planes of this run")
            if np.shape(estimate) != self.shape[-2:]:
                raise ValueError(f"finished plane {index} has shape {np.shape(estimate)}, not {self.shape[-2:]}")
            planes[index] = (estimate, dict(record))
        return planes

    @property
    def output_shape(self) -> tuple[int, ...]:
        """The result's shape: the input's, or one plane's when a single plane was asked for."""
        return tuple(self.shape[-2:] if self._single_plane else self.shape)

    @property
    def n_planes(self) -> int:
        return len(self._plane_indices)

    def stop(self) -> None:
        """Ask the run to finish after the current iteration, keeping the current estimate."""
        self._stop.set()

    def _load_plane(self, index: tuple[int, ...]) -> np.ndarray:
        plane = np.asarray(self.image[index] if index else self.image)
        check_finite(plane, where=f"plane {index}" if index else "image", offset=self.camera_offset)
        return plane

    def _check_context_planes(self, image: Any) -> None:
        """Refuse context planes that cannot work before any computing: a stack too short for the
        count, and (for an array already in memory) a plane whose neighbour is a copy of it.
        A lazy or memory-mapped stack is checked plane by plane as it is read instead."""
        if not self.config.context_planes or not self._plane_indices[0]:
            return
        if type(image) is np.ndarray:
            for index in self._plane_indices:
                self._context_planes(index, self._load_plane(index))
        else:
            self._context_planes(self._plane_indices[0], None)

    def _context_planes(self, index: tuple[int, ...], plane: np.ndarray | None) -> np.ndarray | None:
        """The ``context_planes`` neighbours of plane ``index`` on each side along the axis just
        before Y (before, then after; mirrored at the ends of the stack), or None when the
        settings ask for none or the image has no second plane along that axis. With ``plane``
        None only the stack's length is checked."""
        count = self.config.context_planes
        if not count or not index or self.shape[len(index) - 1] < 2:
            return None  # a single plane has no neighbours: the method runs without context
        length, centre, planes = self.shape[len(index) - 1], index[-1], []
        if count >= length:
            # Mirrored at the ends, the neighbours of a stack this short would include the plane itself.
            raise ValueError(f"context_planes={count} needs at least {count + 1} planes along the axis before Y; "
                             f"this image has {length}")
        if plane is None:
            return None
        for offset in [*range(-count, 0), *range(1, count + 1)]:
            position = abs(centre + offset)  # mirrored at the start ...
            if position > length - 1:  # ... and at the end
                position = 2 * (length - 1) - position
            neighbour = self._load_plane((*index[:-1], position))
            if np.array_equal(neighbour, plane):
                # The network would read the hidden pixels' noisy values off the copy and learn the identity.
                raise ValueError(f"context planes need independent noise in neighbouring planes, but planes {centre} "
                                 f"and {position} along the axis before Y are identical (a repeated frame?); turn "
                                 "context planes off or remove the repeat")
            planes.append(neighbour)
        return np.stack(planes)

    def _plane_seed(self, index: tuple[int, ...]) -> int:
        # Seeding by the plane's own index makes a single-plane run reproduce that plane
        # of a whole-stack run exactly.
        return self.seed + (int(np.ravel_multi_index(index, self.shape[:-2])) if index else 0)

    def _plan(self) -> list[bool]:
        """Whether each plane this run computes is warm (continues the network of the plane before); all
        alike where the settings budget warm planes as the others. Worked out once: it is read every step."""
        if self._warm_flags is None:
            to_compute = [index for index in self._plane_indices if index not in self._finished_planes]
            warm_differs = self.config.plane_budget(True) != self.config.plane_budget(False)
            self._warm_flags = [warm_differs and k > 0 for k in range(len(to_compute))]
        return self._warm_flags

    def expected_seconds_left(self, plane_of_run: int, iteration: int, plane_elapsed: float,
                              plane_iterations: int | None = None) -> float | None:
        """Seconds until the run ends, at ``iteration`` of the ``plane_of_run``-th plane it computes, whose
        plan has ``plane_iterations`` (default: the settings' budget for its kind).

        Each plane is expected to run as many iterations as the finished planes of its kind (first, or
        warm-started from the plane before) ran on average, else its budget
        (:meth:`~napari_zsdenoise.settings.MethodSettings.plane_budget`): early stopping ends most planes
        well before it, and a warm-started plane has a budget of its own. Iterations cost what they cost
        on the finished planes, else on this plane so far. None before the first iteration.
        """
        if iteration <= 0:
            return None
        warm_flags = self._plan()
        finished = self._finished_this_run

        def expected(warm: bool) -> float:
            same = [iterations for kind, iterations, _ in finished if kind == warm]
            return sum(same) / len(same) if same else float(self.config.plane_budget(warm))

        rate_here = plane_elapsed / iteration
        done_iterations = sum(iterations for _, iterations, _ in finished)
        rate_later = sum(seconds for _, _, seconds in finished) / done_iterations if done_iterations else rate_here
        budget = plane_iterations or self.config.plane_budget(warm_flags[plane_of_run])
        this_plane = max(min(expected(warm_flags[plane_of_run]), budget) - iteration, 0.0) * rate_here
        later = sum(expected(warm) for warm in warm_flags[plane_of_run + 1:]) * rate_later
        return this_plane + later

    def _run_plane(self, raw: np.ndarray, index: tuple[int, ...], position: int,
                   start: float) -> Generator[ProgressEvent, None, tuple[np.ndarray, dict[str, Any]]]:
        """Denoise one plane, yielding progress events; return its estimate and its provenance record."""
        import torch

        from napari_zsdenoise.devices import is_out_of_memory, out_of_memory_as_error, out_of_memory_error

        method = self.method
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")
        fitted = self._stack_scaling or IntensityScaling.fit(raw)
        # The fit normalises the raw plane, and its twin for the offset-free input maps back:
        # that is the offset subtracted before the scaling, without a shifted copy of the plane.
        scaling = fitted.for_baseline_removed(self.camera_offset)
        context = self._context_planes(index, raw)
        with out_of_memory_as_error(self.device, raw.shape, advice=self.config.out_of_memory_advice):
            method.prepare(fitted.normalize(raw), self._plane_seed(index),
                           None if context is None else fitted.normalize(context))
        position_in_run = len(self._finished_this_run)
        plan = method.plane_plan(tuple(raw.shape), position_in_run > 0)
        total = plan.iterations
        last_preview = plane_start = time.perf_counter()
        typical = sum(self._plane_seconds) / len(self._plane_seconds) if self._plane_seconds else None
        iteration, loss, step = 0, float("nan"), None
        for number, phase in enumerate(plan.phases):
            if self._stop.is_set():
                break
            if number:
                with out_of_memory_as_error(self.device, raw.shape, advice=self.config.out_of_memory_advice):
                    method.start_phase(number)
            last_phase = number == len(plan.phases) - 1
            for _ in range(phase.iterations):
                iteration += 1
                if self._cpu_threads is not None:
                    self._cpu_threads.look(iteration)
                try:
                    with autocast:
                        step = method.step()
                except (RuntimeError, MemoryError) as error:
                    if not is_out_of_memory(error):
                        raise
                    raise out_of_memory_error(self.device, raw.shape,
                                              advice=self.config.out_of_memory_advice) from None
                now = time.perf_counter()
                final = iteration == total or (step.finished and last_phase) or self._stop.is_set()
                due = final or (self.preview_every and iteration % self.preview_every == 0) or (
                    self.preview_interval and now - last_preview >= self.preview_interval
                )
                preview = scaling.denormalize(method.preview()) if due else None
                if due:
                    last_preview = now
                if loss_is_read(self.device.type, iteration, bool(due)):
                    loss = float(step.loss)
                yield ProgressEvent(iteration, total, loss, preview, now - start, position, self.n_planes, index,
                                    step.scores, now - plane_start, typical,
                                    self.expected_seconds_left(position_in_run, iteration, now - plane_start, total))
                if self._stop.is_set() or step.finished:
                    break
        # The result first: forming it may run a last held-out check that the facts report.
        estimate = scaling.denormalize(method.result())
        bad = int(np.count_nonzero(~np.isfinite(estimate)))
        if bad:
            raise ValueError(f"the result of {f'plane {index}' if index else 'the image'} holds {bad} NaN or "
                             f"infinite value(s): the training diverged, so it is not written; try precision "
                             f"'fp32' or a lower learning_rate (planes finished before it are kept)")
        if not self._stop.is_set():
            seconds = time.perf_counter() - plane_start
            self._plane_seconds.append(seconds)
            self._finished_this_run.append((self._plan()[len(self._finished_this_run)], iteration, seconds))
        facts = {"index": list(index), "iterations_done": iteration, "offset": scaling.offset, "scale": scaling.scale,
                 **method.plane_facts()}
        return estimate, facts

    def __iter__(self) -> Iterator[ProgressEvent]:
        import torch

        from napari_zsdenoise import __version__

        if self._started:
            raise RuntimeError("a DenoiseRun runs once; its result is in .result; create a new DenoiseRun to run again")
        self._started = True
        start = time.perf_counter()
        # One scaling for every plane of the stack (not only the planes this run computes), so
        # that a plane run alone matches the same plane of a whole-stack run.
        leading = self.shape[:-2]
        self._stack_scaling = (IntensityScaling.fit(stack_sample(self.image, list(np.ndindex(*leading)) if leading else [()]))
                               if self.normalization == "stack" else None)
        output = self._output if self._output is not None else np.empty(self.output_shape, dtype=np.float32)
        plane_records = []
        not_denoised: list[list[int]] = []
        self._cpu_threads = (CpuThreads(self.threads, torch.get_num_threads, torch.set_num_threads)
                             if self.device.type == "cpu" else None)
        if self._cpu_threads is not None:
            self._cpu_threads.start()
        try:
            with large_allocations_on_the_heap() if self.device.type == "cpu" else contextlib.nullcontext():
                for position, index in enumerate(self._plane_indices):
                    # Assignment, not a view: a zarr or dask-backed output returns copies when indexed.
                    where = ... if self._single_plane or not index else index
                    if index in self._finished_planes:
                        estimate, record = self._finished_planes[index]
                        output[where] = estimate
                        plane_records.append({**record, "resumed": True})
                        continue
                    raw = self._load_plane(index)
                    if self._stop.is_set():
                        # Planes never reached keep the input values, and the metadata says so.
                        output[where] = subtract_baseline(raw, self.camera_offset)
                        not_denoised.append(list(index))
                        self.stopped_early = True
                        continue
                    if _is_constant(raw):
                        # Nothing to denoise, and a network would only add its own texture to it.
                        estimate = subtract_baseline(raw, self.camera_offset)
                        facts = {"index": list(index), "iterations_done": 0, "constant_plane": True}
                    else:
                        estimate, facts = yield from self._run_plane(raw, index, position, start)
                    output[where] = estimate
                    plane_records.append(facts)
                    if self._stop.is_set():
                        self.stopped_early = True
                    elif self._on_plane_finished is not None:
                        self._on_plane_finished(index, estimate, facts)
        finally:
            threads_used = torch.get_num_threads()
            cpu_threads = None if self._cpu_threads is None else self._cpu_threads.finish()
        self.result = output
        self.metadata = {
            "software": "napari-zsdenoise",
            "version": __version__,
            "method": self.spec.name,
            "parameters": config_parameters(self.config),
            "seed": self.seed,
            "device": str(self.device),
            "precision": self.precision,
            "normalization": self.normalization,
            "camera_offset": self.camera_offset,
            "torch_version": torch.__version__,
            # Seconds on a CPU depend on how many threads torch used.
            "torch_threads": threads_used,
            **({} if cpu_threads is None else {"cpu_threads": cpu_threads}),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
            "seconds": round(time.perf_counter() - start, 3),
            "input_shape": list(self.shape),
            "input_dtype": str(np.dtype(self.image.dtype)),
            "planes": plane_records,
            "planes_total": self.n_planes,
            "stopped_early": self.stopped_early,
            "planes_not_denoised": not_denoised,
            **self.method.run_facts(),
        }


def _checked_camera_offset(value: Any) -> float:
    if (isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating))
            or not np.isfinite(value)):
        raise ValueError(f"camera_offset must be a finite number (the camera's baseline, in the input's units); "
                         f"got {value!r}")
    if value < 0:
        raise ValueError(f"camera_offset must be >= 0 (the constant a camera adds to every pixel); got {value!r}")
    return float(value)


def _is_constant(plane: np.ndarray) -> bool:
    return plane.size > 0 and bool(np.min(plane) == np.max(plane))


def _as_image_array(image: Any) -> Any:
    """``image`` as it can be read plane by plane: numpy arrays and lazy arrays with a numpy
    dtype (dask, zarr, memory maps) as they are, anything else (lists, torch tensors) via numpy."""
    if hasattr(image, "shape") and hasattr(image, "dtype"):
        try:
            np.dtype(image.dtype)
            return image
        except TypeError:
            pass  # e.g. a torch tensor, whose dtype numpy does not know
    if hasattr(image, "detach"):
        image = image.detach().cpu()
    try:
        return np.asarray(image)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise TypeError(f"expected an array-like image, got {type(image).__name__}: {exc}") from exc


def denoise(image: Any, method: str | None = None, *, camera_offset: float = 0.0, **kwargs: Any) -> np.ndarray:
    """Denoise ``image`` and return a new float32 array in the input's intensity units
    (less ``camera_offset``, the constant the camera adds to every pixel, when given).

    Blocking convenience wrapper around :class:`DenoiseRun`; accepts the same arguments.

    Examples
    --------
    >>> from napari_zsdenoise import denoise
    >>> clean = denoise(noisy, seed=0)  # the recommended preset  # doctest: +SKIP
    >>> quick = denoise(noisy, method="bsn-fast", seed=0)  # doctest: +SKIP
    >>> above_baseline = denoise(noisy, camera_offset=100)  # an sCMOS camera's 100 ADU  # doctest: +SKIP
    """
    run = DenoiseRun(image, method, camera_offset=camera_offset, preview_every=0, preview_interval=0, **kwargs)
    for _ in run:
        pass
    assert run.result is not None
    return run.result
