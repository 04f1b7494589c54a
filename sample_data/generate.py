"""Regenerate the bundled samples: `python sample_data/generate.py` (seeded, deterministic)."""

from pathlib import Path

import numpy as np
import tifffile

from napari_zsdenoise.synthetic import fluorescence_phantom, poisson_gaussian_noise

HERE = Path(__file__).parent
PEAK_PHOTONS, READ_NOISE, OFFSET = 25.0, 2.0, 100.0


def save_pair(stem: str, clean: np.ndarray, seed: int, pixel_size_um: tuple[float, ...]) -> None:
    noisy = poisson_gaussian_noise(clean, peak_photons=PEAK_PHOTONS, read_noise=READ_NOISE, offset=OFFSET, seed=seed)
    expectation = clean * PEAK_PHOTONS + OFFSET
    description = (
        f'{{"simulated": true, "peak_photons": {PEAK_PHOTONS}, "read_noise": {READ_NOISE}, "offset": {OFFSET}, '
        f'"pixel_size_um": {list(pixel_size_um)}, "seed": {seed}}}'
    )
    tifffile.imwrite(HERE / f"{stem}_noisy.tif", np.clip(np.round(noisy), 0, 65535).astype(np.uint16), description=description, metadata=None)
    tifffile.imwrite(HERE / f"{stem}_clean.tif", expectation.astype(np.float32), description=description, metadata=None)


if __name__ == "__main__":
    save_pair("cells2d", fluorescence_phantom((256, 256), seed=1), seed=11, pixel_size_um=(0.1, 0.1))
    save_pair("cells3d", fluorescence_phantom((12, 128, 128), seed=2), seed=12, pixel_size_um=(0.3, 0.1, 0.1))
