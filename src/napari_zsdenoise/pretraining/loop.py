"""Masked pre-training of the MPI hourglass (Ma et al., NeurIPS 2024, Sec. 3.1, Eqs. 3-5).

Clean crops are hidden pixel by pixel (Bernoulli, fraction ``p``); the network sees the
kept pixels plus the mask and is trained, with MSE on the hidden pixels only, to fill
them in. Adam(0.9, 0.9) with a cosine learning rate from 2e-3 to 1e-5, as the paper.

A run writes ``state.pt`` every ``checkpoint_every`` iterations (network, optimiser,
schedule and every random stream), so ``resume=True`` continues bit-exactly, and at the
end ``<name>.pt`` (the versioned network checkpoint) with its model card ``<name>.json``.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from napari_zsdenoise.devices import describe_device
from napari_zsdenoise.settings import check_ints, check_range
from napari_zsdenoise.networks.checkpoints import file_sha256, save_hourglass
from napari_zsdenoise.networks.hourglass import SkipHourglass
from napari_zsdenoise.pretraining.corpus import CropSampler, load_image_folders
from napari_zsdenoise.pretraining.procedural import procedural_image

#: Mask recipes: how the hidden fraction p is drawn for each sample.
MASK_RECIPES = {
    "80-95": "p drawn per sample uniformly from the integer percentages 80..95, one mask per sample (for real, correlated or microscopy noise)",
    "30": "p = 0.30 for every sample (for pixel-independent synthetic noise)",
}


_LINEAGE_KEYS = ("name", "iterations", "batch", "crop", "seed", "wall_time_seconds", "device", "command", "corpus", "initialised_from")


@dataclass(frozen=True)
class PretrainConfig:
    """Settings of one pre-training run.

    Attributes
    ----------
    mask_recipe : str
        Key of :data:`MASK_RECIPES`.
    iterations : int
        Optimiser steps; also the length of the cosine schedule.
    batch_size, crop : int
        Crops per step and crop side in pixels.
    learning_rate, final_learning_rate : float
        Start and end of the cosine schedule.
    adam_betas : tuple of float
        Adam's (beta1, beta2); the paper uses (0.9, 0.9) for pre-training.
    folders : tuple of str
        Image folders searched recursively; colour images give luminance and R, G, B planes.
    procedural_images : int
        Size of the procedural pool (dead leaves and fluorescence scenes, half each),
        generated once from ``seed`` at ``procedural_side`` pixels square.
    procedural_fraction : float
        Probability that a crop is drawn from the procedural pool.
    seed : int
        Seeds the network initialisation, the procedural pool, crops and masks.
    checkpoint_every : int
        Iterations between resumable checkpoints.
    width, scales : int
        Hourglass size (must match inference: 64 and 5 for the MPI presets).
    init_weights : str or None
        Start from these weights (``"shipped"`` or one of our checkpoint files) instead of
        a random network, e.g. to continue on larger crops; ``None`` starts from scratch.
    """

    mask_recipe: str = "80-95"
    iterations: int = 80_000
    batch_size: int = 16
    crop: int = 96
    learning_rate: float = 2e-3
    final_learning_rate: float = 1e-5
    adam_betas: tuple[float, float] = (0.9, 0.9)
    folders: tuple[str, ...] = ()
    procedural_images: int = 256
    procedural_side: int = 256
    procedural_fraction: float = 0.5
    seed: int = 0
    checkpoint_every: int = 250
    width: int = 64
    scales: int = 5
    init_weights: str | None = None

    def __post_init__(self) -> None:
        if self.mask_recipe not in MASK_RECIPES:
            raise ValueError(f"mask_recipe must be one of {sorted(MASK_RECIPES)}; got {self.mask_recipe!r}")
        check_ints(self, ("iterations", "batch_size", "crop", "procedural_side", "checkpoint_every", "width", "scales"))
        check_ints(self, ("procedural_images", "seed"), minimum=0)
        if self.crop < 2**self.scales + 1:
            raise ValueError(f"crop must be >= {2**self.scales + 1} px for {self.scales} scales; got {self.crop}")
        if self.procedural_side < self.crop:
            raise ValueError("procedural_side must be >= crop")
        check_range("learning_rate", self.learning_rate, 0.0, 1.0, low_open=True)
        check_range("final_learning_rate", self.final_learning_rate, 0.0, self.learning_rate)
        check_range("procedural_fraction", self.procedural_fraction, 0.0, 1.0)
        if len(self.adam_betas) != 2:
            raise ValueError("adam_betas must be two numbers")
        for beta in self.adam_betas:
            check_range("adam beta", beta, 0.0, 1.0, high_open=True)
        if self.init_weights is not None:
            object.__setattr__(self, "init_weights", str(self.init_weights))
        object.__setattr__(self, "folders", tuple(str(f) for f in self.folders))
        object.__setattr__(self, "adam_betas", tuple(float(b) for b in self.adam_betas))
        if not self.folders and (self.procedural_images == 0 or self.procedural_fraction == 0):
            raise ValueError("the corpus is empty: give folders, or procedural_images > 0 with procedural_fraction > 0")

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["folders"] = list(self.folders)
        data["adam_betas"] = list(self.adam_betas)
        return data


@dataclass
class PretrainProgress:
    iteration: int
    total: int
    loss: float
    learning_rate: float
    elapsed: float  # seconds of training in this and earlier (resumed) sessions
    checkpointed: bool = False


@dataclass
class _Corpus:
    sampler: CropSampler
    description: dict[str, Any] = field(default_factory=dict)


def draw_hidden_fractions(recipe: str, count: int, generator: torch.Generator) -> torch.Tensor:
    """Per-sample hidden fraction p for ``recipe``, shape (count,)."""
    if recipe == "80-95":
        return torch.randint(80, 96, (count,), generator=generator).float() / 100.0
    return torch.full((count,), 0.30)


def masked_fill_loss(output: torch.Tensor, target: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the hidden pixels only (Eq. 5)."""
    hidden = 1.0 - keep
    return torch.sum(((output - target) * hidden) ** 2) / torch.clamp(hidden.sum(), min=1.0)


def build_corpus(config: PretrainConfig) -> _Corpus:
    folder_planes, names = load_image_folders(config.folders, min_side=config.crop) if config.folders else ([], [])
    rng = np.random.default_rng([config.seed, 1])
    side = (config.procedural_side, config.procedural_side)
    kinds = ["dead-leaves", "fluorescence"]
    procedural = [procedural_image(side, rng, kinds[i % 2]) for i in range(config.procedural_images)] if config.procedural_fraction > 0 else []
    sampler = CropSampler(folder_planes, procedural, procedural_fraction=config.procedural_fraction, size=config.crop)
    description = {
        "folders": {folder: sum(1 for n in names if n.startswith(str(Path(folder)))) for folder in config.folders},
        "folder_planes": len(folder_planes),
        "folder_files": len(set(names)),
        "colour_handling": "luminance plus each of R, G, B as separate grayscale planes",
        "procedural_images": len(procedural),
        "procedural_kinds": kinds if procedural else [],
        "procedural_fraction": sampler.procedural_fraction,
        "crop_normalisation": "per crop: percentiles 0.1/99.9 -> [0.1, 0.9], clipped to [0, 1] (as at inference)",
        "augmentation": "random crop, random 90-degree rotation and horizontal flip",
    }
    return _Corpus(sampler, description)


class Pretrainer:
    """One resumable pre-training run writing into ``out_dir``.

    Iterate :meth:`run` to train; it yields a :class:`PretrainProgress` every
    ``report_every`` iterations and at each checkpoint. ``time_limit`` (seconds) makes a
    session checkpoint and return early so that a later ``resume=True`` continues.
    """

    def __init__(
        self,
        config: PretrainConfig,
        out_dir: str | Path,
        *,
        name: str | None = None,
        device: str | torch.device = "auto",
        resume: bool = False,
        command: Sequence[str] | None = None,
        note: str | None = None,
    ) -> None:
        from napari_zsdenoise.devices import resolve_device

        self.config = config
        self.out_dir = Path(out_dir)
        self.name = name or f"mpi-hourglass-{config.mask_recipe}"
        self.device = resolve_device(device)
        self.command = list(command) if command is not None else None
        self.note = note
        self.state_path = self.out_dir / "state.pt"
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if self.state_path.exists() and not resume:
            raise FileExistsError(f"{self.state_path} exists: resume it, or choose another output folder")
        self.corpus = build_corpus(config)

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.network = SkipHourglass(1, 1, width=config.width, scales=config.scales)
        self.init_info: dict[str, Any] | None = None
        if config.init_weights is not None:
            self.init_info = self._load_initial_weights(config.init_weights)
        self.network.to(self.device).train()
        self.optimizer = torch.optim.Adam(self.network.parameters(), lr=config.learning_rate, betas=config.adam_betas)
        self.schedule = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=config.iterations, eta_min=config.final_learning_rate)
        self.crop_rng = np.random.default_rng([config.seed, 2])
        self.mask_generator = torch.Generator().manual_seed(config.seed + 3)
        self.iteration = 0
        self.elapsed_before = 0.0
        self.recent_losses: list[float] = []
        if resume and self.state_path.exists():
            self._load_state()

    def _load_initial_weights(self, weights: str) -> dict[str, Any]:
        from napari_zsdenoise.networks.checkpoints import load_weights
        from napari_zsdenoise.weights import SHIPPED, shipped_model_card

        network, info = load_weights(weights)
        layout = (network.image_channels, network.mask_channels, network.width, network.scales)
        wanted = (1, 1, self.config.width, self.config.scales)
        if layout != wanted:
            raise ValueError(
                f"init weights {weights} are (image channels, mask channels, width, scales) = {layout}; "
                f"pre-training needs {wanted}"
            )
        self.network.load_state_dict(network.state_dict())
        if str(weights) == SHIPPED:
            earlier = shipped_model_card()
        else:
            earlier = info.get("model_card") or {}
        # Keep how the starting weights were trained: the finished card must describe the
        # whole schedule, even after the starting file is gone.
        history = {key: earlier[key] for key in _LINEAGE_KEYS if key in earlier}
        return {"weights": weights, "sha256": info.get("sha256"), **({"trained": history} if history else {})}

    # -- state -----------------------------------------------------------------
    def _save_state(self, elapsed: float) -> None:
        payload = {
            "config": self.config.to_dict(),
            "iteration": self.iteration,
            "elapsed": elapsed,
            "network": self.network.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "crop_rng": json.dumps(self.crop_rng.bit_generator.state),
            "mask_generator": self.mask_generator.get_state(),
            "recent_losses": list(self.recent_losses),
            "device": describe_device(self.device),
        }
        temporary = self.state_path.with_suffix(".tmp")
        torch.save(payload, temporary)
        temporary.replace(self.state_path)

    def _load_state(self) -> None:
        payload = torch.load(self.state_path, map_location="cpu", weights_only=True)
        if payload["config"] != self.config.to_dict():
            raise ValueError(f"{self.state_path} was written with different settings; resume with the same options")
        self.network.load_state_dict(payload["network"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.schedule.load_state_dict(payload["schedule"])
        self.crop_rng.bit_generator.state = json.loads(payload["crop_rng"])
        self.mask_generator.set_state(payload["mask_generator"])
        self.iteration = int(payload["iteration"])
        self.elapsed_before = float(payload["elapsed"])
        self.recent_losses = [float(x) for x in payload["recent_losses"]]

    # -- training --------------------------------------------------------------
    def step(self) -> float:
        config = self.config
        batch = torch.from_numpy(self.corpus.sampler.batch(config.batch_size, self.crop_rng))
        fractions = draw_hidden_fractions(config.mask_recipe, config.batch_size, self.mask_generator)
        draws = torch.rand(batch.shape, generator=self.mask_generator)
        keep = (draws >= fractions[:, None, None, None]).float()
        batch, keep = batch.to(self.device), keep.to(self.device)
        use_amp = self.device.type == "cuda"
        with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=use_amp):
            output = self.network(batch * keep, keep)
        loss = masked_fill_loss(output.float(), batch, keep)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.schedule.step()
        self.iteration += 1
        value = float(loss.detach())
        self.recent_losses = (self.recent_losses + [value])[-200:]
        return value

    def run(self, *, report_every: int = 10, time_limit: float | None = None) -> Iterator[PretrainProgress]:
        started = time.perf_counter()
        config = self.config
        while self.iteration < config.iterations:
            loss = self.step()
            elapsed = self.elapsed_before + time.perf_counter() - started
            out_of_time = time_limit is not None and time.perf_counter() - started >= time_limit
            checkpoint = self.iteration % config.checkpoint_every == 0 or self.iteration == config.iterations or out_of_time
            if checkpoint:
                self._save_state(elapsed)
            if checkpoint or self.iteration % report_every == 0:
                yield PretrainProgress(self.iteration, config.iterations, loss, self.schedule.get_last_lr()[0], elapsed, checkpoint)
            if out_of_time:
                return
        self.export()

    @property
    def finished(self) -> bool:
        return self.iteration >= self.config.iterations

    def export(self) -> Path:
        """Write ``<name>.pt`` and its model card ``<name>.json``; returns the checkpoint path."""
        from napari_zsdenoise import __version__

        payload = torch.load(self.state_path, map_location="cpu", weights_only=True) if self.state_path.exists() else None
        elapsed = float(payload["elapsed"]) if payload else self.elapsed_before
        card: dict[str, Any] = {
            "name": self.name,
            "model": f"MPI skip hourglass, 1 image + 1 mask channel, width {self.config.width}, {self.config.scales} scales",
            "recipe": {
                "mask": self.config.mask_recipe,
                "mask_description": MASK_RECIPES[self.config.mask_recipe],
                "loss": "mean squared error on hidden pixels only",
                "optimizer": f"Adam betas {list(self.config.adam_betas)}",
                "learning_rate": f"cosine {self.config.learning_rate} -> {self.config.final_learning_rate} over {self.config.iterations} iterations",
                "mixed_precision": "bf16 autocast" if self.device.type == "cuda" else "none (fp32)",
            },
            "corpus": self.corpus.description,
            "initialised_from": self.init_info,
            "iterations": self.iteration,
            "batch": self.config.batch_size,
            "crop": self.config.crop,
            "seed": self.config.seed,
            "config": self.config.to_dict(),
            "wall_time_seconds": round(elapsed, 1),
            "device": payload.get("device", describe_device(self.device)) if payload else describe_device(self.device),
            "final_loss_mean_last_200": float(np.mean(self.recent_losses)) if self.recent_losses else None,
            "command": self.command,
            "note": self.note,
            "software": {"napari_zsdenoise": __version__, "torch": str(torch.__version__), "python": platform.python_version()},
        }
        checkpoint = self.out_dir / f"{self.name}.pt"
        save_hourglass(self.network, checkpoint, extra={"model_card": card})
        card["sha256"] = file_sha256(checkpoint)
        card["file"] = checkpoint.name
        (self.out_dir / f"{self.name}.json").write_text(json.dumps(card, indent=2) + "\n")
        return checkpoint


