"""Training a MID model on a user's noisy dataset (Chihaoui & Favaro 2025, Algorithm 1).

Each round trains a fresh network (the paper retrains from scratch) to predict clean
patches ``x`` from ``M * (x + n)`` with the mean squared error over all pixels (Eqs. 2
and 3), ``M`` a Bernoulli mask hiding a fraction ``alpha`` of the pixels. Round 0 draws
``n`` from white Gaussian noise of the level measured on the noisy planes; round k >= 1
from the noise bank harvested with the network of round k - 1 (Eq. 4, indexed as N_k
from D_{k-1}; see ``noise_bank.py``). Clean patches are procedural fluorescence scenes
and, optionally, the user's own clean images, each scaled so that with the round's noise
added it sits where ``denoise`` puts a noisy plane (:func:`scale_like_noisy`).

After each round the network and the next round's bank are written to ``OUT.partial/``,
so an interrupted fit continues from its last finished round. Every random stream is
seeded from (seed, round), so a continued fit gives the same model as one that ran
through, on the same device and CPU thread count.
"""

from __future__ import annotations

import hashlib
import platform
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from napari_zsdenoise.devices import describe_device
from napari_zsdenoise.methods.mid.model import every_nth_pixel, new_network, predict_masked, save_model, subplanes
from napari_zsdenoise.methods.mid.noise_bank import GaussianNoise, NoiseBank, harvest_residuals, robust_noise_sigma
from napari_zsdenoise.methods.mid.settings import CITATION, MIDTrainingSettings
from napari_zsdenoise.normalization import IntensityScaling
from napari_zsdenoise.pretraining.corpus import augment, load_image_folders, random_crop

__all__ = ["CleanPatches", "FitProgress", "fit_dataset", "harvest_bank", "partial_folder", "planes_for_training"]

#: Residual maps of planes larger than this side are predicted in tiles, to bound memory.
HARVEST_TILE = 512
# Last losses of a round averaged into its model-card figure.
_RECENT_LOSSES = 50
# Random streams per round: each has its own seed, so a round can be rerun alone.
_NETWORK, _PATCHES, _NOISE_AND_MASKS, _HARVEST, _SCALING = range(5)
_POOL_STREAM = 1_000_003
_STATE_FORMAT = "napari-zsdenoise/mid-fit-state"


@dataclass(frozen=True)
class FitProgress:
    """One report of :func:`fit_dataset`.

    ``stage`` is ``"resumed"``, ``"noise"`` (the first round's Gaussian level),
    ``"warning"`` (something about the data the user should know before waiting for the fit),
    ``"train"`` (one optimiser step: ``iteration`` and ``loss`` set), ``"bank"`` (the next
    round's noise bank is built), ``"round"`` (a round finished and was saved) or
    ``"saved"`` (the model file is written). ``round`` counts from 1; ``elapsed`` is the
    seconds of fitting so far, earlier sessions of a continued fit included.
    """

    stage: str
    round: int
    rounds: int
    iteration: int = 0
    iterations: int = 0
    loss: float | None = None
    elapsed: float = 0.0
    message: str = ""


ProgressCallback = Callable[[FitProgress], None]


def partial_folder(out: str | Path) -> Path:
    """Where a fit writing ``out`` keeps its finished rounds until the model file is written."""
    out = Path(out)
    return out.with_name(out.name + ".partial")


def _seed(seed: int, round_index: int, stream: int) -> int:
    return int(np.random.default_rng([seed, round_index, stream]).integers(2**31 - 1))


# Steps of the fixed point that scales a clean plane like a noisy one; it settles within a few.
_SCALING_STEPS = 6
# The least 0.1-99.9 percentile span a clean plane keeps (normalised units), so that noise as
# wide as the whole range still leaves some signal to learn.
_LEAST_SPAN = 0.05


def scale_like_noisy(clean: np.ndarray, noise: GaussianNoise | NoiseBank, rng: np.random.Generator,
                     median: float | None = None) -> np.ndarray:
    """``clean`` mapped affinely so that, with ``noise`` added, it sits where ``denoise`` puts a noisy plane.

    ``denoise`` maps a noisy plane's 0.1/99.9 percentiles to 0.1/0.9, so its clean content
    lies inside that range by about the noise's spread. A clean plane scaled by its own
    percentiles would have its background at 0.1, below any real background, and a network
    trained on it learns intensities the data does not have. The noise is fixed in these
    units, so the map is found by repetition: add noise, fit the scaling on the sum, apply
    it to the clean plane. Returned clipped to [0, 1], the network's output range.

    With ``median`` (the user's normalised noisy planes' median level), the plane is then
    stretched about its 99.9th percentile so that its median sits there too. The percentiles
    of a noisy plane are set by the noise's tails, which the noise model gets wrong on real
    cameras (values clipped at zero, residuals that still carry some structure): on FMD
    confocal planes the step above alone lifted the clean background far above the data's,
    and the network learnt that offset (docs/methods.md). Noise has zero mean, so the
    median of the noisy planes is a level their clean content has.
    """
    x = IntensityScaling.fit(clean).normalize(clean).astype(np.float64)
    draws = noise.unit_draws(x.shape, rng)
    for _ in range(_SCALING_STEPS):
        noisy = x + draws * np.sqrt(noise.model.variance(x))
        x = IntensityScaling.fit(noisy).normalize(x).astype(np.float64)
        low, high = np.percentile(x, [0.1, 99.9])
        if high - low < _LEAST_SPAN:
            centre = (high + low) / 2
            x = centre + (x - centre) * (_LEAST_SPAN / max(high - low, 1e-12))
    if median is not None:
        middle, high = np.median(x), np.percentile(x, 99.9)
        if high - middle > 1e-6 and high > median:
            x = high + (x - high) * (high - median) / (high - middle)
    return np.clip(x, 0.0, 1.0).astype(np.float32)


class CleanPatches:
    """Clean training patches: procedural fluorescence scenes and the planes of clean image folders.

    Before each round every plane is scaled for that round's noise by
    :func:`scale_like_noisy`, so that the synthetic noisy patches are in the units of the
    user's planes as ``denoise`` scales them.
    """

    def __init__(self, settings: MIDTrainingSettings, folders: Sequence[str | Path] = ()) -> None:
        from napari_zsdenoise.pretraining.procedural import fluorescence_scene

        self.size = settings.patch_size
        rng = np.random.default_rng([settings.seed, _POOL_STREAM])
        side = (settings.procedural_side, settings.procedural_side)
        self.procedural = [fluorescence_scene(side, rng) for _ in range(settings.procedural_images)]
        self.folder_planes, names = load_image_folders(folders, min_side=self.size) if folders else ([], [])
        if folders and not self.folder_planes:
            raise ValueError(f"no clean plane of at least {self.size} pixels a side in {', '.join(map(str, folders))}")
        self.folder_share = settings.clean_fraction if self.folder_planes else 0.0
        if not self.procedural:
            self.folder_share = 1.0
        if not self.folder_planes and not self.procedural:
            raise ValueError("no clean images to train on: give clean folders, or procedural_images above 0")
        if self.folder_share == 0.0 and not self.procedural:
            raise ValueError("clean_fraction 0 with no procedural images leaves nothing to train on")
        self._scaled: tuple[list[np.ndarray], list[np.ndarray]] | None = None
        per_file: dict[str, int] = {}
        for name in names:
            per_file[name] = per_file.get(name, 0) + 1
        self.description = {
            "procedural_scenes": len(self.procedural),
            "procedural_side": settings.procedural_side if self.procedural else None,
            "clean_files": {Path(name).name: count for name, count in per_file.items()},
            "clean_planes": len(self.folder_planes),
            "share_from_clean_folders": self.folder_share,
            "scaling": "each plane affinely, per round, so that with the round's noise added its 0.1/99.9 "
                       "percentiles sit at 0.1/0.9 (as denoise scales a noisy plane), then stretched about its "
                       "99.9th percentile so that its median is the noisy planes' median; clipped to [0, 1]",
            "augmentation": "random crop, rotation by multiples of 90 degrees and flip",
        }

    def scale_for(self, noise: GaussianNoise | NoiseBank, rng: np.random.Generator,
                  median: float | None = None) -> None:
        """Scale every plane for ``noise`` and the noisy planes' ``median`` (see :func:`scale_like_noisy`)
        before a round's batches."""
        self._scaled = ([scale_like_noisy(plane, noise, rng, median) for plane in self.folder_planes],
                        [scale_like_noisy(plane, noise, rng, median) for plane in self.procedural])

    def batch(self, count: int, rng: np.random.Generator) -> np.ndarray:
        """(count, 1, size, size) float32 patches."""
        if self._scaled is None:
            raise RuntimeError("scale the clean planes for a round's noise first (scale_for)")
        folder, procedural = self._scaled
        patches = []
        for _ in range(count):
            pool = folder if rng.uniform() < self.folder_share else procedural
            plane = pool[int(rng.integers(len(pool)))]
            patches.append(augment(random_crop(plane, self.size, rng), rng))
        return np.stack(patches)[:, None].astype(np.float32)


def _train_round(network: torch.nn.Module, round_index: int, noise: GaussianNoise | NoiseBank, clean: CleanPatches,
                 settings: MIDTrainingSettings, device: torch.device, report: Callable[[int, float], None],
                 mask_range: tuple[float, float], median: float | None = None) -> list[float]:
    """Eq. 2/3 for one round: MSE between the network's output for ``M * (x + n)`` and ``x``, ``M`` hiding a
    fraction drawn per patch from ``mask_range``."""
    network.to(device).train()
    optimizer = torch.optim.Adam(network.parameters(), lr=settings.learning_rate)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=settings.iterations_per_round,
                                                          eta_min=settings.final_learning_rate)
    clean.scale_for(noise, np.random.default_rng(_seed(settings.seed, round_index, _SCALING)), median)
    patch_rng = np.random.default_rng(_seed(settings.seed, round_index, _PATCHES))
    # Noise and masks come from the CPU, so that the draws do not depend on the device.
    generator = torch.Generator().manual_seed(_seed(settings.seed, round_index, _NOISE_AND_MASKS))
    low, high = mask_range
    losses = []
    for iteration in range(1, settings.iterations_per_round + 1):
        clean_batch = torch.from_numpy(clean.batch(settings.batch_size, patch_rng))
        noisy = clean_batch + noise.sample(clean_batch, generator)
        ratios = low + (high - low) * torch.rand(settings.batch_size, generator=generator)
        keep = (torch.rand(clean_batch.shape, generator=generator) >= ratios.view(-1, 1, 1, 1)).to(torch.float32)
        clean_batch, noisy, keep = clean_batch.to(device), noisy.to(device), keep.to(device)
        loss = F.mse_loss(network(noisy * keep, keep), clean_batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(float(loss.detach()))
        report(iteration, losses[-1])
    network.eval()
    return losses


def harvest_bank(network: torch.nn.Module, planes: Sequence[np.ndarray], round_index: int,
                 settings: MIDTrainingSettings, device: torch.device,
                 residuals: Callable[..., Any] = harvest_residuals) -> NoiseBank:
    """The noise bank of round ``round_index + 1``: residuals of ``network``'s masked predictions of ``planes``.

    The masks hide the fraction the network was trained with (the middle of its range).
    """
    network.to(device).eval()
    low, high = settings.mask_ratios(round_index)

    def predict(plane: np.ndarray, keep: np.ndarray) -> np.ndarray:
        plane_tensor = torch.from_numpy(plane)[None, None].to(device)
        keep_tensor = torch.from_numpy(keep)[None, None].to(device)
        prediction = predict_masked(network, plane_tensor, keep_tensor, tile=HARVEST_TILE)
        return prediction[0, 0].cpu().numpy()

    rng = np.random.default_rng(_seed(settings.seed, round_index, _HARVEST))
    harvests = residuals(predict, planes, masks_per_plane=settings.masks_per_plane,
                         mask_ratio=(low + high) / 2, rng=rng)
    return NoiseBank.from_harvests(harvests, maps=len(planes) * settings.masks_per_plane,
                                   patch_size=settings.patch_size, count=settings.bank_patches,
                                   signal_dependent=settings.signal_dependent, rng=rng)


def _fingerprint(planes: Sequence[np.ndarray], settings: MIDTrainingSettings, clean: CleanPatches) -> str:
    digest = hashlib.sha256(repr((sorted(settings.to_dict().items()), sorted(clean.description.items()))).encode())
    for plane in planes:
        digest.update(repr(plane.shape).encode())
        digest.update(np.ascontiguousarray(plane, dtype=np.float32).tobytes())
    return digest.hexdigest()


def _noise_state(noise: GaussianNoise | NoiseBank | None) -> dict[str, Any] | None:
    if noise is None:
        return None
    if isinstance(noise, GaussianNoise):
        return {"kind": "gaussian", "sigma": noise.sigma}
    return {"kind": "bank", **noise.state()}


def _noise_from_state(state: dict[str, Any] | None) -> GaussianNoise | NoiseBank | None:
    if state is None:
        return None
    if state["kind"] == "gaussian":
        return GaussianNoise(state["sigma"])
    return NoiseBank.from_state(state)


#: The sub-plane factor ``pixel_shuffle=0`` chooses for spatially correlated noise.
AUTOMATIC_PIXEL_SHUFFLE = 2


def correlated_noise_warning(pixel_shuffle: int) -> str:
    """What fit_dataset says before training when the planes' noise is correlated between neighbours."""
    if pixel_shuffle > 1:
        what = (f"MID trains and denoises on sub-planes of {every_nth_pixel(pixel_shuffle)} (pixel_shuffle), where it "
                f"is much less so; compare its result on a plane or two with a zero-shot preset such as bsn-balanced")
    else:
        what = ("MID on whole planes leaves much of such noise in place; a zero-shot preset such as bsn-balanced "
                "does better")
    return (f"the noise of these planes is correlated between neighbouring pixels (as a camera's often is): {what} "
            f"(docs/benchmarks.md, MID)")


def choose_pixel_shuffle(planes: Sequence[np.ndarray], settings: MIDTrainingSettings) -> tuple[bool, int]:
    """Whether the planes' noise looks spatially correlated, and the sub-plane factor to train with."""
    correlated = noise_looks_spatially_correlated(planes)
    if settings.pixel_shuffle:
        return correlated, settings.pixel_shuffle
    large_enough = all(min(plane.shape) // AUTOMATIC_PIXEL_SHUFFLE >= settings.patch_size for plane in planes)
    return correlated, AUTOMATIC_PIXEL_SHUFFLE if correlated and large_enough else 1


# Planes looked at to decide whether a dataset's noise is spatially correlated.
_CORRELATION_SAMPLE = 8


def noise_looks_spatially_correlated(planes: Sequence[np.ndarray]) -> bool:
    """Whether most of up to eight planes, evenly spread over ``planes``, have spatially correlated noise."""
    from napari_zsdenoise.methods._early_stopping import looks_spatially_correlated

    chosen = np.unique(np.linspace(0, len(planes) - 1, min(len(planes), _CORRELATION_SAMPLE)).round().astype(int))
    votes = [looks_spatially_correlated(planes[index]) for index in chosen]
    return sum(votes) * 2 > len(votes)


def checked_planes(noisy_planes: Sequence[np.ndarray], settings: MIDTrainingSettings) -> list[np.ndarray]:
    """The planes as 2-D arrays, or a one-line ValueError for any plane :func:`fit_dataset` cannot train on."""
    planes = []
    # Automatic sub-planes fall back to whole planes where these are too small for them.
    factor = max(1, settings.pixel_shuffle)
    parts = f" in sub-planes of {every_nth_pixel(factor)}" if factor > 1 else ""
    for index, plane in enumerate(noisy_planes):
        plane = np.asarray(plane)
        if plane.ndim != 2:
            raise ValueError(f"noisy plane {index} has shape {plane.shape}; each plane must be 2-D")
        if min(plane.shape) // factor < settings.patch_size:
            raise ValueError(f"noisy plane {index} ({plane.shape[0]}x{plane.shape[1]}) is smaller{parts} than the "
                             f"training patches ({settings.patch_size} px); lower patch_size")
        if not np.isfinite(plane).all():
            raise ValueError(f"noisy plane {index} holds NaN or infinite values")
        planes.append(plane)
    if not planes:
        raise ValueError("no noisy planes to train on")
    return planes


def fit_dataset(
    noisy_planes: Sequence[np.ndarray],
    *,
    out: str | Path,
    clean_folders: Sequence[str | Path] = (),
    settings: MIDTrainingSettings | None = None,
    resume: bool = True,
    progress: ProgressCallback | None = None,
    device: str | torch.device | None = "auto",
    sources: Mapping[str, int] | None = None,
    overwrite: bool = False,
    clean_patches: CleanPatches | None = None,
    residuals: Callable[..., Any] = harvest_residuals,
) -> Path:
    """Train a MID model on ``noisy_planes`` (2-D arrays in any units) and write it to ``out``.

    Parameters
    ----------
    noisy_planes
        The user's noisy planes; each is scaled by its own percentiles, as ``denoise``
        scales a plane by default. Every plane must be at least ``patch_size`` a side
        (its sub-planes, with ``pixel_shuffle``).
    out
        The model file to write (``denoise(..., method="mid", weights=out)``).
    clean_folders
        Folders of clean or high-SNR images (searched recursively) used beside the
        procedural scenes, ``settings.clean_fraction`` of the patches.
    settings
        :class:`MIDTrainingSettings`; the defaults take minutes on a laptop CPU.
    resume
        Continue from ``out.partial/`` when an earlier fit of the same data and settings
        stopped there; False starts afresh (and replaces it).
    progress
        Called with a :class:`FitProgress` at every step and stage; an exception it
        raises (e.g. KeyboardInterrupt) stops the fit, keeping the finished rounds.
    sources
        File name -> planes, for the model card (default: the planes as one array).
    overwrite
        Replace ``out`` if it exists.
    clean_patches
        Where the clean training patches come from; by default procedural scenes and
        ``clean_folders`` (:class:`CleanPatches`). A study may pass its own (the ground truth,
        to measure what MID's own clean images cost).
    residuals
        How a round harvests noise residuals from the planes, with the signature of
        :func:`~napari_zsdenoise.methods.mid.noise_bank.harvest_residuals` (the default). A
        study may pass ground-truth residuals, to measure what MID's noise estimate costs.

    Returns
    -------
    Path
        ``out``.
    """
    from napari_zsdenoise import __version__
    from napari_zsdenoise.devices import resolve_device

    settings = settings or MIDTrainingSettings()
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; choose another name or overwrite it")
    device = resolve_device(None if device is None else str(device))
    planes = checked_planes(noisy_planes, settings)
    normalised = [IntensityScaling.fit(plane).normalize(plane) for plane in planes]
    report = progress or (lambda event: None)
    correlated, factor = choose_pixel_shuffle(normalised, settings)
    if correlated:
        report(FitProgress("warning", 1, settings.rounds, message=correlated_noise_warning(factor)))
    normalised = [part for plane in normalised for part in subplanes(plane, factor)]
    schedule = [settings.mask_ratios(index, correlated) for index in range(settings.rounds)]
    median = float(np.median([np.median(plane) for plane in normalised]))
    clean = CleanPatches(settings, clean_folders) if clean_patches is None else clean_patches
    fingerprint = _fingerprint(normalised, settings, clean)
    partial = partial_folder(out)
    state_path = partial / "state.pt"

    finished, network, history, elapsed_before = 0, None, [], 0.0
    noise: GaussianNoise | NoiseBank | None = None
    if resume and state_path.exists():
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        if state.get("format") != _STATE_FORMAT or state.get("fingerprint") != fingerprint:
            raise ValueError(f"{partial} holds a fit of other data or settings; delete it, or start afresh "
                             f"(resume=False, CLI --no-resume)")
        finished, history, elapsed_before = int(state["rounds_done"]), list(state["history"]), float(state["elapsed"])
        noise = _noise_from_state(state["noise"])
        network = new_network(settings.width, settings.scales, 0)
        network.load_state_dict(state["network"])
        report(FitProgress("resumed", finished, settings.rounds, elapsed=elapsed_before,
                           message=f"continuing after round {finished} of {settings.rounds} from {partial}"))
    elif partial.exists():
        shutil.rmtree(partial)

    started = time.perf_counter()

    def elapsed() -> float:
        return elapsed_before + time.perf_counter() - started

    if finished == 0:
        noise = GaussianNoise(robust_noise_sigma(normalised))
        report(FitProgress("noise", 1, settings.rounds, elapsed=elapsed(),
                           message=f"round 1 noise: Gaussian, sigma {noise.sigma:.4f} (normalised units)"))
    for round_index in range(finished, settings.rounds):
        round_started = time.perf_counter()
        network = new_network(settings.width, settings.scales, _seed(settings.seed, round_index, _NETWORK))
        trained_with = noise

        def step_report(iteration: int, loss: float, number: int = round_index + 1) -> None:
            report(FitProgress("train", number, settings.rounds, iteration, settings.iterations_per_round, loss,
                               elapsed()))

        losses = _train_round(network, round_index, trained_with, clean, settings, device, step_report,
                              schedule[round_index], median)
        noise = harvest_bank(network, normalised, round_index, settings, device, residuals) \
            if round_index < settings.rounds - 1 else None
        history.append({"round": round_index + 1, "mask_ratio": list(schedule[round_index]),
                        "noise": trained_with.describe(), "final_loss": float(np.mean(losses[-_RECENT_LOSSES:])),
                        "seconds": round(time.perf_counter() - round_started, 1)})
        partial.mkdir(parents=True, exist_ok=True)
        temporary = state_path.with_suffix(".tmp")
        torch.save({"format": _STATE_FORMAT, "fingerprint": fingerprint, "rounds_done": round_index + 1,
                    "network": {k: v.detach().cpu() for k, v in network.state_dict().items()},
                    "noise": _noise_state(noise), "history": history, "elapsed": elapsed()}, temporary)
        temporary.replace(state_path)
        report(FitProgress("round", round_index + 1, settings.rounds, elapsed=elapsed(),
                           message=f"round {round_index + 1} done, loss {history[-1]['final_loss']:.5f}"))
        if noise is not None:
            report(FitProgress("bank", round_index + 2, settings.rounds, elapsed=elapsed(),
                               message=f"round {round_index + 2} noise: {len(noise)} residual patches of the "
                                       f"round {round_index + 1} network, variance {noise.model.a:.3g}*s + "
                                       f"{noise.model.b:.3g}"))

    total = elapsed()
    card = {
        "method": f"MID, Mask, Inpaint and Denoise ({CITATION})",
        "network": f"skip hourglass, masked plane and mask in, 1 channel out, width {settings.width}, "
                   f"{settings.scales} scales",
        "sources": dict(sources) if sources else {"array": len(planes)},
        "noisy_planes": len(planes),
        "noise_spatially_correlated": correlated,
        "pixel_shuffle": factor,
        "training_planes": len(normalised),
        "noisy_scaling": "each plane: percentiles 0.1/99.9 to 0.1/0.9, as denoise's default normalization='plane'",
        "clean": {**clean.description, "noisy_median": round(median, 4)},
        "rounds": settings.rounds,
        "iterations_per_round": settings.iterations_per_round,
        "batch_size": settings.batch_size,
        "patch_size": settings.patch_size,
        "masking_schedule": [list(mask_range) for mask_range in schedule],
        "optimizer": f"Adam, learning rate cosine {settings.learning_rate:g} -> {settings.final_learning_rate:g} "
                     f"per round, a new network each round",
        "loss": "mean squared error against the clean patch over all pixels",
        "round_history": history,
        "seconds": round(total, 1),
        "device": describe_device(device),
        "seed": settings.seed,
        "settings": settings.to_dict(),
        "software": {"napari_zsdenoise": __version__, "torch": str(torch.__version__),
                     "python": platform.python_version()},
    }
    save_model(network, out, noise_model=history[-1]["noise"], model_card=card, pixel_shuffle=factor)
    shutil.rmtree(partial, ignore_errors=True)
    report(FitProgress("saved", settings.rounds, settings.rounds, elapsed=total, message=f"wrote {out}"))
    return out


def planes_for_training(image: np.ndarray) -> list[np.ndarray]:
    """Every 2-D plane of ``image`` (leading axes flattened), checked as ``denoise`` checks an image."""
    from napari_zsdenoise._validation import check_image_array

    image = np.asarray(image)
    check_image_array(image)
    return list(image.reshape(-1, *image.shape[-2:]))
