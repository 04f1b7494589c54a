"""INS-BSN: zero-shot blind-spot denoising via implicit neural sampling.

Every iteration a random sparse set of *visible* pixels (probability ``p0``) is drawn.
A SIREN ``F`` (an implicit neural representation of the plane, pixel coordinates in,
intensity out) is fitted to the visible pixels only, so it is smooth and mostly free
of noise. The Noise2Noise U-Net ``D`` sees the noisy value at visible pixels and the
SIREN's estimate everywhere else, and is trained (L1) on the *invisible* pixels: those
that are neither visible nor within ``dilation`` cross-steps of a visible pixel, whose
noise is therefore only weakly correlated with anything ``D`` saw. A third term asks
the SIREN at a random sub-pixel offset from each visible pixel to agree with ``D``'s
(detached) output there. Loss: ``L_dn + L_inr + L_mc``, two Adam optimisers.

Choices the paper leaves open (see the methods digest, section 3.6):

* The SIREN's estimate enters ``D``'s input *detached*, so the SIREN learns only from
  ``L_inr`` and ``L_mc``. If ``L_dn`` reached it, the SIREN (a coordinate memoriser)
  could learn the noisy values at the supervised pixels and hand them to ``D``,
  breaking the blind spot.
* The paper does not say how the output image is formed (digest 3.6 #1). Here it is
  an MPI-style masked exponential moving average of ``D``'s output at the invisible
  pixels of every iteration, started from the noisy plane; it is also the live
  preview. So ``result()`` is the EMA, and no extra inference pass is run.
* Coordinates are normalised to [-1, 1] per axis; sub-pixel offsets are drawn in
  pixel units, uniform in [0, 1) per axis, before normalising. Losses are means.
* Optional early stopping on held-out pixels, as for MPI (``methods/_early_stopping.py``):
  held-out pixels enter neither ``L_dn`` nor ``L_inr``, so neither network learns their
  noise. The paper reports no need for it; on FMD crops here the ensemble peaked and
  then fell well before iteration 1200 (docs/design-notes.md, "Early stopping").

What the method is, the choices its paper leaves open and what this package uses:
``docs/methods.md`` (the one copy; this docstring keeps only what the code needs).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from napari_zsdenoise.methods._early_stopping import (
    EnsembleOutputMethod,
    HoldoutEarlyStopping,
    looks_spatially_correlated,
    make_stopping_rule,
)
from napari_zsdenoise.methods._ensemble import MaskedEnsemble
from napari_zsdenoise.methods.base import StepRecord
from napari_zsdenoise.methods.ins_bsn.settings import INSBSNConfig
from napari_zsdenoise.networks.n2n_unet import N2NUNet
from napari_zsdenoise.networks.siren import Siren

_CROSS = torch.tensor([[0.0, 1.0, 0.0], [1.0, 1.0, 1.0], [0.0, 1.0, 0.0]])


def dilate_cross(mask: torch.Tensor, iterations: int) -> torch.Tensor:
    """Binary dilation of a (B, 1, H, W) mask by the 3x3 cross, ``iterations`` times.

    Pixels outside the plane count as unset, as in ``scipy.ndimage.binary_dilation``.
    """
    kernel = _CROSS.to(device=mask.device).reshape(1, 1, 3, 3)
    grown = mask.to(torch.float32)
    for _ in range(iterations):
        grown = (F.conv2d(grown, kernel, padding=1) > 0.5).to(torch.float32)
    return grown > 0.5


def draw_masks(
    shape: tuple[int, ...], visible_fraction: float, dilation: int, generator: torch.Generator, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Boolean (visible, invisible) masks of ``shape`` (B, 1, H, W) for one iteration."""
    visible = torch.rand(shape, generator=generator, device=device) < visible_fraction
    return visible, ~dilate_cross(visible, dilation)


def pixel_grid(height: int, width: int, device: torch.device) -> torch.Tensor:
    """(H*W, 2) float (row, column) indices of every pixel, row-major."""
    rows, cols = torch.meshgrid(torch.arange(height, device=device), torch.arange(width, device=device), indexing="ij")
    return torch.stack([rows.flatten(), cols.flatten()], dim=1).to(torch.float32)


def to_unit_coordinates(pixels: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Map (row, column) pixel positions to [-1, 1] per axis (first pixel -1, last +1)."""
    scale = torch.tensor([2.0 / (height - 1), 2.0 / (width - 1)], device=pixels.device)
    return pixels * scale - 1.0


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    # clamp_min: an empty set (possible on tiny planes) gives 0, not NaN.
    return (values * mask).sum() / mask.sum().clamp_min(1)


@dataclass
class INSBSNLosses:
    """The three loss terms of one iteration and the denoiser output ``x_dn`` (in graph)."""

    denoiser: torch.Tensor
    inr: torch.Tensor
    consistency: torch.Tensor
    denoised: torch.Tensor

    @property
    def total(self) -> torch.Tensor:
        return self.denoiser + self.inr + self.consistency


def ins_bsn_losses(
    denoiser: nn.Module,
    siren: Siren,
    noisy: torch.Tensor,
    visible: torch.Tensor,
    invisible: torch.Tensor,
    offsets: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    holdout: torch.Tensor | None = None,
) -> INSBSNLosses:
    """Forward pass of one INS-BSN iteration on a (1, 1, H, W) plane.

    ``visible`` and ``invisible`` are boolean masks shaped like ``noisy``; ``offsets``
    holds one (row, column) sub-pixel shift in pixel units per visible pixel, in
    row-major order. ``generator`` drives the SIREN's dropout. Pixels set in ``holdout``
    (boolean, like ``noisy``) enter neither the SIREN's nor the denoiser's loss.
    """
    height, width = noisy.shape[-2:]
    pixels = pixel_grid(height, width, noisy.device)
    represented = siren(to_unit_coordinates(pixels, height, width), generator).reshape(noisy.shape)
    fitted, supervised = (visible, invisible) if holdout is None else (visible & ~holdout, invisible & ~holdout)
    inr_loss = _masked_mean((represented - noisy).abs(), fitted)

    shown = visible.to(noisy.dtype)
    denoised = denoiser(shown * noisy + (1.0 - shown) * represented.detach())
    denoiser_loss = _masked_mean((denoised - noisy).abs(), supervised)

    visible_flat = visible.flatten()
    shifted = siren(to_unit_coordinates(pixels[visible_flat] + offsets, height, width), generator)[:, 0]
    target = denoised.detach().flatten()[visible_flat]
    consistency = (shifted - target).abs().sum() / max(target.numel(), 1)
    return INSBSNLosses(denoiser_loss, inr_loss, consistency, denoised)


class INSBSNMethod(EnsembleOutputMethod):
    """INS-BSN on one grayscale plane; see :class:`INSBSNConfig`."""

    config: INSBSNConfig

    def __init__(self, config: INSBSNConfig) -> None:
        super().__init__(config)
        self.iterations_done = 0

    def prepare(self, plane: np.ndarray, plane_seed: int, context: np.ndarray | None = None) -> None:
        config, device, seed, image = self.config, self.device, plane_seed, plane
        self._noisy = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None].to(device)
        # Initialise on the CPU from a private RNG: reproducible, and the caller's
        # global torch RNG is left untouched.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.denoiser = N2NUNet(1, 1)
            self.siren = Siren(config.siren_width, config.siren_layers, config.siren_dropout)
        self.denoiser.to(device).train()
        self.siren.to(device).train()
        self.denoiser_optimizer = torch.optim.Adam(self.denoiser.parameters(), lr=config.learning_rate)
        self.siren_optimizer = torch.optim.Adam(self.siren.parameters(), lr=config.siren_learning_rate)
        self._generator = torch.Generator(device=device)
        self._generator.manual_seed(seed)
        # The ensemble starts at the noisy plane, as in MPI, unless it is validated: a
        # noisy start would match the noisy values at held-out pixels by construction.
        start = "zero" if config.early_stopping else "noisy"
        self._ensemble = MaskedEnsemble(self._noisy, config.ema_beta, start=start)
        self.early_stopping = None
        if config.early_stopping:
            self.early_stopping = HoldoutEarlyStopping(
                self._noisy, holdout_fraction=config.holdout_fraction, validation_every=config.validation_every,
                seed=seed,
                # Decided from the image: the young INS-BSN ensemble is far from the
                # signal for many checks on larger planes, so its residual correlates
                # because of missing signal, not noise (docs/design-notes.md).
                rule=make_stopping_rule(config, correlated_noise=looks_spatially_correlated(image)))
        self.iterations_done = 0

    def step(self) -> StepRecord:
        config = self.config
        visible, invisible = draw_masks(
            tuple(self._noisy.shape), config.visible_fraction, config.dilation, self._generator, self.device
        )
        offsets = torch.rand((int(visible.sum()), 2), generator=self._generator, device=self.device)
        losses = ins_bsn_losses(
            self.denoiser, self.siren, self._noisy, visible, invisible, offsets, generator=self._generator,
            holdout=None if self.early_stopping is None else self.early_stopping.holdout,
        )
        with torch.no_grad():
            # The ensemble takes the prediction of the weights before this update.
            self._ensemble.update(losses.denoised.detach(), invisible)
        total = losses.total
        self.denoiser_optimizer.zero_grad(set_to_none=True)
        self.siren_optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.denoiser_optimizer.step()
        self.siren_optimizer.step()
        return self._finish_step(total)

    def _to_plane(self, estimate: torch.Tensor) -> np.ndarray:
        return estimate[0, 0].detach().cpu().numpy().astype(np.float32, copy=True)
