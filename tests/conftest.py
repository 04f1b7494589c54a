"""Shared fixtures. Everything runs headless on the CPU."""

from __future__ import annotations

import functools
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

# A run's CPU thread count follows the load of other processes, and a seeded run repeats exactly only
# with the same count: the tests fix it, as a user does with --threads, before torch is first imported.
os.environ.setdefault("OMP_NUM_THREADS", str(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                             else os.cpu_count() or 1))

import numpy as np  # noqa: E402
import pytest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
FMD_TEST = SHARED_DATA / "fmd-test"
OFFICIAL_WEIGHTS = REPO_ROOT.parent / "shared" / "reference" / "mpi-official-weights"


#: What the dock's tests import; the core installs without them (``pip install .``).
GUI_PACKAGES = ("napari", "qtpy", "magicgui", "superqt", "pyqtgraph")


@functools.cache
def gui_unavailable_reason() -> str | None:
    """Why the dock's tests cannot run here (one line), or None when they can."""
    for package in GUI_PACKAGES:
        if importlib.util.find_spec(package) is None:
            return f"{package} is not installed (the dock's tests need pip install \".[qt,test]\")"
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return ("no display: install xvfb, xauth and the xcb libraries (README, Install) so that pytest-xvfb "
                "starts one")
    # Qt aborts the whole process when its platform plugin cannot load (missing system libraries), so a
    # child process tries first.
    probe = subprocess.run([sys.executable, "-c", "from qtpy.QtWidgets import QApplication; QApplication([])"],
                           capture_output=True, text=True, timeout=300)
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or [f"exit code {probe.returncode}"])[-1]
        return f"Qt cannot open a window here ({last[:160]}); README, Install, lists the system packages"
    return None


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
    import napari_zsdenoise.cli_progress as cli_progress

    real_progress = cli_progress.StderrProgress.__call__

    def progress(self, event):
        real_progress(self, event)
        if event.plane == plane:
            raise SystemExit("killed")

    with monkeypatch.context() as patched:
        patched.setattr(cli_progress.StderrProgress, "__call__", progress)
        with pytest.raises(SystemExit):
            cli.main(arguments)
