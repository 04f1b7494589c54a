"""The npe2 manifest, the packaged sample data, and the script that generated it."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import tifffile

from conftest import GUI_PACKAGES, REPO_ROOT

npe2 = pytest.importorskip("npe2")


def _installed_manifest():
    # The tests run against the installed package (README: `pip install ".[qt,test]"`),
    # so a missing distribution is a packaging failure, not a reason to skip.
    return npe2.PluginManifest.from_distribution("napari-zsdenoise")


def _needs_the_dock_packages() -> None:
    """Validating the manifest imports the dock: skip, saying why, where the core was installed alone."""
    for package in GUI_PACKAGES:
        pytest.importorskip(package, reason=f"{package} is not installed (the core alone: pip install .)")


def test_installed_manifest_validates_and_contributes():
    _needs_the_dock_packages()
    manifest = _installed_manifest()
    manifest.validate_imports()
    assert [w.display_name for w in manifest.contributions.widgets] == ["Zero-shot denoising"]
    assert len(manifest.contributions.sample_data) >= 2


def test_source_manifest_is_valid():
    _needs_the_dock_packages()
    manifest = npe2.PluginManifest.from_file(REPO_ROOT / "napari.yaml")
    manifest.validate_imports()


@pytest.mark.parametrize("loader", ["cells_2d", "cells_zstack"])
def test_sample_data_loads_noisy_and_clean(loader):
    from napari_zsdenoise import sample_data

    layers = getattr(sample_data, loader)()
    assert [kwargs["name"].rsplit("_", 1)[1] for _, kwargs, _ in layers] == ["clean", "noisy"]
    (clean, clean_kwargs, kind), (noisy, _, _) = layers
    assert kind == "image" and clean.shape == noisy.shape and noisy.dtype == np.uint16
    assert len(clean_kwargs["scale"]) == clean.ndim
    # The noisy frame is a realistic, clearly noisy version of the clean one.
    residual = noisy.astype(np.float64) - clean
    assert abs(residual.mean()) < 0.5 and 1.0 < residual.std() < 0.5 * clean.std() + 10


def test_samples_are_what_the_seeded_script_makes(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("generate_samples", REPO_ROOT / "sample_data" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "HERE", tmp_path)
    module.save_pair("cells2d", module.fluorescence_phantom((256, 256), seed=1), seed=11, pixel_size_um=(0.1, 0.1))
    for kind in ("noisy", "clean"):
        regenerated = tifffile.imread(tmp_path / f"cells2d_{kind}.tif")
        shipped = tifffile.imread(REPO_ROOT / "sample_data" / f"cells2d_{kind}.tif")
        np.testing.assert_array_equal(regenerated, shipped)
    with tifffile.TiffFile(tmp_path / "cells2d_noisy.tif") as tif:
        assert json.loads(tif.pages[0].description)["simulated"] is True
