"""How well do pre-trained weights fill hidden pixels of real fluorescence images, before any filling step?

A cheap proxy for choosing a pre-training corpus: for each FMD noisy image (centre crop,
normalised exactly like inference), hide a fraction p of pixels, let the network fill
them in one forward pass, and score the filled values against the clean reference and
against the noisy pixels at the hidden positions (the latter needs no ground truth).

Usage: python benchmarks/fill_proxy.py WEIGHTS [WEIGHTS ...] [--pairs ../shared/data/fmd-test]
WEIGHTS: a checkpoint path, "shipped" or "none" (random initialisation).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from napari_zsdenoise.evaluation import centre_crop, find_pairs
from napari_zsdenoise.io import read_image
from napari_zsdenoise.networks.checkpoints import load_weights
from napari_zsdenoise.networks.hourglass import SkipHourglass
from napari_zsdenoise.normalization import IntensityScaling


def fill_errors(network: SkipHourglass, noisy: np.ndarray, clean: np.ndarray, ratio: float, seed: int, repeats: int) -> tuple[float, float]:
    scaling = IntensityScaling.fit(noisy)
    x = torch.from_numpy(scaling.normalize(noisy))[None, None]
    y = torch.from_numpy(scaling.normalize(clean))[None, None]
    generator = torch.Generator().manual_seed(seed)
    to_clean, to_noisy = [], []
    network.train()  # batch statistics, as during filling
    with torch.no_grad():
        for _ in range(repeats):
            keep = (torch.rand(x.shape, generator=generator) >= ratio).float()
            inputs = x.expand(-1, network.image_channels, -1, -1) * keep
            mask = keep.expand(-1, network.mask_channels, -1, -1)
            filled = network(inputs, mask).mean(dim=1, keepdim=True)
            hidden = keep == 0
            to_clean.append(float(((filled - y)[hidden] ** 2).mean()))
            to_noisy.append(float(((filled - x)[hidden] ** 2).mean()))
    # PSNR in the normalised units (0.1..0.9 spans the 0.1-99.9 percentile range).
    return -10 * np.log10(np.mean(to_clean)), -10 * np.log10(np.mean(to_noisy))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", nargs="+")
    parser.add_argument("--pairs", default="../shared/data/fmd-test")
    parser.add_argument("--pattern", default="*_1.png")
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--ratio", type=float, default=0.85)
    parser.add_argument("--repeats", type=int, default=4)
    args = parser.parse_args()
    pairs = find_pairs(args.pairs, pattern=args.pattern)
    images = [(centre_crop(read_image(n).astype(np.float32), args.crop), centre_crop(read_image(c).astype(np.float32), args.crop)) for n, c in pairs]
    for weights in args.weights:
        if weights == "none":
            torch.manual_seed(0)
            network = SkipHourglass(1, 1)
        elif weights.endswith("state.pt"):  # an unfinished pre-training run
            state = torch.load(weights, map_location="cpu", weights_only=True)
            network = SkipHourglass(1, 1, width=state["config"]["width"], scales=state["config"]["scales"])
            network.load_state_dict(state["network"])
            weights = f"{weights} (iteration {state['iteration']})"
        else:
            network, _ = load_weights(weights)
        scores = np.array([fill_errors(network, n, c, args.ratio, seed=i, repeats=args.repeats) for i, (n, c) in enumerate(images)])
        print(f"{weights}: fill PSNR vs clean {scores[:, 0].mean():.2f} dB, vs noisy {scores[:, 1].mean():.2f} dB "
              f"({len(images)} images, {args.crop}px centre crops, p={args.ratio})", flush=True)


if __name__ == "__main__":
    main()
