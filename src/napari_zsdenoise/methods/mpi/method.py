"""MPI iterative filling (Ma et al., "Masked Pre-training Enables Universal Zero-shot
Denoiser", NeurIPS 2024, Algorithm 1 and Eq. 8).

Each step hides a random fraction ``p`` of pixels, asks the hourglass network to fill
the whole plane from the rest, trains it on the hidden pixels only, and folds its
predictions *at the hidden pixels* into an exponential moving average that started at
the noisy plane. The masked EMA is both the live preview and the result.

With ``early_stopping`` a few pixels never enter the loss; the ensemble's error at them
decides when the network has started to learn the noise (see :class:`MPIConfig`).

With a ``training_crop`` each step trains on random crops instead of the whole plane, so
that a step costs the same on any plane size; the crops' predictions fill the ensemble
where they lie, and ``fill_every`` adds untrained masked predictions of the whole plane.
``views_per_step`` trains on several crops, or several masks of the whole plane, at once.

What the method is, the choices its paper leaves open and what this package uses:
``docs/methods.md`` (the one copy; this docstring keeps only what the code needs).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch

from napari_zsdenoise.methods._early_stopping import (
    EnsembleOutputMethod,
    HoldoutEarlyStopping,
    looks_spatially_correlated,
    make_stopping_rule,
    pixel_independent_blocks,
)
from napari_zsdenoise.methods._ensemble import MaskedEnsemble, Region, noise_response
from napari_zsdenoise.methods._planes import plane_to_tensor, tensor_to_plane
from napari_zsdenoise.methods._tiling import (
    fill_tiles,
    merge_subimages,
    most_structured_crop,
    split_subimages,
    subimage_region,
)
from napari_zsdenoise.methods.base import StepRecord
from napari_zsdenoise.methods.mpi.settings import MPIConfig
from napari_zsdenoise.settings import Phase, PlanePlan
from napari_zsdenoise.networks.checkpoints import load_weights
from napari_zsdenoise.run_record import WARM_STARTED
from napari_zsdenoise.networks.hourglass import SkipHourglass


# Offset of the crop positions' seed from the plane's seed: their own random stream.
CROP_SEED_OFFSET = 104729
# Steps between whole-plane fills when the memory budget, not the user, chose crops.
AUTOMATIC_FILL_EVERY = 4


def _megabytes(size: float) -> str:
    return f"{size / 2**20:,.0f} MB"


def load_weights_within_memory(weights: str) -> tuple[SkipHourglass, dict[str, Any]]:
    """:func:`load_weights`, with an allocation failure (the weights are read on the CPU) turned into the
    one-line :class:`~napari_zsdenoise.devices.OutOfDeviceMemory`."""
    from napari_zsdenoise.devices import out_of_memory_as_error

    with out_of_memory_as_error(torch.device("cpu"), during=f"while loading the weights {weights}",
                                advice="free some of the computer's memory (other programs hold it)"):
        return load_weights(weights)


class MPIMethod(EnsembleOutputMethod):
    """MPI filling of one grayscale plane; see :class:`~napari_zsdenoise.config.MPIConfig`."""

    config: MPIConfig
    # Measured per change in docs/time-to-quality.md.
    bf16_safe = True

    def __init__(self, config: MPIConfig) -> None:
        super().__init__(config)
        self.iterations_done = 0
        self._weights_info: dict[str, Any] = {"source": "random initialisation"}
        self._pretrained: SkipHourglass | None = None
        self.blend_weight: float | None = None  # mean share of the noisy image, with blend_noisy
        self.early_stopping: HoldoutEarlyStopping | None = None
        self.network: SkipHourglass | None = None
        self.warm_started = False
        self._warm_start_declined = False
        self._with_context = False
        # While a large plane trains on its start crop: (plane, seed, context, crop region).
        self._whole_plane: tuple[np.ndarray, int, np.ndarray | None, Region] | None = None
        self.start_crop_facts: dict[str, Any] = {}

    def setup(self, device: torch.device, seed: int, precision: str = "fp32") -> None:
        """Load (and hash) the starting weights once for the whole run, and check they fit the settings."""
        super().setup(device, seed, precision)
        if self.config.weights is None:
            return
        if self.config.context_planes:
            raise ValueError("context_planes needs random initialisation (weights none): the pre-trained weights "
                             "see one plane")
        network, info = load_weights_within_memory(self.config.weights)
        if (network.width, network.scales) != (self.config.width, self.config.scales):
            raise ValueError(
                f"weights {info.get('path', self.config.weights)} have width {network.width} and {network.scales} scales, "
                f"but the settings ask for width {self.config.width} and {self.config.scales} scales"
            )
        if network.mask_channels not in (1, network.image_channels):
            raise ValueError(f"weights {self.config.weights} have an unsupported mask layout")
        self._weights_info = {"source": "checkpoint", **info} if "source" not in info else info
        if network.image_channels > 1:
            # A colour checkpoint sees the grey plane in every channel, always with ONE
            # mask (repeated for per-channel-mask networks): independent masks per
            # channel would show each hidden pixel in another channel and leak the noise.
            self._weights_info["grayscale_adaptation"] = (
                f"plane replicated to {network.image_channels} channels, one shared mask, outputs averaged"
            )
        self._pretrained = network

    def _network_state(self) -> dict[str, torch.Tensor]:
        """A copy of the network's weights and normalisation statistics."""
        return {name: value.detach().clone() for name, value in self.network.state_dict().items()}

    def _fresh_network(self, seed: int) -> SkipHourglass:
        """The starting network of a plane: a copy of the pre-trained one, or a seeded random one."""
        if self._pretrained is not None:
            return copy.deepcopy(self._pretrained)
        # Initialise on the CPU from a private RNG so runs are reproducible and the
        # caller's global torch RNG is left untouched.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            channels = 1 + (2 * self.config.context_planes if self._with_context else 0)
            return SkipHourglass(channels, 1, width=self.config.width, scales=self.config.scales, output_channels=1)

    def prepare(self, plane: np.ndarray, plane_seed: int, context: np.ndarray | None = None) -> None:
        # Warm start continues from the previous plane's network at its best check, not from
        # where that plane's run ended: the steps after the best only fit the noise better.
        previous_best = None if self.early_stopping is None else self.early_stopping.kept_at_best()
        # On spatially correlated noise the result peaks after a fixed number of steps from a fresh
        # network (correlated_noise_iterations); a carried network would go on fitting the noise, for
        # no fewer steps, so such a stack starts every plane afresh.
        previous_correlated = self.early_stopping is not None and bool(self.early_stopping.correlated_noise)
        carried = self.config.warm_start and self.network is not None
        warm = carried and not previous_correlated
        self._warm_start_declined = carried and previous_correlated
        self._whole_plane = None
        self.start_crop_facts = {}
        region = None
        # A fresh network on correlated noise has a fixed budget and is never carried on (above).
        correlated = not warm and self.config.starts_on_a_crop(plane.shape) and looks_spatially_correlated(plane)
        if not warm and self.config.starts_on_a_crop(plane.shape) and not correlated:
            region = most_structured_crop(plane, self.config.start_crop, multiple=self.config.shuffle_factor)
        if region is None:
            self._start(plane, plane_seed, context, warm=warm, previous_best=previous_best,
                        learning_rate=self.config.warm_learning_rate if warm else 0.0)
        else:
            # A large plane first trains on one crop, then goes on over the whole plane from the
            # network the crop kept, as a warm start would (the figures: docs/time-to-quality.md).
            self._whole_plane = (plane, plane_seed, context, region)
            self._start(plane[region], plane_seed, None if context is None else context[(slice(None), *region)],
                        warm=False, previous_best=None, within=(plane.shape, region))
        self._plan = self._with_memory_crops(self.config.plan(plane.shape, warm, correlated_noise=correlated))

    def plane_plan(self, shape: tuple[int, int], warm: bool) -> PlanePlan:
        """The plan of the plane as prepared: warm only when the plane before allowed it, no start crop on
        correlated noise, and crops where a phase would not fit the memory budget."""
        return self._plan

    def start_phase(self, number: int) -> None:
        if number != 1 or self._whole_plane is None:
            raise ValueError(f"this plane's plan has no phase {number + 1}")
        self._continue_on_whole_plane()

    def _with_memory_crops(self, plan: PlanePlan) -> PlanePlan:
        """``plan`` with each phase that would not fit the memory budget on the crops it will train on."""
        if self.config.training_crop:
            return plan
        factor, phases = self.config.shuffle_factor, []
        for phase in plan.phases:
            crops = self._memory_budget_crops(phase.pixels)
            if crops is not None:
                side = crops[0] * factor
                phase = Phase(f"{phase.name}, on crops for the memory budget", phase.iterations,
                              (min(side, phase.shape[0]), min(side, phase.shape[1])))
            phases.append(phase)
        return PlanePlan(tuple(phases), plan.can_end_sooner)

    def _start(self, plane: np.ndarray, seed: int, context: np.ndarray | None, *, warm: bool,
               previous_best: dict[str, torch.Tensor] | None, learning_rate: float = 0.0,
               within: tuple[tuple[int, int], Region] | None = None) -> None:
        """Start training on ``plane`` (the whole plane, or with ``within`` a crop of a plane of that shape),
        from a fresh network or (``warm``) the current one at ``previous_best``; a ``learning_rate`` of 0
        is the configured one."""
        device = self.device
        factor = self.config.shuffle_factor
        self._height, self._width = plane.shape
        tensor = plane_to_tensor(plane, device, multiple=factor)
        self.noisy = split_subimages(tensor, factor)
        blend = self.config.blend_noisy
        validate = self.config.early_stopping
        # By default the authors' ensemble, started at the noisy image. Blending and
        # validation need an ensemble of predictions only: a noisy start would match the
        # noisy values at held-out pixels by construction.
        start = "zero" if blend or validate else "noisy"
        self._ensemble = MaskedEnsemble(self.noisy, self.config.ema_beta, start=start)
        self._noise_response = split_subimages(noise_response(tensor), factor) if blend else None
        self._pixel_independent_noise = not looks_spatially_correlated(plane)
        # Blended tile by tile, the noise judged block by block: a plane can hold fields of both kinds.
        self._blend_independent: bool | list[bool] = (
            pixel_independent_blocks(plane, factor) if blend and self.config.blend_tile
            else self._pixel_independent_noise)
        self.blend_weight = None
        self.early_stopping = None
        self._loss_weight: torch.Tensor | None = None
        if validate:
            self.early_stopping = HoldoutEarlyStopping(
                self.noisy, holdout_fraction=self.config.holdout_fraction,
                validation_every=self.config.validation_every, seed=seed,
                # A plane whose noise looks pixel-independent is never judged correlated by the residual
                # of a young ensemble, which a narrow network leaves correlated with the signal on
                # high-SNR planes for several checks (docs/time-to-quality.md); otherwise the checks decide.
                rule=make_stopping_rule(self.config, correlated_noise=False if self._pixel_independent_noise else None,
                                        warm_started=warm),
                keep_with_best=self._network_state if self.config.warm_start or within else None,
                within=None if within is None else subimage_region(within, factor))
            self._loss_weight = self.early_stopping.loss_weight()
        layout = self.memory_format()
        # Context planes when the settings ask for them and the image has them (a 2-D image has none).
        self._with_context = bool(self.config.context_planes) and context is not None
        if self._with_context and len(context) != 2 * self.config.context_planes:
            raise ValueError(f"context_planes={self.config.context_planes} needs "
                             f"{2 * self.config.context_planes} neighbouring planes with each plane")
        # Warm start: the previous plane's network already knows the structures of this
        # stack, so this plane needs fewer steps; its noise is independent of this plane's.
        self.warm_started = warm
        if warm and previous_best is not None:
            self.network.load_state_dict(previous_best)
        self.network = (self.network if warm else self._fresh_network(seed)).to(device, memory_format=layout)
        channels = self.network.image_channels
        if self._with_context:
            # The neighbours follow the plane as extra channels, split into sub-images alike.
            neighbours = [split_subimages(plane_to_tensor(other, device, multiple=factor), factor) for other in context]
            self._network_input = torch.cat([self.noisy, *neighbours], dim=1).contiguous(memory_format=layout)
        else:
            self._network_input = self.noisy.expand(-1, channels, -1, -1).contiguous(memory_format=layout)
        self._mask_repeats = self.network.mask_channels
        # BatchNorm stays in training mode throughout, as in the authors' filling code.
        self.network.train()
        self.optimizer = self.make_optimizer(learning_rate or self.config.learning_rate)
        self._generator = torch.Generator(device=device)
        self._generator.manual_seed(seed)
        # Crop positions come from the CPU so that drawing them never waits for the device.
        self._crop_generator = torch.Generator(device="cpu")
        self._crop_generator.manual_seed(seed + CROP_SEED_OFFSET)
        self._crop_size = self._training_crop_size()
        self._fill_every = self.config.fill_every
        self._fill_tile = self.config.fill_tile // factor or None
        self.memory_plan: dict[str, Any] = {}
        if self.config.training_crop == 0:
            self._fit_memory_budget()
        self.iterations_done = 0

    def memory_format(self) -> torch.memory_format:
        """The layout of the network's weights and activations: channels-last only under bf16, where it
        was measured to pay (docs/time-to-quality.md), so that fp32 runs repeat earlier releases bit for bit.
        A subclass may choose another (benchmarks/step_efficiency.py measures each)."""
        return torch.channels_last if self.precision == "bf16" else torch.contiguous_format

    def make_optimizer(self, learning_rate: float) -> torch.optim.Optimizer:
        """The optimiser of a plane's training: Adam at ``learning_rate``. A subclass may choose another
        implementation (benchmarks/step_efficiency.py measures torch's fused Adam)."""
        return torch.optim.Adam(self.network.parameters(), lr=learning_rate)

    def _continue_on_whole_plane(self) -> None:
        """End the start crop: the whole plane from the network the crop kept at its best check."""
        plane, seed, context, region = self._whole_plane
        stopping = self.early_stopping
        correlated = stopping is not None and bool(stopping.correlated_noise)
        kept = None if stopping is None else stopping.kept_at_best()
        self.start_crop_facts = {**self._start_crop_record(),
                                 "start_crop_best_iteration": None if stopping is None else stopping.best_iteration}
        if correlated:
            self.start_crop_facts["start_crop_discarded"] = "spatially correlated noise on the crop"
        self._whole_plane = None
        # As after a plane of a stack, correlated noise starts afresh. Unlike the next plane of a stack,
        # the whole plane holds much that the crop did not show: the full learning rate, not the warm one.
        self._start(plane, seed, context, warm=not correlated, previous_best=kept)

    def _start_crop_record(self) -> dict[str, Any]:
        """Where the start crop lies ([top, left, height, width]) and the steps it has had."""
        rows, columns = self._whole_plane[3]
        return {"start_crop": [rows.start or 0, columns.start or 0, self._height, self._width],
                "start_crop_iterations": self.iterations_done}

    def _fit_memory_budget(self) -> None:
        """Train on crops and fill in tiles when the whole plane would not fit the memory budget."""
        crops = self._memory_budget_crops(self.noisy.numel())
        if crops is not None:
            self._train_on_crops(crops[0], self._fill_tile or crops[0], crops[1])

    def _memory_budget_crops(self, pixels: int) -> tuple[int, str] | None:
        """(side of the crops on the network's input, why) when training on ``pixels`` values of the plane
        would not fit the memory budget; None when it fits."""
        from napari_zsdenoise.devices import available_memory_bytes
        from napari_zsdenoise.networks.hourglass import training_bytes_per_pixel

        per_pixel = training_bytes_per_pixel(self.config.width, self.config.scales, self.network.image_channels,
                                             self.network.mask_channels)
        budget = self.config.memory_budget_mb * 2**20
        if not budget:
            available = available_memory_bytes(self.device)
            budget = None if available is None else available // 2
        needed = per_pixel * pixels
        if budget is None or needed <= budget:
            return None
        batch, multiple = self.config.shuffle_factor**2, 2**self.config.scales
        side = int((budget / (per_pixel * batch)) ** 0.5) // multiple * multiple
        side = max(side, self.config.min_size // self.config.shuffle_factor)
        return side, f"the whole plane would need about {_megabytes(needed)}, the budget is {_megabytes(budget)}"

    def _train_on_crops(self, side: int, fill_tile: int, reason: str) -> None:
        """From now on train on crops of ``side`` and fill in tiles of ``fill_tile``, saying why."""
        self._crop_size = (min(side, self.noisy.shape[-2]), min(side, self.noisy.shape[-1]))
        self._fill_tile = fill_tile
        self._fill_every = self._fill_every or AUTOMATIC_FILL_EVERY
        self.memory_plan = {"trained_on_crops": side * self.config.shuffle_factor, "reason": reason}

    def _training_crop_size(self) -> tuple[int, int] | None:
        """(height, width) of the training crops on the network's input, or None: the whole plane."""
        if self.config.training_crop == 0:
            return None
        side = self.config.training_crop // self.config.shuffle_factor
        height, width = self.noisy.shape[-2:]
        if side >= height and side >= width:
            return None
        return min(side, height), min(side, width)

    def draw_regions(self) -> list[Region]:
        """The rectangles trained on in one step, ``views_per_step`` of them: random crops, or the whole plane."""
        count = self.config.views_per_step
        if self._crop_size is None:
            return [(slice(None), slice(None))] * count
        crop_height, crop_width = self._crop_size
        height, width = self.noisy.shape[-2:]
        tops = torch.randint(0, height - crop_height + 1, (count,), generator=self._crop_generator).tolist()
        lefts = torch.randint(0, width - crop_width + 1, (count,), generator=self._crop_generator).tolist()
        return [(slice(top, top + crop_height), slice(left, left + crop_width)) for top, left in zip(tops, lefts)]

    def draw_keep_mask(self, shape: torch.Size | None = None) -> torch.Tensor:
        """Bernoulli keep-mask (of the plane, or of ``shape``): 1 where the network sees the pixel,
        0 (probability mask_ratio) where it is hidden."""
        noise = torch.rand(self.noisy.shape if shape is None else shape, generator=self._generator, device=self.device)
        return (noise >= self.config.mask_ratio).to(self.noisy.dtype)

    def fold_in(self, prediction: torch.Tensor, hidden: torch.Tensor, region: Region | None = None) -> None:
        """Add one prediction at its hidden pixels to the ensemble (of the whole plane or of ``region``).

        Studies extend this to feed other ensembles (other betas, other averaging rules)
        the same predictions without a second training run.
        """
        self._ensemble.update(prediction, hidden, region)

    def _masked_prediction(self, network_input: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The network's output for ``network_input`` under a fresh mask, and that keep-mask."""
        keep = self.draw_keep_mask(network_input.shape[:1] + self.noisy.shape[1:2] + network_input.shape[2:])
        mask_input = keep.expand(-1, self._mask_repeats, -1, -1) if self._mask_repeats > 1 else keep
        if self._with_context:
            # Only the plane itself is masked: the context planes' noise is independent of it.
            masked = torch.cat([network_input[:, :1] * keep, network_input[:, 1:]], dim=1)
        else:
            masked = network_input * keep
        return self.network(masked, mask_input), keep

    def step(self) -> StepRecord:
        """One training step; when the device runs out of memory, retried on crops half as large."""
        from napari_zsdenoise.devices import is_out_of_memory, release_cached_memory

        while True:
            try:
                return self._train_step()
            except (RuntimeError, MemoryError) as error:
                if not is_out_of_memory(error) or not self._halve_crops():
                    raise
                self.optimizer.zero_grad(set_to_none=True)
                release_cached_memory(self.device)

    def _halve_crops(self) -> bool:
        """Train on crops (and fill in tiles) half the current side; False when they cannot shrink."""
        height, width = self._crop_size or self.noisy.shape[-2:]
        multiple, smallest = 2**self.config.scales, self.config.min_size // self.config.shuffle_factor
        side = max(height, width) // 2 // multiple * multiple
        if side < smallest:
            return False
        self._train_on_crops(side, min(self._fill_tile or side, side),
                             f"the device ran out of memory at iteration {self.iterations_done + 1}")
        return True

    def _train_step(self) -> StepRecord:
        regions = self.draw_regions()
        whole_plane = len(regions) == 1 and self._crop_size is None
        batch = self.noisy.shape[0]
        network_input = (self._network_input if whole_plane else
                         torch.cat([self._network_input[..., rows, columns] for rows, columns in regions]))
        output, keep = self._masked_prediction(network_input)
        hidden = keep == 0
        with torch.no_grad():
            # The ensemble takes theta_t's prediction, before this step's update (Algorithm 1).
            prediction = output.detach().mean(dim=1, keepdim=True)
            if whole_plane:
                self.fold_in(prediction, hidden)
            else:
                for index, region in enumerate(regions):
                    part = slice(index * batch, (index + 1) * batch)
                    self.fold_in(prediction[part], hidden[part], region)
        loss_weight = 1 - keep
        if self._loss_weight is not None:
            loss_weight = loss_weight * (self._loss_weight if whole_plane else torch.cat(
                [self._loss_weight[..., rows, columns] for rows, columns in regions]))
        # The target is the plane itself (replicated for a colour checkpoint), never the context.
        loss = torch.mean(((output - network_input[:, : output.shape[1]]) * loss_weight) ** 2)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self._crop_size is not None and self._fill_every and (self.iterations_done + 1) % self._fill_every == 0:
            self._fill_whole_plane()
        return self._finish_step(loss)

    @torch.no_grad()
    def _fill_whole_plane(self) -> None:
        """Fold a masked prediction of the whole plane into the ensemble, without training;
        in tiles of ``fill_tile`` when set, each predicted with a margin of context."""
        if self._fill_tile is None:
            output, keep = self._masked_prediction(self._network_input)
            self.fold_in(output.mean(dim=1, keepdim=True), keep == 0)
            return
        for core, context in fill_tiles(self.noisy.shape[-2:], self._fill_tile, 2 ** (self.config.scales + 1)):
            output, keep = self._masked_prediction(self._network_input[..., context[0], context[1]])
            inside = (slice(core[0].start - context[0].start, core[0].stop - context[0].start),
                      slice(core[1].start - context[1].start, core[1].stop - context[1].start))
            self.fold_in(output.mean(dim=1, keepdim=True)[..., inside[0], inside[1]],
                         (keep == 0)[..., inside[0], inside[1]], core)

    def _to_plane(self, estimate: torch.Tensor) -> np.ndarray:
        if self._noise_response is not None:
            estimate, self.blend_weight = self._ensemble.blended(self._noise_response, estimate,
                                                                 pixel_independent=self._blend_independent,
                                                                 tile=self.config.blend_tile)
        return tensor_to_plane(merge_subimages(estimate, self.config.shuffle_factor), self._height, self._width)

    def preview(self) -> np.ndarray:
        return self._on_whole_plane(super().preview())

    def result(self) -> np.ndarray:
        return self._on_whole_plane(super().result())

    def _on_whole_plane(self, estimate: np.ndarray) -> np.ndarray:
        """While the start crop trains: the noisy plane with the crop's estimate in place."""
        if self._whole_plane is None:
            return estimate
        plane, _, _, region = self._whole_plane
        whole = np.array(plane, dtype=np.float32)
        whole[region] = estimate
        return whole

    def plane_facts(self) -> dict[str, Any]:
        facts = {**super().plane_facts(), **self.memory_plan, **self.start_crop_facts}
        if self._whole_plane is not None:
            # Stopped before the whole plane's steps: only the crop was denoised.
            facts.update(self._start_crop_record(), stopped_on_start_crop=True)
        if self.config.warm_start:
            facts[WARM_STARTED] = self.warm_started
            if self._warm_start_declined:
                facts["warm_start_declined"] = "spatially correlated noise on the plane before"
        if self.config.context_planes:
            facts["context_planes"] = self.config.context_planes if self._with_context else 0
        if self._noise_response is not None:
            if self.blend_weight is None:
                self.preview()
            facts["blend_weight"] = self.blend_weight
        return facts

    def run_facts(self) -> dict[str, Any]:
        return {"weights": dict(self._weights_info)}
