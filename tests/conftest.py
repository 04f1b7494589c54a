"""Shared fixtures. Everything runs headless on the CPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
FMD_TEST = SHARED_DATA / "fmd-test"
OFFICIAL_WEIGHTS = REPO_ROOT.parent / "shared" / "reference" / "mpi-official-weights"


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def small_noisy(rng: np.random.Generator) -> np.ndarray:
    """A 48x40 uint16 camera-like frame (not square, not a power of two)."""
    from napari_zsdenoise.synthetic import fluorescence_phantom, poisson_gaussian_noise

    clean = fluorescence_phantom((48, 40), seed=3)
    return np.clip(np.round(poisson_gaussian_noise(clean, peak_photons=40, seed=4)), 0, None).astype(np.uint16)


# Small networks keep the unit tests quick; the quality test uses the real size.
TINY = {"width": 8, "scales": 3, "weights": None}


@pytest.fixture(scope="session")
def mid_model_file(tmp_path_factory) -> Path:
    """A tiny MID model file (an untrained width-8 network) for runs that only test the plumbing."""
    from napari_zsdenoise.methods.mid.model import new_network, save_model

    path = tmp_path_factory.mktemp("mid") / "tiny-mid.pt"
    return save_model(new_network(8, 3, seed=0), path, noise_model={"kind": "gaussian", "sigma": 0.1},
                      model_card={"sources": {"untrained": 0}, "rounds": 0})


def killed_at_plane(monkeypatch, arguments, plane):
    """Run the CLI with ``arguments``; the process dies (an exception no handler keeps) when the run reaches
    ``plane``."""
    import napari_zsdenoise.cli as cli

    real_progress = cli._StderrProgress.__call__

    def progress(self, event):
        real_progress(self, event)
        if event.plane == plane:
            raise SystemExit("killed")

    with monkeypatch.context() as patched:
        patched.setattr(cli._StderrProgress, "__call__", progress)
        with pytest.raises(SystemExit):
            cli.main(arguments)
