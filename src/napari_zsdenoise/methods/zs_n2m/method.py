"""Zero-Shot Noise2Mean (ZS-N2M; digest section 4).

Stage 1 trains the small MBD network ``f`` on pairs of half-size images drawn by a
random-mask downsampler: every pair mixes the two diagonal means of each 2x2 block
under a balanced random mask, so the pair's mean image is the same 2x2 average for
every mask. Three losses tie ``f`` to that mean: interactive equality (the pair's outputs
agree with the downsampled full-size output, cross-paired), cross mapping (each output
matches the other input), and interactive denoising (where the two outputs disagree
locally, they are pulled towards their local mean). ``f(y)`` is the stage-1 estimate
(ZS-N2M*, the ``zs-n2m-fast`` preset stops here).

Stage 2 freezes ``f`` and trains the larger GRD network ``h`` to map the half-size mean
image to the 2x2 average of ``f(y)`` (reconstruction) while the 2x2 average of ``h(y)``
matches the same target (consistency); ``h(y)`` is the final estimate.

Choices the paper leaves open (digest 4.9), made here:
- A fresh balanced mask every stage-1 step (exactly half of the half-size pixels take
  the first diagonal): more distinct pairs than any fixed set, at no cost.
- ``f`` is ZS-N2N's residual network (``y - net(y)``), trained with Adam; the learning
  rate halves after 75 % of the stage, like ZS-N2N's 1500-of-2000 step schedule.
- The contrast-similarity map ``d`` and the local means are treated as a target (no
  gradient through them), so the interactive-denoising loss smooths the outputs instead
  of inflating their local variance to make ``d`` approach 1.
- ``C`` in ``d`` is SSIM's ``(0.03 L)^2`` with L = 1 (the engine's unit range).
- ``h`` is the Noise2Noise U-Net (about 1M parameters; the paper's 2.7M U-Net is not
  specified further), predicting the clean image directly (see ``RefinementUNet``), Adam
  5e-4, halving after 75 % of stage 2.
- Stage 2 takes 500 steps: a U-Net step costs several stage-1 steps on a CPU and
  ``h(y)`` levels off well before 1500 (docs/design-notes.md, "ZS-N2M stage 2 length").
- Stage 2 starts from an untrained U-Net's output, so the preview keeps showing
  ``f(y)`` for the first tenth of stage 2 (at least 20 steps) and then switches to ``h(y)``.

What the method is, the choices its paper leaves open and what this package uses:
``docs/methods.md`` (the one copy; this docstring keeps only what the code needs).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from napari_zsdenoise.methods._planes import plane_to_tensor, tensor_to_plane
from napari_zsdenoise.methods.base import StepRecord
from napari_zsdenoise.methods.zs_n2m.settings import ZSN2MConfig
from napari_zsdenoise.methods.zs_n2n.method import ZSN2NMethod, optimiser_step, pair_downsample
from napari_zsdenoise.networks.noise_predictor import NoisePredictor
from napari_zsdenoise.networks.refinement_unet import RefinementUNet


def balanced_mask(shape: tuple[int, ...], generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """A float mask of ``shape`` with exactly ``floor(n / 2)`` ones at random positions."""
    count = int(np.prod(shape))
    order = torch.randperm(count, generator=generator)
    mask = (order < count // 2).to(torch.float32).reshape(shape)
    return mask.to(device)


def mix_pair(first: torch.Tensor, second: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The random-mask downsampler: swap the two half-size images where ``mask`` is 0."""
    return first * mask + second * (1 - mask), first * (1 - mask) + second * mask


def local_mean(image: torch.Tensor, window: int) -> torch.Tensor:
    padded = F.pad(image, (window // 2,) * 4, mode="reflect")
    return F.avg_pool2d(padded, window, stride=1)


def contrast_similarity(first: torch.Tensor, second: torch.Tensor, window: int, constant: float) -> torch.Tensor:
    """SSIM's contrast term ``2 s1 s2 / (s1^2 + s2^2 + C)`` from local standard deviations."""
    deviations = []
    for image in (first, second):
        mean = local_mean(image, window)
        deviations.append(torch.sqrt(torch.clamp(local_mean(image * image, window) - mean * mean, min=0.0) + 1e-12))
    return 2 * deviations[0] * deviations[1] / (deviations[0] ** 2 + deviations[1] ** 2 + constant)


def stage1_losses(network: NoisePredictor, noisy: torch.Tensor, mask: torch.Tensor, config: ZSN2MConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted MBD loss for one mask and the full-size estimate ``f(y)``."""
    first, second = mix_pair(*pair_downsample(noisy), mask)
    full = network.denoise(noisy)
    full_first, full_second = mix_pair(*pair_downsample(full), mask)
    out_first, out_second = network.denoise(first), network.denoise(second)
    interactive_equality = F.mse_loss(out_first, full_second) + F.mse_loss(out_second, full_first)
    cross_mapping = F.mse_loss(out_first, second) + F.mse_loss(out_second, first)
    with torch.no_grad():
        similarity = contrast_similarity(out_first, out_second, config.window, config.contrast_constant)
        targets = [similarity * out + (1 - similarity) * local_mean(out, config.window) for out in (out_first, out_second)]
    interactive_denoising = F.mse_loss(out_first, targets[0]) + F.mse_loss(out_second, targets[1])
    loss = config.alpha_ie * interactive_equality + config.alpha_cm * cross_mapping + config.alpha_id * interactive_denoising
    return loss, full


class ZSN2MMethod(ZSN2NMethod):
    """ZS-N2M (both stages) or ZS-N2M* (``refine_share=0``) on one grayscale plane.

    It shares ZS-N2N's network, downsampler and preview; stage 1's losses and stage 2 are its own.
    """

    config: ZSN2MConfig

    def __init__(self, config: ZSN2MConfig) -> None:
        super().__init__(config)
        self.iterations_done = 0
        self.stage1_iterations = config.iterations - config.refine_iterations
        self._refiner: RefinementUNet | None = None

    def prepare(self, plane: np.ndarray, plane_seed: int, context: np.ndarray | None = None) -> None:
        device, seed = self.device, plane_seed
        self._height, self._width = plane.shape
        tensor = plane_to_tensor(plane, device, multiple=2)  # the 2x2 downsamplers need even sides
        self._noisy, self._seed = tensor, seed
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.network = NoisePredictor(1, self.config.hidden_channels)
        self.network.to(device)
        self.optimizer = torch.optim.Adam(self.network.parameters(), lr=self.config.learning_rate)
        milestone = max(1, int(0.75 * self.stage1_iterations))
        self.schedule = torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=milestone, gamma=0.5)
        self._generator = torch.Generator().manual_seed(seed)
        self._half_shape = (1, 1, tensor.shape[-2] // 2, tensor.shape[-1] // 2)
        self._estimate = tensor.clone()
        self._refiner = None
        self.iterations_done = 0

    @property
    def stage(self) -> int:
        return 1 if self.iterations_done < self.stage1_iterations else 2

    def _start_stage2(self) -> None:
        self.network.requires_grad_(False)
        with torch.no_grad():
            self._stage1_estimate = self.network.denoise(self._noisy)
            self._target = F.avg_pool2d(self._stage1_estimate, 2)
        self._half_mean = F.avg_pool2d(self._noisy, 2)  # = the mean of every random-mask pair
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self._seed + 1)
            self._refiner = RefinementUNet()
        self._refiner.to(self.device)
        self._refine_optimizer = torch.optim.Adam(self._refiner.parameters(), lr=self.config.refine_learning_rate)
        milestone = max(1, int(0.75 * self.config.refine_iterations))
        self._refine_schedule = torch.optim.lr_scheduler.StepLR(self._refine_optimizer, step_size=milestone, gamma=0.5)
        self._preview_switch = max(20, self.config.refine_iterations // 10)

    def step(self) -> StepRecord:
        if self.stage == 1:
            mask = balanced_mask(self._half_shape, self._generator, self.device)
            loss, full = stage1_losses(self.network, self._noisy, mask, self.config)
            self._estimate = full.detach()
            optimizer, schedule = self.optimizer, self.schedule
        else:
            if self._refiner is None:
                self._start_stage2()
            full = self._refiner(self._noisy)
            reconstruction = F.mse_loss(self._refiner(self._half_mean), self._target)
            consistency = F.mse_loss(F.avg_pool2d(full, 2), self._target)
            loss = self.config.beta_re * reconstruction + self.config.beta_con * consistency
            refine_steps = self.iterations_done - self.stage1_iterations
            self._estimate = full.detach() if refine_steps >= self._preview_switch else self._stage1_estimate
            optimizer, schedule = self._refine_optimizer, self._refine_schedule
        self.iterations_done += 1
        return StepRecord(optimiser_step(loss, optimizer, schedule))

    def result(self) -> np.ndarray:
        with torch.no_grad():
            if self._refiner is not None and self.iterations_done - self.stage1_iterations >= self._preview_switch:
                final = self._refiner(self._noisy)
            else:
                final = self.network.denoise(self._noisy)
        return tensor_to_plane(final, self._height, self._width)

    def plane_facts(self) -> dict[str, Any]:
        refined = max(0, self.iterations_done - self.stage1_iterations)
        return {"stage1_iterations": self.iterations_done - refined, "stage2_iterations": refined}
