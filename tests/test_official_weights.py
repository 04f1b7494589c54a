"""The loader for user-supplied official MPI checkpoints (never shipped with the package)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_zsdenoise import DenoiseRun
from napari_zsdenoise.networks.checkpoints import load_hourglass
from napari_zsdenoise.networks.hourglass import SkipHourglass
from napari_zsdenoise.networks.official import official_to_hourglass

from conftest import OFFICIAL_WEIGHTS

SHARED_MASK = OFFICIAL_WEIGHTS / "imgnet_80_95_singlechannel_skip.pth"
PER_CHANNEL = OFFICIAL_WEIGHTS / "imgnet_30_multchannel_skip.pth"


def _fake_official(tmp_path, network, name="fake.pth"):
    # Same order and shapes as the authors' files, but their own (different) names.
    params = {f"model.layer{i}.tensor": t.clone() for i, t in enumerate(network.state_dict().values())}
    path = tmp_path / name
    torch.save({"params": params}, path)
    return path


def test_position_mapping_rebuilds_the_same_network(tmp_path):
    torch.manual_seed(0)
    network = SkipHourglass(3, 1, width=8, scales=3)
    loaded, info = load_hourglass(_fake_official(tmp_path, network))
    assert (loaded.image_channels, loaded.mask_channels, loaded.width, loaded.scales) == (3, 1, 8, 3)
    assert info["format"] == "official MPI checkpoint"
    for a, b in zip(network.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)


def test_malformed_official_files_are_rejected(tmp_path):
    network = SkipHourglass(3, 1, width=8, scales=3)
    params = {f"p{i}": t.clone() for i, t in enumerate(network.state_dict().values())}
    truncated = dict(list(params.items())[:-3])
    with pytest.raises(ValueError):
        official_to_hourglass(truncated)
    swapped = dict(params)
    keys = list(swapped)
    swapped[keys[0]], swapped[keys[6]] = swapped[keys[6]], swapped[keys[0]]
    with pytest.raises(ValueError, match="shape"):
        official_to_hourglass(swapped)
    bad = tmp_path / "bad.pth"
    torch.save({"params": {"x": "not a tensor"}}, bad)
    with pytest.raises(ValueError, match="tensors"):
        load_hourglass(bad)


def test_grayscale_runs_through_a_colour_checkpoint_with_one_shared_mask(tmp_path, small_noisy):
    torch.manual_seed(0)
    path = _fake_official(tmp_path, SkipHourglass(3, 3, width=8, scales=3))
    run = DenoiseRun(small_noisy, "mpi-fast", iterations=2, weights=str(path), width=8, scales=3)
    list(run)
    assert run.result.shape == small_noisy.shape
    assert "one shared mask" in run.metadata["weights"]["grayscale_adaptation"]


@pytest.mark.skipif(not SHARED_MASK.is_file(), reason="official MPI checkpoints are not present in ../shared/reference")
@pytest.mark.parametrize("path", [SHARED_MASK, PER_CHANNEL], ids=["80-95-shared", "30-per-channel"])
def test_official_checkpoints_load(path):
    network, info = load_hourglass(path)
    assert network.image_channels == 3 and network.width == 64 and network.scales == 5
    assert network.mask_channels == (1 if path == SHARED_MASK else 3)
    assert sum(p.numel() for p in network.parameters()) == (746_115 if path == SHARED_MASK else 747_395)
    assert len(info["sha256"]) == 64


@pytest.mark.skipif(not SHARED_MASK.is_file(), reason="official MPI checkpoints are not present in ../shared/reference")
def test_official_weights_fill_in_a_masked_natural_structure():
    # A pre-trained filler predicts hidden pixels of a smooth image far better than a
    # random network does: a functional check that the mapping is right, not only shapes.
    from napari_zsdenoise.synthetic import fluorescence_phantom

    clean = torch.from_numpy(fluorescence_phantom((96, 96), seed=5).astype(np.float32))[None, None]
    clean3 = clean.expand(-1, 3, -1, -1)
    generator = torch.Generator().manual_seed(0)
    keep = (torch.rand(clean.shape, generator=generator) >= 0.85).float()
    errors = {}
    for label, network in (("official", load_hourglass(SHARED_MASK)[0]), ("random", SkipHourglass(3, 1))):
        with torch.no_grad():
            out = network.train()(clean3 * keep, keep).mean(dim=1, keepdim=True)
        errors[label] = float((((out - clean) * (1 - keep)) ** 2).sum() / (1 - keep).sum())
    assert errors["official"] < 0.2 * errors["random"]
