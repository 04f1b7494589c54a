"""MID inference (Chihaoui & Favaro 2025, Eq. 5): the mean of K masked predictions of a trained model.

Nothing is trained here: each step is one forward pass of the model file's network on
the plane with a fresh Bernoulli mask (hiding ``mask_ratio`` of the pixels; by default the middle
of the range the model's last training round hid), folded into
a running mean, which is the preview and the result. A model trained on the sub-planes of
every d-th pixel (``pixel_shuffle`` d in the model file) predicts the plane's d*d sub-planes
as one batch and puts them back in place. The masks come from a CPU generator
seeded by the plane's seed, so a run repeats on any device.

The loss a step reports is the mean squared change its pass made to the running mean
(the first pass: its change from the noisy plane); it shrinks roughly as 1/K^2 as the
mean settles. The model comes from ``training.fit_dataset`` (``zsdenoise fit-dataset``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from napari_zsdenoise.methods._planes import plane_to_tensor, tensor_to_plane
from napari_zsdenoise.methods.base import DenoisingMethod, StepRecord
from napari_zsdenoise.methods.mid.model import check_plane_size, load_model, predict_masked_subplanes
from napari_zsdenoise.methods.mid.settings import NEEDS_MODEL, MIDConfig
from napari_zsdenoise.weights import SHIPPED


class MIDMethod(DenoisingMethod):
    """K masked passes of a MID model; see :class:`~napari_zsdenoise.methods.mid.settings.MIDConfig`."""

    config: MIDConfig

    def __init__(self, config: MIDConfig) -> None:
        super().__init__(config)
        self.network: torch.nn.Module | None = None
        self._weights_info: dict[str, Any] = {}
        self.passes = 0
        self.pixel_shuffle = 1
        self.mask_ratio = config.mask_ratio

    def setup(self, device: torch.device, seed: int, precision: str = "fp32") -> None:
        """Load the model file once for the whole run; without one, say how to train it."""
        super().setup(device, seed, precision)
        weights = self.config.weights
        if weights is None or str(weights) == SHIPPED:
            raise ValueError(NEEDS_MODEL)
        from napari_zsdenoise.devices import out_of_memory_as_error

        # The file is read on the CPU, then the network moves to the device: each can run out of memory.
        with out_of_memory_as_error(torch.device("cpu"), during=f"while loading the model {weights}",
                                    advice="free some of the computer's memory (other programs hold it)"):
            network, self._weights_info = load_model(weights)
        with out_of_memory_as_error(device, during="while moving the model to it",
                                    advice="free some of its memory (other programs hold it)"):
            self.network = network.to(device).eval()
        self.pixel_shuffle = self._weights_info["pixel_shuffle"]
        self.mask_ratio = self.config.mask_ratio or self._weights_info["trained_mask_ratio"]

    def prepare(self, plane: np.ndarray, plane_seed: int, context: np.ndarray | None = None) -> None:
        check_plane_size(self.network, plane.shape, self.pixel_shuffle)
        self._height, self._width = plane.shape
        self.noisy = plane_to_tensor(plane, self.device, multiple=self.pixel_shuffle)
        self._generator = torch.Generator().manual_seed(plane_seed)
        self._mean: torch.Tensor | None = None
        self.passes = 0

    def draw_keep_mask(self) -> torch.Tensor:
        """A fresh Bernoulli keep-mask of the plane: 1 where the network sees the pixel."""
        draws = torch.rand(self.noisy.shape, generator=self._generator)
        return (draws >= self.mask_ratio).to(self.noisy.dtype).to(self.device)

    def step(self) -> StepRecord:
        prediction = predict_masked_subplanes(self.network, self.noisy, self.draw_keep_mask(), self.pixel_shuffle,
                                              tile=self.config.tile)
        previous = self.noisy if self._mean is None else self._mean
        self.passes += 1
        self._mean = prediction if self._mean is None else previous + (prediction - previous) / self.passes
        change = torch.mean((self._mean - previous) ** 2).detach()
        return StepRecord(change, finished=self.passes >= self.config.iterations)

    def preview(self) -> np.ndarray:
        return tensor_to_plane(self.noisy if self._mean is None else self._mean, self._height, self._width)

    def result(self) -> np.ndarray:
        return self.preview()

    def plane_facts(self) -> dict[str, Any]:
        return {"masked_passes": self.passes}

    def run_facts(self) -> dict[str, Any]:
        return {"weights": dict(self._weights_info), "mask_ratio": self.mask_ratio}
