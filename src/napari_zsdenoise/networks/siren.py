"""SIREN: a sine-activated MLP, an implicit neural representation of an image (Sitzmann et al., NeurIPS 2020)."""

from __future__ import annotations

import math

import torch
from torch import nn

SIREN_OMEGA = 30.0


class Siren(nn.Module):
    """Sine-activated MLP (Sitzmann et al. 2020) with dropout after each sine layer.

    Dropout masks are drawn from the generator passed to :meth:`forward`, so seeded
    runs repeat without touching torch's global random state.
    """

    def __init__(self, width: int = 128, layers: int = 3, dropout: float = 0.1, *, in_features: int = 2,
                 out_features: int = 1, omega: float = SIREN_OMEGA) -> None:
        super().__init__()
        self.omega = omega
        self.dropout = dropout
        sizes = [in_features] + [width] * layers
        self.sine_layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.output = nn.Linear(width, out_features)
        with torch.no_grad():
            # SIREN init: the first layer spans a few periods of sin(omega x) over
            # [-1, 1]; later layers keep omega * W x roughly unit-variance.
            first = self.sine_layers[0]
            first.weight.uniform_(-1.0 / in_features, 1.0 / in_features)
            for layer in [*self.sine_layers[1:], self.output]:
                bound = math.sqrt(6.0 / layer.in_features) / omega
                layer.weight.uniform_(-bound, bound)

    def forward(self, coordinates: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """(N, 2) coordinates in [-1, 1] -> (N, out_features)."""
        features = coordinates
        for layer in self.sine_layers:
            features = torch.sin(self.omega * layer(features))
            if self.training and self.dropout > 0:
                keep = torch.rand(features.shape, generator=generator, device=features.device) >= self.dropout
                features = features * keep / (1.0 - self.dropout)
        return self.output(features)
