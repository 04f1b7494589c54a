"""Before/after figure of a real FMD image: noisy | denoised | ground truth, each titled with its PSNR.

Denoises a centre crop of one FMD test image with the package's recommended preset (seed 0)
and writes docs/images/before-after.png. Scoring is the benchmark's: both images in [0, 1]
by their integer type's maximum, the estimate clipped to [0, 1].

Usage (from the repository root):
    OMP_NUM_THREADS=2 PYTHONPATH=src python scripts/make_before_after.py
        [--data ../shared/data/fmd-test] [--name Confocal_FISH_1] [--crop 256] [--inset 64]
        [--method NAME] [--out docs/images/before-after.png]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "fmd-test",
                        help="FMD test set with raw/ and gt/ folders (default: ../shared/data/fmd-test, "
                             "beside the repository)")
    parser.add_argument("--name", default="Confocal_FISH_1", help="image stem, e.g. Confocal_BPAE_B_1")
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--inset", type=int, default=64,
                        help="side of the zoomed square shown in each panel's corner (0: none)")
    parser.add_argument("--method", help="default: the package's recommended preset")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "before-after.png")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    raw_path, gt_path = args.data / "raw" / f"{args.name}.png", args.data / "gt" / f"{args.name}.png"
    if not (raw_path.is_file() and gt_path.is_file()):
        sys.exit(f"FMD test image {args.name} not found under {args.data} (expected raw/{args.name}.png and "
                 f"gt/{args.name}.png); pass --data PATH to the FMD test set")

    import numpy as np

    from napari_zsdenoise import denoise
    from napari_zsdenoise.evaluation import load_pair, score
    from napari_zsdenoise.methods import recommended_method

    method = args.method or recommended_method()
    noisy, clean = load_pair(raw_path, gt_path, args.crop)
    start = time.perf_counter()
    denoised = denoise(noisy.astype(np.float32), method=method, seed=args.seed)
    seconds = time.perf_counter() - start
    panels = [("noisy", noisy), (f"denoised ({method})", denoised), ("ground truth", clean)]
    scores = {title: score(image, clean) for title, image in panels[:2]}
    for title, (psnr, ssim) in scores.items():
        print(f"{title:<24} {psnr:6.2f} dB  SSIM {ssim:.3f}")
    print(f"{method} on {args.name} ({args.crop}² centre crop): {seconds:.1f} s")
    draw(args, panels, scores)
    print(f"wrote {args.out}")


def draw(args: argparse.Namespace, panels: list, scores: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.patches import Rectangle

    clean = panels[-1][1]
    # One display range for all three, taken from the ground truth, so that brightness
    # differences between panels are real and not a per-panel stretch.
    low, high = np.percentile(clean, [0.5, 99.8])
    # The inset sits over the crop's brightest structure, where the denoising is easiest to judge.
    size = args.inset
    if size:
        smoothed = np.add.reduceat(np.add.reduceat(clean, np.arange(0, clean.shape[0], size // 2), axis=0),
                                   np.arange(0, clean.shape[1], size // 2), axis=1)
        cells = smoothed[:-1, :-1] + smoothed[1:, :-1] + smoothed[:-1, 1:] + smoothed[1:, 1:]
        row, col = np.unravel_index(np.argmax(cells), cells.shape)
        top, left = row * size // 2, col * size // 2
    figure, axes = plt.subplots(1, 3, figsize=(12, 4.35))
    for axis, (title, image) in zip(axes, panels):
        axis.imshow(image, cmap="gray", vmin=low, vmax=high, interpolation="nearest")
        label = f"{title}\n{scores[title][0]:.2f} dB PSNR" if title in scores else f"{title}\n(reference)"
        axis.set_title(label, fontsize=12)
        axis.set_xticks([])
        axis.set_yticks([])
        if size:
            axis.add_patch(Rectangle((left - 0.5, top - 0.5), size, size, fill=False, edgecolor="yellow",
                                     linewidth=1.2))
            # The inset goes in the corner opposite the square, so that it never hides it.
            inset_x = 0.0 if left + size / 2 > image.shape[1] / 2 else 0.6
            inset_y = 0.6 if top + size / 2 > image.shape[0] / 2 else 0.0
            inset = axis.inset_axes([inset_x, inset_y, 0.40, 0.40])
            inset.imshow(image[top:top + size, left:left + size], cmap="gray", vmin=low, vmax=high,
                         interpolation="nearest")
            inset.set_xticks([])
            inset.set_yticks([])
            for spine in inset.spines.values():
                spine.set_edgecolor("yellow")
                spine.set_linewidth(1.5)
    figure.suptitle(f"FMD {args.name}, {args.crop}×{args.crop} centre crop; display range from the ground truth, "
                    f"same for all panels; inset: yellow square ×{args.crop * 0.4 / size:.1f}" if size else
                    f"FMD {args.name}, {args.crop}×{args.crop} centre crop", fontsize=10, y=0.02, va="bottom")
    figure.tight_layout(rect=(0, 0.04, 1, 1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=100)


if __name__ == "__main__":
    main()
