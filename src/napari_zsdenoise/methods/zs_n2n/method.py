"""Zero-Shot Noise2Noise (Mansour & Heckel, CVPR 2023).

The noisy plane is split by two fixed diagonal-mean downsamplers into two half-size
images whose noise is nearly independent; a tiny residual network is trained to map
each to the other (residual loss) and to commute with downsampling (consistency loss).
The full-size estimate ``f(y)`` that the consistency term computes every step is the
preview and the result.

What the method is, the choices its paper leaves open and what this package uses:
``docs/methods.md`` (the one copy; this docstring keeps only what the code needs).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from napari_zsdenoise.methods._planes import plane_to_tensor, tensor_to_plane
from napari_zsdenoise.methods.base import DenoisingMethod, StepRecord
from napari_zsdenoise.methods.zs_n2n.settings import ZSN2NConfig
from napari_zsdenoise.networks.noise_predictor import NoisePredictor

_DIAGONAL = torch.tensor([[0.5, 0.0], [0.0, 0.5]])
_ANTI_DIAGONAL = torch.tensor([[0.0, 0.5], [0.5, 0.0]])


def pair_downsample(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, C, H, W) with even H, W -> two (B, C, H/2, W/2) images.

    The first averages the main diagonal of every 2x2 block, the second the
    anti-diagonal, so the two never share a pixel.
    """
    channels = image.shape[1]
    kernels = [k.to(image).reshape(1, 1, 2, 2).repeat(channels, 1, 1, 1) for k in (_DIAGONAL, _ANTI_DIAGONAL)]
    first, second = (F.conv2d(image, k, stride=2, groups=channels) for k in kernels)
    return first, second


def optimiser_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer,
                   schedule: torch.optim.lr_scheduler.LRScheduler) -> torch.Tensor:
    """Back-propagate ``loss``, update the weights and the learning rate; return the detached loss."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    schedule.step()
    return loss.detach()


def zs_n2n_losses(network: NoisePredictor, noisy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (residual + consistency loss, full-size estimate f(y)) for one step."""
    first, second = pair_downsample(noisy)
    denoised_first, denoised_second = network.denoise(first), network.denoise(second)
    residual = 0.5 * (F.mse_loss(first, denoised_second) + F.mse_loss(second, denoised_first))
    full = network.denoise(noisy)
    full_first, full_second = pair_downsample(full)
    consistency = 0.5 * (F.mse_loss(denoised_first, full_first) + F.mse_loss(denoised_second, full_second))
    return residual + consistency, full


class ZSN2NMethod(DenoisingMethod):
    """ZS-N2N on one grayscale plane; see :class:`ZSN2NConfig`."""

    config: ZSN2NConfig

    def __init__(self, config: ZSN2NConfig) -> None:
        super().__init__(config)
        self.iterations_done = 0

    def prepare(self, plane: np.ndarray, plane_seed: int, context: np.ndarray | None = None) -> None:
        self._height, self._width = plane.shape
        # Odd sides are reflected by one pixel so the 2x2 downsamplers tile the plane.
        tensor = plane_to_tensor(plane, self.device, multiple=2)
        self._noisy = tensor
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(plane_seed)
            self.network = NoisePredictor(1, self.config.hidden_channels)
        self.network.to(self.device)
        self.optimizer = torch.optim.Adam(self.network.parameters(), lr=self.config.learning_rate)
        self.schedule = torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=self.config.step_size, gamma=self.config.gamma)
        self._estimate = tensor.clone()
        self.iterations_done = 0

    def step(self) -> StepRecord:
        loss, full = zs_n2n_losses(self.network, self._noisy)
        self._estimate = full.detach()  # f(y) under the weights before this update
        self.iterations_done += 1
        return StepRecord(optimiser_step(loss, self.optimizer, self.schedule))

    def preview(self) -> np.ndarray:
        """The estimate of the latest step (made before its update, so no extra pass)."""
        return tensor_to_plane(self._estimate, self._height, self._width)

    def result(self) -> np.ndarray:
        with torch.no_grad():
            final = self.network.denoise(self._noisy)
        return tensor_to_plane(final, self._height, self._width)
