"""MID (Mask, Inpaint and Denoise): noise bank, rounds, model file, K-pass inference, CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from napari_zsdenoise.engine import denoise
from napari_zsdenoise.methods.mid import training
from napari_zsdenoise.methods.mid.model import load_model, read_model_card, save_model, trained_mask_ratio
from napari_zsdenoise.methods.mid.noise_bank import (
    GaussianNoise,
    Harvest,
    NoiseBank,
    fit_noise_model,
    harvest_residuals,
    robust_noise_sigma,
)
from napari_zsdenoise.methods.mid.settings import MIDConfig, MIDTrainingSettings


def _local_mean_of_visible(plane: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """A stand-in denoiser that sees only the visible pixels: their 3x3 mean."""
    visible = ndimage.uniform_filter(plane * keep, 3, mode="reflect")
    weight = ndimage.uniform_filter(keep.astype(np.float32), 3, mode="reflect")
    return (visible / np.maximum(weight, 1e-6)).astype(np.float32)


def test_the_bank_holds_residuals_of_masked_predictions_not_unmasked_ones():
    rng = np.random.default_rng(0)
    planes = [rng.normal(0.5, 0.1, (40, 36)).astype(np.float32) for _ in range(2)]
    seen = []

    def predict(plane, keep):
        seen.append(keep)
        return _local_mean_of_visible(plane, keep)

    harvests = list(harvest_residuals(predict, planes, masks_per_plane=3, mask_ratio=0.7, rng=rng))
    assert [(h.plane, h.mask) for h in harvests] == [(p, m) for p in range(2) for m in range(3)]
    for harvest, keep in zip(harvests, seen):
        plane = planes[harvest.plane]
        assert harvest.keep is keep and 0.6 < 1 - keep.mean() < 0.8
        np.testing.assert_allclose(harvest.residual, plane - _local_mean_of_visible(plane, keep), atol=1e-6)
        unmasked = plane - _local_mean_of_visible(plane, np.ones_like(keep))
        assert np.abs(harvest.residual - unmasked).mean() > 0.01
    assert not np.array_equal(seen[0], seen[1])

    # Without the variance model the bank keeps the residuals as they are, scaled by one constant
    # and shifted to zero mean.
    bank = NoiseBank.from_harvests(iter(harvests), maps=len(harvests), patch_size=16, count=12, signal_dependent=False,
                                   rng=rng)
    assert len(bank) == 12 and bank.model.a == 0
    for patch, (plane, mask, top, left) in zip(bank.patches.numpy(), bank.sources.tolist()):
        harvest = harvests[3 * plane + mask]
        expected = harvest.residual[top:top + 16, left:left + 16] / np.sqrt(bank.model.b)
        np.testing.assert_allclose(patch, expected - expected.mean(), rtol=1e-5, atol=1e-5)


def test_a_predictions_offset_is_not_passed_on_to_the_bank():
    rng = np.random.default_rng(3)
    shape = (48, 48)
    offset = 0.05
    harvests = []
    for index in range(3):
        prediction = rng.uniform(0.2, 0.8, shape).astype(np.float32)
        noise = rng.normal(0.0, 0.02, shape).astype(np.float32)
        # A network that predicts everything `offset` too bright leaves -offset in every residual.
        harvests.append(Harvest(index, 0, np.ones(shape, bool), prediction + offset, noise - offset))
    bank = NoiseBank.from_harvests(harvests, maps=3, patch_size=32, count=30, signal_dependent=True, rng=rng)
    patch_means = bank.patches.mean(dim=(1, 2))
    assert float(patch_means.abs().max()) < 1e-5
    # Only the offset goes: what is left is the noise, about one standard deviation after whitening.
    assert 0.7 < float(bank.patches.std()) < 1.3
    noise = bank.sample(torch.full((64, 1, 32, 32), 0.5), torch.Generator().manual_seed(0))
    assert abs(float(noise.mean())) < 0.002


def test_the_poisson_gaussian_fit_recovers_a_and_b_and_synthesised_noise_has_their_variance():
    rng = np.random.default_rng(1)
    a, b = 0.01, 0.0004
    signal = rng.uniform(0.0, 1.0, 200_000)
    residual = rng.normal(0.0, np.sqrt(a * signal + b))
    model = fit_noise_model(signal, residual)
    assert model.a == pytest.approx(a, rel=0.1) and model.b == pytest.approx(b, rel=0.25)

    # A bank whitened by the fit puts back the variance of the clean patch's own intensity.
    shape = (64, 64)
    maps = []
    for index in range(4):
        prediction = rng.uniform(0.0, 1.0, shape).astype(np.float32)
        noise = rng.normal(0.0, np.sqrt(a * prediction + b)).astype(np.float32)
        maps.append(Harvest(index, 0, np.ones(shape, bool), prediction, noise))
    bank = NoiseBank.from_harvests(maps, maps=4, patch_size=32, count=64, signal_dependent=True, rng=rng)
    generator = torch.Generator().manual_seed(0)
    for level in (0.1, 0.8):
        clean = torch.full((256, 1, 32, 32), level)
        noise = bank.sample(clean, generator)
        assert float(noise.var()) == pytest.approx(a * level + b, rel=0.15)
    # Without the model, the same residuals would keep one variance whatever the intensity.
    flat = NoiseBank.from_harvests(maps, maps=4, patch_size=32, count=64, signal_dependent=False, rng=rng)
    dim, bright = (float(flat.sample(torch.full((256, 1, 32, 32), level), generator).var()) for level in (0.1, 0.8))
    assert dim == pytest.approx(bright, rel=0.15)


def test_the_first_round_noise_level_is_a_robust_estimate_in_normalised_units():
    rng = np.random.default_rng(2)
    ramp = np.linspace(0, 1, 128, dtype=np.float32)[None, :] * np.ones((96, 1), np.float32)
    planes = [ramp + rng.normal(0, 0.05, ramp.shape).astype(np.float32) for _ in range(3)]
    planes[0][40:60, 40:60] += 0.5  # edges the high-pass sees, and the MAD ignores
    assert robust_noise_sigma(planes) == pytest.approx(0.05, rel=0.1)
    noise = GaussianNoise(0.05).sample(torch.zeros(64, 1, 32, 32), torch.Generator().manual_seed(0))
    assert float(noise.std()) == pytest.approx(0.05, rel=0.05)


# --- training rounds, model file, resume -------------------------------------------------

# A fit small enough for a unit test: two rounds of a few steps of a width-8 network.
TINY_FIT = dict(rounds=2, iterations_per_round=4, batch_size=2, patch_size=32, width=8, scales=3,
                procedural_images=2, procedural_side=40, bank_patches=16)


@pytest.fixture
def noisy_planes():
    from napari_zsdenoise.synthetic import fluorescence_phantom, poisson_gaussian_noise

    return [poisson_gaussian_noise(fluorescence_phantom((40, 36), seed=seed), peak_photons=20, seed=seed + 10)
            for seed in range(3)]


class _MaskedStub(torch.nn.Module):
    """A network stand-in whose output depends on the mask; records what it was given."""

    scales = 1

    def __init__(self) -> None:
        super().__init__()
        self.calls = []

    def forward(self, masked, keep):
        self.calls.append((masked.clone(), keep.clone()))
        return masked + 0.25 * (1 - keep)


def test_the_bank_is_harvested_from_the_network_on_masked_planes(noisy_planes):
    settings = MIDTrainingSettings(**{**TINY_FIT, "signal_dependent": False, "masks_per_plane": 2})
    planes = [np.asarray(p, np.float32) / 200 for p in noisy_planes]
    stub = _MaskedStub()
    bank = training.harvest_bank(stub, planes, 0, settings, torch.device("cpu"))
    assert len(stub.calls) == 2 * len(planes)
    for index, (masked, keep) in enumerate(stub.calls):
        plane = torch.from_numpy(planes[index // 2])
        assert torch.equal(masked[0, 0], plane * keep[0, 0])  # the network never saw a hidden pixel
        assert 0.7 < float(1 - keep.mean()) < 0.9  # the first round's ratio
    for patch, (plane, mask, top, left) in zip(bank.patches, bank.sources.tolist()):
        masked, keep = stub.calls[2 * plane + mask]
        residual = torch.from_numpy(planes[plane]) - (masked + 0.25 * (1 - keep))[0, 0]
        window = residual[top:top + 32, left:left + 32] / np.sqrt(bank.model.b)
        torch.testing.assert_close(patch, window - window.mean(), rtol=1e-5, atol=1e-5)


def test_round_zero_is_gaussian_and_each_later_round_a_fresh_network_on_the_previous_ones_bank(
        noisy_planes, tmp_path, monkeypatch):
    from napari_zsdenoise.normalization import IntensityScaling

    settings = MIDTrainingSettings(**{**TINY_FIT, "rounds": 3})
    trained, harvested = [], []
    real_train, real_harvest = training._train_round, training.harvest_bank

    def spy_train(network, round_index, noise, *args, **kwargs):
        fresh = training.new_network(settings.width, settings.scales,
                                     training._seed(settings.seed, round_index, training._NETWORK))
        untouched = all(torch.equal(a, b) for a, b in zip(network.state_dict().values(), fresh.state_dict().values()))
        trained.append((round_index, network, noise, untouched))
        return real_train(network, round_index, noise, *args, **kwargs)

    def spy_harvest(network, planes, round_index, *args, **kwargs):
        bank = real_harvest(network, planes, round_index, *args, **kwargs)
        harvested.append((round_index, network, bank))
        return bank

    monkeypatch.setattr(training, "_train_round", spy_train)
    monkeypatch.setattr(training, "harvest_bank", spy_harvest)
    training.fit_dataset(noisy_planes, out=tmp_path / "mid.pt", settings=settings, device="cpu")

    assert [entry[0] for entry in trained] == [0, 1, 2] and all(entry[3] for entry in trained)
    assert len({id(entry[1]) for entry in trained}) == 3
    normalised = [IntensityScaling.fit(p).normalize(p) for p in noisy_planes]
    assert isinstance(trained[0][2], GaussianNoise)
    assert trained[0][2].sigma == pytest.approx(robust_noise_sigma(normalised))
    assert [entry[0] for entry in harvested] == [0, 1]  # no bank after the last round
    for round_index in (1, 2):
        source_round, source_network, bank = harvested[round_index - 1]
        assert trained[round_index][2] is bank and source_network is trained[round_index - 1][1]
    card = read_model_card(tmp_path / "mid.pt")
    assert [entry["noise"]["kind"] for entry in card["round_history"]] == ["gaussian", "bank", "bank"]
    assert card["masking_schedule"] == [[0.8, 0.8], [0.7, 0.7], [0.05, 0.15]]


def test_a_dataset_with_spatially_correlated_noise_is_warned_about_before_training(tmp_path):
    from scipy.ndimage import uniform_filter

    from napari_zsdenoise.synthetic import fluorescence_phantom

    rng = np.random.default_rng(4)
    clean = [fluorescence_phantom((72, 72), seed=seed) for seed in range(3)]
    white = [plane + rng.normal(0, 0.05, plane.shape) for plane in clean]
    # Camera-like noise: each pixel's noise shared with its neighbours.
    blotchy = [plane + 3 * uniform_filter(rng.normal(0, 0.05, plane.shape), 3) for plane in clean]
    settings = MIDTrainingSettings(**{**TINY_FIT, "rounds": 2})
    for planes, expected in ((white, False), (blotchy, True)):
        events = []
        out = tmp_path / f"{expected}.pt"
        training.fit_dataset(planes, out=out, settings=settings, device="cpu", progress=events.append)
        warnings = [event for event in events if event.stage == "warning"]
        assert len(warnings) == int(expected)
        if expected:  # said before the first step, not after the wait
            assert events.index(warnings[0]) < min(i for i, e in enumerate(events) if e.stage == "train")
            assert "correlated" in warnings[0].message
        card = read_model_card(out)
        assert card["noise_spatially_correlated"] is expected
        # Correlated noise: trained on the 2x2 sub-planes, where neighbours' noise is far less related.
        assert card["pixel_shuffle"] == (2 if expected else 1)
        assert card["training_planes"] == len(planes) * card["pixel_shuffle"] ** 2
        # The last round keeps the paper's heavy masks only where they are needed to break the correlation.
        assert card["masking_schedule"][-1] == ([0.5, 0.7] if expected else [0.05, 0.15])
        _, info = load_model(out)
        assert info["pixel_shuffle"] == card["pixel_shuffle"]
    # The sub-plane model denoises a plane of any size (odd sides included) to that size.
    odd = blotchy[0][:47, :45]
    result = denoise(odd, "mid", weights=str(tmp_path / "True.pt"), device="cpu", seed=0, iterations=3)
    assert result.shape == odd.shape and np.isfinite(result).all()


def test_sub_plane_passes_predict_each_sub_plane_from_its_own_pixels(monkeypatch):
    from napari_zsdenoise.methods.mid.model import predict_masked_subplanes, subplanes

    calls = []

    class Recorder(torch.nn.Module):
        scales = 2

        def forward(self, masked, keep):
            calls.append((masked.clone(), keep.clone()))
            # Depends on neighbours, so a wrong arrangement would change the answer.
            return masked + 0.5 * torch.roll(masked, 1, dims=-1) + keep

    plane = torch.rand(1, 1, 12, 10, generator=torch.Generator().manual_seed(0))
    keep = (torch.rand(plane.shape, generator=torch.Generator().manual_seed(1)) > 0.5).float()
    out = predict_masked_subplanes(Recorder(), plane, keep, 2)
    (masked, seen), = calls
    assert masked.shape == (4, 1, 6, 5)  # one batch of the four sub-planes
    for index, (part, part_keep) in enumerate(zip(subplanes(plane[0, 0].numpy(), 2), subplanes(keep[0, 0].numpy(), 2))):
        np.testing.assert_allclose(masked[index, 0].numpy(), part * part_keep)
        expected = torch.from_numpy(part * part_keep)
        expected = expected + 0.5 * torch.roll(expected, 1, dims=-1) + torch.from_numpy(part_keep)
        np.testing.assert_allclose(subplanes(out[0, 0].numpy(), 2)[index], expected.numpy(), rtol=1e-6)


def test_the_model_file_round_trips_and_other_files_are_refused(tmp_path):
    from napari_zsdenoise.methods.mid.model import new_network
    from napari_zsdenoise.networks.checkpoints import save_hourglass

    network = new_network(8, 3, seed=4)
    card = {"sources": {"a.tif": 3}, "rounds": 2, "iterations_per_round": 5, "seconds": 1.5, "device": "cpu"}
    noise = {"kind": "bank", "a": 0.02, "b": 0.001, "floor": 1e-6, "signal_dependent": True}
    path = save_model(network, tmp_path / "model.pt", noise_model=noise, model_card=card)
    loaded, info = load_model(path)
    assert (loaded.width, loaded.scales, loaded.image_channels, loaded.mask_channels) == (8, 3, 1, 1)
    for key, value in network.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    assert info["noise_model"] == noise and info["model_card"] == card and len(info["sha256"]) == 64
    assert read_model_card(path) == card and not loaded.training
    save_hourglass(network, tmp_path / "mpi.pt")
    with pytest.raises(ValueError, match="not a MID model file.*fit-dataset"):
        load_model(tmp_path / "mpi.pt")


def test_an_interrupted_fit_continues_from_its_last_round_to_the_same_model(noisy_planes, tmp_path):
    settings = MIDTrainingSettings(**TINY_FIT)
    whole = training.fit_dataset(noisy_planes, out=tmp_path / "whole.pt", settings=settings, device="cpu")

    def interrupt_in_round_two(event):
        if event.stage == "train" and event.round == 2 and event.iteration == 2:
            raise KeyboardInterrupt

    out = tmp_path / "resumed.pt"
    with pytest.raises(KeyboardInterrupt):
        training.fit_dataset(noisy_planes, out=out, settings=settings, device="cpu", progress=interrupt_in_round_two)
    assert not out.exists() and (training.partial_folder(out) / "state.pt").exists()
    events = []
    training.fit_dataset(noisy_planes, out=out, settings=settings, device="cpu", progress=events.append)
    assert events[0].stage == "resumed" and {e.round for e in events if e.stage == "train"} == {2}
    assert not training.partial_folder(out).exists()
    first, _ = load_model(whole)
    second, _ = load_model(out)
    for key, value in first.state_dict().items():
        assert torch.equal(value, second.state_dict()[key]), key
    # Other settings do not continue someone else's rounds.
    with pytest.raises(KeyboardInterrupt):
        training.fit_dataset(noisy_planes, out=tmp_path / "other.pt", settings=settings, device="cpu",
                             progress=interrupt_in_round_two)
    with pytest.raises(ValueError, match="other data or settings"):
        training.fit_dataset(noisy_planes, out=tmp_path / "other.pt", device="cpu",
                             settings=MIDTrainingSettings(**{**TINY_FIT, "seed": 1}))


# --- inference ---------------------------------------------------------------------------

def _stub_method(monkeypatch, **settings):
    import napari_zsdenoise.methods.mid.method as mid_method

    stub = _MaskedStub()
    monkeypatch.setattr(mid_method, "load_model",
                        lambda path: (stub, {"source": "stub", "pixel_shuffle": 1, "trained_mask_ratio": 0.1}))
    method = mid_method.MIDMethod(MIDConfig(weights="stub.pt", **settings))
    method.setup(torch.device("cpu"), seed=0)
    return method, stub


def test_inference_is_the_mean_of_k_passes_each_under_a_fresh_mask(monkeypatch):
    plane = np.random.default_rng(3).uniform(0.1, 0.9, (24, 20)).astype(np.float32)
    method, stub = _stub_method(monkeypatch, iterations=5, mask_ratio=0.6)
    method.prepare(plane, plane_seed=7)
    records = [method.step() for _ in range(5)]
    assert [r.finished for r in records] == [False] * 4 + [True]
    outputs = [(masked + 0.25 * (1 - keep))[0, 0].numpy() for masked, keep in stub.calls]
    np.testing.assert_allclose(method.result(), np.mean(outputs, axis=0), rtol=1e-5, atol=1e-6)
    masks = [keep[0, 0].numpy() for _, keep in stub.calls]
    assert all(not np.array_equal(masks[i], masks[j]) for i in range(5) for j in range(i + 1, 5))
    assert all(0.5 < 1 - m.mean() < 0.7 for m in masks)
    assert all(np.array_equal(masked[0, 0].numpy(), plane * keep[0, 0].numpy()) for masked, keep in stub.calls)
    # The loss is the mean squared change of the running mean (the first pass: from the noisy plane).
    np.testing.assert_allclose(float(records[0].loss), np.mean((outputs[0] - plane) ** 2), rtol=1e-5)
    np.testing.assert_allclose(float(records[1].loss), np.mean(((outputs[1] - outputs[0]) / 2) ** 2), rtol=1e-4)
    # The same plane seed repeats the masks; another seed draws others.
    first = method.result()
    for seed, same in ((7, True), (8, False)):
        method.prepare(plane, plane_seed=seed)
        for _ in range(5):
            method.step()
        assert np.array_equal(method.result(), first) is same


def test_passes_hide_what_the_model_last_trained_with_unless_told(monkeypatch):
    plane = np.full((64, 64), 0.5, dtype=np.float32)
    for settings, hidden in (({}, 0.1), ({"mask_ratio": 0.6}, 0.6)):
        method, stub = _stub_method(monkeypatch, iterations=1, **settings)
        method.prepare(plane, plane_seed=2)
        method.step()
        assert 1 - stub.calls[-1][1].mean().item() == pytest.approx(hidden, abs=0.03)  # 4096 draws
        assert method.run_facts()["mask_ratio"] == hidden
    assert trained_mask_ratio({"masking_schedule": [[0.8, 0.8], [0.7, 0.7], [0.05, 0.15]]}) == pytest.approx(0.1)
    assert trained_mask_ratio({}) == pytest.approx(0.6)  # files from before the card named its schedule


def test_tiled_passes_give_the_whole_plane_prediction_of_a_local_network(monkeypatch):
    plane = np.random.default_rng(4).uniform(0.1, 0.9, (150, 140)).astype(np.float32)
    results = []
    for tile in (0, 64):
        method, _ = _stub_method(monkeypatch, iterations=2, tile=tile)
        method.prepare(plane, plane_seed=1)
        method.step(), method.step()
        results.append(method.result())
    np.testing.assert_array_equal(results[0], results[1])


def test_mid_without_a_model_file_says_how_to_train_one():
    import napari_zsdenoise.methods.mid.method as mid_method

    for weights in (None, "shipped"):
        with pytest.raises(ValueError, match="zsdenoise fit-dataset"):
            mid_method.MIDMethod(MIDConfig(weights=weights)).setup(torch.device("cpu"), seed=0)


def test_clean_planes_are_scaled_so_that_with_noise_added_they_sit_where_denoise_puts_noisy_planes():
    from napari_zsdenoise.normalization import IntensityScaling
    from napari_zsdenoise.synthetic import fluorescence_phantom

    clean = fluorescence_phantom((96, 96), seed=5)
    noise = GaussianNoise(0.08)
    rng = np.random.default_rng(0)
    scaled = training.scale_like_noisy(clean, noise, rng)
    noisy = scaled + 0.08 * np.random.default_rng(1).standard_normal(scaled.shape)
    fitted = IntensityScaling.fit(noisy)
    assert fitted.offset == pytest.approx(0.0, abs=0.03) and fitted.scale == pytest.approx(1.0, abs=0.06)
    # Scaled by its own percentiles instead, its background would sit at 0.1, under any real one.
    assert np.percentile(scaled, 0.1) > 0.25
    # Given the noisy planes' median, the clean plane's median moves there; its bright end stays.
    anchored = training.scale_like_noisy(clean, noise, np.random.default_rng(0), median=0.15)
    assert np.median(anchored) == pytest.approx(0.15, abs=0.005)
    assert np.percentile(anchored, 99.9) == pytest.approx(np.percentile(scaled, 99.9), abs=0.005)


# --- through the engine ------------------------------------------------------------------

def _psnr(estimate: np.ndarray, reference: np.ndarray) -> float:
    span = float(reference.max() - reference.min())
    return float(10 * np.log10(span**2 / np.mean((np.asarray(estimate, np.float64) - reference) ** 2)))


def test_a_short_seeded_fit_denoises_a_poisson_gaussian_stack_including_a_plane_it_never_saw(tmp_path):
    from napari_zsdenoise import DenoiseRun
    from napari_zsdenoise.synthetic import fluorescence_phantom, poisson_gaussian_noise

    peak = 10.0
    clean = np.stack([fluorescence_phantom((64, 64), seed=seed) for seed in range(6)])
    expected = clean * peak + 100.0  # the camera's noise-free counts
    noisy = np.stack([poisson_gaussian_noise(plane, peak_photons=peak, seed=10 + index)
                      for index, plane in enumerate(clean)])
    settings = MIDTrainingSettings(rounds=2, iterations_per_round=150, width=16, scales=4, patch_size=48,
                                   procedural_images=16, procedural_side=64, bank_patches=256)
    model = training.fit_dataset(list(noisy[:5]), out=tmp_path / "mid.pt", settings=settings, device="cpu",
                                 sources={"synthetic": 5})
    run = DenoiseRun(noisy, "mid", weights=str(model), device="cpu", seed=0)
    list(run)
    gains = [_psnr(run.result[i], expected[i]) - _psnr(noisy[i], expected[i]) for i in range(6)]
    # Margins a few dB below what this fit measured (docs/methods.md, MID).
    assert np.mean(gains) > 6.0 and gains[5] > 5.0, gains
    assert run.metadata["planes"][0]["masked_passes"] == 10
    assert run.metadata["weights"]["path"] == str(model) and run.metadata["weights"]["model_card"]["sources"] == {
        "synthetic": 5}


def test_cli_fit_dataset_on_a_folder_then_denoise_with_the_model(tmp_path, noisy_planes, capsys):
    import tifffile

    from napari_zsdenoise.cli import main
    from napari_zsdenoise.io import read_tiff_metadata

    folder = tmp_path / "noisy"
    folder.mkdir()
    tifffile.imwrite(folder / "a.tif", np.stack(noisy_planes[:2]).astype(np.float32))
    tifffile.imwrite(folder / "b.tif", noisy_planes[2].astype(np.float32))
    model = tmp_path / "mid.pt"
    tiny = ["--rounds", "2", "--iterations-per-round", "3", "--batch-size", "2", "--patch-size", "32", "--width", "8",
            "--scales", "3", "--procedural-images", "2", "--procedural-side", "40", "--bank-patches", "16"]
    assert main(["fit-dataset", str(folder), "-o", str(model), "--device", "cpu", "--seed", "3", *tiny]) == 0
    err = capsys.readouterr().err
    assert "3 plane(s) from 2 file(s)" in err and "round 2/2 it 3/3 loss" in err and f"wrote {model}" in err
    card = read_model_card(model)
    assert card["sources"] == {"a.tif": 2, "b.tif": 1} and card["seed"] == 3 and card["rounds"] == 2
    assert main(["fit-dataset", str(folder), "-o", str(model), *tiny]) == 2  # never overwritten unasked
    assert "--overwrite" in capsys.readouterr().err

    result = tmp_path / "a-denoised.tif"
    assert main(["denoise", str(folder / "a.tif"), "-o", str(result), "--method", "mid", "--weights", str(model),
                 "--device", "cpu", "-q"]) == 0
    assert tifffile.imread(result).shape == (2, 40, 36)
    meta = read_tiff_metadata(result)
    assert meta["method"] == "mid" and meta["weights"]["sha256"] and meta["planes"][1]["masked_passes"] == 10
    assert main(["denoise", str(folder / "b.tif"), "-o", str(tmp_path / "b.tif"), "--method", "mid", "-q"]) == 1
    assert "zsdenoise fit-dataset" in capsys.readouterr().err


def test_a_study_can_give_the_fit_its_own_clean_patches_and_residuals(noisy_planes, tmp_path):
    """The public hooks the ground-truth diagnostics of benchmarks/mid_fmd.py use instead of patching."""
    from napari_zsdenoise.methods.mid.noise_bank import harvest_residuals

    settings = MIDTrainingSettings(**{**TINY_FIT, "rounds": 2})
    harvests = []

    def residuals(predict, planes, **kwargs):
        harvests.append(len(planes))
        return harvest_residuals(predict, planes, **kwargs)

    clean = training.CleanPatches(settings)
    clean.description = {**clean.description, "study": "its own clean patches"}
    training.fit_dataset(noisy_planes, out=tmp_path / "mid.pt", settings=settings, device="cpu",
                         clean_patches=clean, residuals=residuals)
    assert harvests == [len(noisy_planes)]  # one bank, between the two rounds
    assert read_model_card(tmp_path / "mid.pt")["clean"]["study"] == "its own clean patches"
