"""Masked pre-training: corpus, masks, loop, resume, export and the CLI command."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from skimage.io import imsave

from napari_zsdenoise.cli import main
from napari_zsdenoise.networks.checkpoints import file_sha256, load_hourglass
from napari_zsdenoise.pretraining.corpus import CropSampler, load_image_folders, normalise_crop, planes_from_image
from napari_zsdenoise.pretraining.loop import PretrainConfig, Pretrainer, draw_hidden_fractions, masked_fill_loss
from napari_zsdenoise.pretraining.procedural import dead_leaves, fluorescence_scene, procedural_image

# A network and corpus small enough for a few CPU steps per second.
TINY_RUN = dict(width=8, scales=3, crop=24, batch_size=4, procedural_images=6, procedural_side=40, procedural_fraction=1.0)


@pytest.mark.parametrize("generator", [dead_leaves, fluorescence_scene])
def test_procedural_images_are_seeded_in_range_and_structured(generator):
    first = generator((48, 40), np.random.default_rng(5))
    again = generator((48, 40), np.random.default_rng(5))
    other = generator((48, 40), np.random.default_rng(6))
    assert first.shape == (48, 40) and first.dtype == np.float32
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert 0.0 <= first.min() and first.max() <= 1.0 and first.std() > 0.005


def test_unknown_procedural_kind_is_refused():
    with pytest.raises(ValueError, match="unknown procedural kind"):
        procedural_image((32, 32), np.random.default_rng(0), "clouds")


def test_colour_images_give_luminance_and_each_channel():
    rgb = np.zeros((4, 5, 3), dtype=np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 100, 200, 50
    planes = planes_from_image(rgb)
    assert len(planes) == 4
    np.testing.assert_allclose(planes[0], 0.299 * 100 + 0.587 * 200 + 0.114 * 50, rtol=1e-6)
    np.testing.assert_array_equal(planes[2], 200)
    assert len(planes_from_image(np.ones((6, 6)))) == 1
    with pytest.raises(ValueError, match="shape"):
        planes_from_image(np.ones((2, 6, 6, 6)))


def test_image_folders_are_read_recursively_and_small_images_skipped(tmp_path):
    (tmp_path / "sub").mkdir()
    imsave(tmp_path / "a.png", np.random.default_rng(0).integers(0, 255, (40, 50, 3), dtype=np.uint8), check_contrast=False)
    imsave(tmp_path / "sub" / "b.png", np.random.default_rng(1).integers(0, 255, (40, 40), dtype=np.uint8), check_contrast=False)
    imsave(tmp_path / "tiny.png", np.zeros((8, 8), dtype=np.uint8), check_contrast=False)
    planes, names = load_image_folders([tmp_path], min_side=32)
    assert len(planes) == 5  # 4 from the colour image, 1 from the grey one; the 8x8 one is skipped
    assert sum(n.endswith("b.png") for n in names) == 1
    with pytest.raises(FileNotFoundError, match="not found"):
        load_image_folders([tmp_path / "missing"], min_side=32)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no images"):
        load_image_folders([tmp_path / "empty"], min_side=32)


def test_crops_are_normalised_like_inference_planes():
    rng = np.random.default_rng(0)
    plane = rng.uniform(1000, 5000, (64, 64)).astype(np.float32)
    sampler = CropSampler([plane], [], procedural_fraction=0.5, size=32)
    batch = sampler.batch(3, rng)
    assert batch.shape == (3, 1, 32, 32) and batch.dtype == np.float32
    assert batch.min() >= 0.0 and batch.max() <= 1.0
    crop = normalise_crop(plane[:32, :32])
    assert np.percentile(crop, 0.1) == pytest.approx(0.1, abs=1e-3)
    assert np.percentile(crop, 99.9) == pytest.approx(0.9, abs=1e-3)
    with pytest.raises(ValueError, match="smaller than"):
        CropSampler([plane[:20, :20]], [], procedural_fraction=0.0, size=32)


def test_mask_recipes_draw_the_documented_fractions():
    generator = torch.Generator().manual_seed(0)
    fractions = draw_hidden_fractions("80-95", 4000, generator)
    assert fractions.min() >= 0.80 - 1e-6 and fractions.max() <= 0.95 + 1e-6
    assert torch.allclose(fractions * 100, torch.round(fractions * 100))
    assert len(torch.unique(fractions)) == 16
    assert torch.allclose(draw_hidden_fractions("30", 10, generator), torch.full((10,), 0.3))


def test_loss_counts_hidden_pixels_only():
    target = torch.zeros(1, 1, 2, 2)
    output = torch.tensor([[[[1.0, 3.0], [0.0, 0.0]]]])
    keep = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])
    assert masked_fill_loss(output, target, keep).item() == pytest.approx((9.0 + 0.0) / 2)


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"mask_recipe": "50"}, "mask_recipe"),
        ({"crop": 8}, "crop"),
        ({"procedural_images": 0}, "corpus is empty"),
        ({"final_learning_rate": 1.0}, "final_learning_rate"),
        ({"iterations": 0}, "iterations"),
    ],
)
def test_bad_settings_are_refused(settings, message):
    with pytest.raises(ValueError, match=message):
        PretrainConfig(**{**TINY_RUN, **settings})


def _held_out_loss(trainer: Pretrainer) -> float:
    rng = np.random.default_rng(99)
    batch = torch.from_numpy(trainer.corpus.sampler.batch(8, rng))
    keep = (torch.rand(batch.shape, generator=torch.Generator().manual_seed(99)) >= 0.85).float()
    with torch.no_grad():
        return masked_fill_loss(trainer.network(batch * keep, keep), batch, keep).item()


def test_pretraining_lowers_the_masked_fill_loss(tmp_path):
    config = PretrainConfig(**TINY_RUN, iterations=60, seed=1, checkpoint_every=1000)
    trainer = Pretrainer(config, tmp_path, device="cpu")
    before = _held_out_loss(trainer)
    events = list(trainer.run(report_every=20))
    after = _held_out_loss(trainer)
    assert [e.iteration for e in events] == [20, 40, 60]
    assert events[-1].learning_rate == pytest.approx(config.final_learning_rate)
    print(f"held-out masked loss {before:.4f} -> {after:.4f}")
    assert after < 0.7 * before


def test_a_resumed_run_matches_an_uninterrupted_one_bit_exactly(tmp_path):
    config = PretrainConfig(**TINY_RUN, iterations=6, seed=2, checkpoint_every=3)
    straight = Pretrainer(config, tmp_path / "straight", device="cpu")
    list(straight.run())

    interrupted = Pretrainer(config, tmp_path / "resumed", device="cpu")
    for event in interrupted.run(report_every=1):
        if event.iteration == 3:
            break  # abandoned after the checkpoint at iteration 3
    resumed = Pretrainer(config, tmp_path / "resumed", device="cpu", resume=True)
    assert resumed.iteration == 3
    list(resumed.run())
    for name, tensor in straight.network.state_dict().items():
        assert torch.equal(tensor, resumed.network.state_dict()[name]), name

    with pytest.raises(FileExistsError, match="resume"):
        Pretrainer(config, tmp_path / "resumed", device="cpu")
    with pytest.raises(ValueError, match="different settings"):
        Pretrainer(PretrainConfig(**TINY_RUN, iterations=7, seed=2, checkpoint_every=3), tmp_path / "resumed", device="cpu", resume=True)


def test_export_writes_a_loadable_checkpoint_and_a_complete_model_card(tmp_path):
    config = PretrainConfig(**TINY_RUN, iterations=3, seed=0)
    trainer = Pretrainer(config, tmp_path, name="tiny", device="cpu", command=["zsdenoise", "pretrain"])
    list(trainer.run())
    card = json.loads((tmp_path / "tiny.json").read_text())
    for key in ("recipe", "corpus", "iterations", "batch", "crop", "seed", "wall_time_seconds", "device", "sha256", "command"):
        assert key in card, key
    assert card["sha256"] == file_sha256(tmp_path / "tiny.pt")
    assert card["iterations"] == 3 and card["batch"] == 4 and card["crop"] == 24
    network, info = load_hourglass(tmp_path / "tiny.pt")
    assert info["model_card"]["recipe"]["mask"] == "80-95"
    for name, tensor in trainer.network.state_dict().items():
        assert torch.equal(tensor.cpu(), network.state_dict()[name])


def test_pretrain_command_trains_checkpoints_and_resumes(tmp_path, capsys):
    out = tmp_path / "run"
    common = ["pretrain", "--out", str(out), "--crop", "33", "--batch-size", "2", "--procedural-images", "2", "--iterations", "2", "--device", "cpu"]
    assert main([*common, "--time-limit", "0"]) == 0
    assert "--resume" in capsys.readouterr().err
    assert (out / "state.pt").exists() and not (out / "mpi-hourglass-80-95.pt").exists()
    assert main([*common, "--resume"]) == 0
    err = capsys.readouterr().err
    assert "resuming at iteration 1" in err and "wrote" in err
    card = json.loads((out / "mpi-hourglass-80-95.json").read_text())
    assert card["iterations"] == 2 and card["command"] == ["zsdenoise", *common]
    assert main(["pretrain", "--out", str(tmp_path / "x"), "--procedural-images", "0"]) == 2


def test_a_run_can_start_from_earlier_weights_and_records_them(tmp_path):
    first = Pretrainer(PretrainConfig(**TINY_RUN, iterations=3, seed=0), tmp_path / "first", name="tiny", device="cpu")
    list(first.run())
    start = tmp_path / "first" / "tiny.pt"

    config = PretrainConfig(**{**TINY_RUN, "crop": 32}, iterations=2, seed=5, init_weights=str(start))
    second = Pretrainer(config, tmp_path / "second", name="tiny", device="cpu")
    for name, tensor in first.network.state_dict().items():
        assert torch.equal(tensor, second.network.state_dict()[name]), name
    list(second.run())
    card = json.loads((tmp_path / "second" / "tiny.json").read_text())
    assert card["initialised_from"]["weights"] == str(start)
    assert card["initialised_from"]["sha256"] == file_sha256(start)
    assert card["initialised_from"]["trained"]["iterations"] == 3
    assert card["initialised_from"]["trained"]["crop"] == 24

    wider = PretrainConfig(**{**TINY_RUN, "width": 16}, iterations=2, init_weights=str(start))
    with pytest.raises(ValueError, match="init weights"):
        Pretrainer(wider, tmp_path / "third", device="cpu")
