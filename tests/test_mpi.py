"""MPI building blocks: masked EMA, masks, pixel shuffle, network, one plane end to end."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_zsdenoise.config import MPIConfig
from napari_zsdenoise.methods._ensemble import masked_ema_update
from napari_zsdenoise.methods.mpi import MPIMethod, merge_subimages, split_subimages
from napari_zsdenoise.networks.hourglass import ReflectionPad, SkipHourglass

from conftest import TINY


def test_masked_ema_update_matches_a_hand_computed_case():
    ema = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    prediction = torch.tensor([[5.0, 6.0], [7.0, 8.0]])
    hidden = torch.tensor([[True, False], [False, True]])
    updated = masked_ema_update(ema, prediction, hidden, beta=0.9)
    # hidden: 0.9*1 + 0.1*5 = 1.4 and 0.9*4 + 0.1*8 = 4.4; visible pixels keep the ensemble.
    torch.testing.assert_close(updated, torch.tensor([[1.4, 2.0], [3.0, 4.4]]))
    torch.testing.assert_close(ema, torch.tensor([[1.0, 2.0], [3.0, 4.0]]))  # not in place


def _prepared(image: np.ndarray, **settings) -> MPIMethod:
    method = MPIMethod(MPIConfig(**{**TINY, **settings}))
    method.setup(torch.device("cpu"), 7)
    method.prepare(image.astype(np.float32), 7)
    return method


@pytest.mark.parametrize("mask_ratio", [0.85, 0.3])
def test_masks_hide_the_requested_fraction_independently_per_pixel(mask_ratio):
    method = _prepared(np.zeros((128, 128)), mask_ratio=mask_ratio)
    masks = torch.stack([method.draw_keep_mask() for _ in range(20)]).float()
    hidden_fraction = 1 - masks.mean().item()
    assert hidden_fraction == pytest.approx(mask_ratio, abs=0.005)  # 327,680 Bernoulli draws
    assert set(torch.unique(masks).tolist()) <= {0.0, 1.0}
    # Neighbouring pixels are uncorrelated (pixel-wise, not patch-wise masks).
    flat = masks[:, 0, 0]
    correlation = np.corrcoef(flat[..., :-1].flatten().numpy(), flat[..., 1:].flatten().numpy())[0, 1]
    assert abs(correlation) < 0.02
    # Successive masks differ.
    assert not torch.equal(masks[0], masks[1])


@pytest.mark.parametrize("factor", [1, 2, 3])
def test_pixel_shuffle_split_and_merge_are_inverse(factor):
    plane = torch.arange(1 * 1 * 12 * 18, dtype=torch.float32).reshape(1, 1, 12, 18)
    sub = split_subimages(plane, factor)
    assert sub.shape == (factor**2, 1, 12 // factor, 18 // factor)
    if factor == 2:
        torch.testing.assert_close(sub[1, 0], plane[0, 0, 0::2, 1::2])  # phase (0, 1)
    torch.testing.assert_close(merge_subimages(sub, factor), plane)


@pytest.mark.parametrize("shape", [(33, 33), (45, 37), (64, 96)])
def test_hourglass_takes_any_size_and_outputs_a_sigmoid(shape):
    torch.manual_seed(0)
    network = SkipHourglass(1, 1, width=8, scales=5)
    x = torch.rand(2, 1, *shape)
    with torch.no_grad():
        out = network(x, torch.ones_like(x))
    assert out.shape == x.shape
    assert float(out.min()) > 0 and float(out.max()) < 1


def test_default_hourglass_matches_the_paper_size():
    network = SkipHourglass(3, 1)  # the authors' 3-channel network with one shared mask channel
    assert sum(p.numel() for p in network.parameters()) == 746_115
    reflection = [m for m in network.modules() if isinstance(m, ReflectionPad)]
    assert reflection, "the hourglass pads by reflection"


def test_reflection_padding_keeps_the_values_and_stays_in_bfloat16_under_cpu_autocast():
    x = torch.rand(1, 3, 9, 7)
    np.testing.assert_array_equal(ReflectionPad(1)(x).numpy(), torch.nn.ReflectionPad2d(1)(x).numpy())
    half = x.to(torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.nn.ReflectionPad2d(1)(half).dtype == torch.float32  # why the hourglass has its own
        padded = ReflectionPad(1)(half)
    assert padded.dtype == torch.bfloat16
    assert torch.equal(padded.float(), torch.nn.ReflectionPad2d(1)(half.float()))


def test_ensemble_starts_at_the_noisy_image_and_only_changes_at_hidden_pixels():
    image = np.random.default_rng(0).uniform(0.2, 0.8, (40, 40))
    method = _prepared(image, ema_beta=0.9)
    np.testing.assert_allclose(method.preview(), image.astype(np.float32))
    generator_state = method._generator.get_state()
    keep = method.draw_keep_mask()
    method._generator.set_state(generator_state)  # step() draws the same mask again
    method.step()
    changed = method.preview() != image.astype(np.float32)
    hidden = (keep[0, 0] == 0).numpy()
    assert not np.any(changed & ~hidden)
    assert changed[hidden].mean() > 0.99


def _step_with_its_prediction(method: MPIMethod) -> tuple[float, torch.Tensor, torch.Tensor]:
    """One step's loss, plus the keep-mask it drew and the network's prediction before it."""
    state = method._generator.get_state()
    keep = method.draw_keep_mask()
    method._generator.set_state(state)
    network_state = {k: v.clone() for k, v in method.network.state_dict().items()}
    loss = float(method.step().loss)
    method.network.load_state_dict(network_state)
    with torch.no_grad():
        prediction = method.network(method.noisy * keep, keep)
    return loss, keep, prediction


def test_loss_is_computed_on_hidden_pixels_only():
    image = np.random.default_rng(0).uniform(0.2, 0.8, (40, 40)).astype(np.float32)
    method = _prepared(image)
    loss, keep, prediction = _step_with_its_prediction(method)
    hidden = keep == 0
    expected = ((prediction - method.noisy)[hidden] ** 2).sum() / prediction.numel()
    assert loss == pytest.approx(float(expected), rel=1e-4)


def test_shuffle_factor_handles_sizes_that_are_not_multiples():
    image = np.random.default_rng(0).uniform(0.2, 0.8, (41, 39))
    method = _prepared(image, shuffle_factor=2)
    method.step()
    assert method.result().shape == (41, 39)


def test_random_initialisation_is_recorded():
    method = _prepared(np.zeros((40, 40)))
    assert method.run_facts()["weights"]["source"] == "random initialisation"


def test_fold_in_receives_what_the_ensemble_is_fed():
    fed = []

    class Recording(MPIMethod):
        def fold_in(self, prediction, hidden, region=None):
            super().fold_in(prediction, hidden, region)
            fed.append((prediction, hidden))

    image = np.random.default_rng(1).uniform(0.2, 0.8, (40, 40))
    method = Recording(MPIConfig(**{**TINY, "ema_beta": 0.8}))
    method.setup(torch.device("cpu"), 7)
    method.prepare(image.astype(np.float32), 7)
    outside = torch.from_numpy(image.astype(np.float32))[None, None]
    for _ in range(3):
        method.step()
        prediction, hidden = fed[-1]
        assert hidden.dtype == torch.bool and 0.6 < hidden.float().mean().item() < 0.95
        outside = masked_ema_update(outside, prediction, hidden, 0.8)
    assert len(fed) == 3
    np.testing.assert_array_equal(outside[0, 0].numpy(), method.preview())


def test_held_out_pixels_are_left_out_of_the_loss():
    image = np.random.default_rng(0).uniform(0.2, 0.8, (40, 40)).astype(np.float32)
    method = _prepared(image, early_stopping=True, holdout_fraction=0.2)
    holdout = method.early_stopping.holdout
    assert 0.1 < holdout.float().mean().item() < 0.3
    loss, keep, prediction = _step_with_its_prediction(method)
    trained = (keep == 0) & ~holdout
    expected = ((prediction - method.noisy)[trained] ** 2).sum() / prediction.numel()
    assert loss == pytest.approx(float(expected), rel=1e-4)


def test_early_stopping_keeps_the_ensemble_of_the_best_held_out_check():
    image = np.random.default_rng(2).uniform(0.2, 0.8, (40, 40))
    method = _prepared(image, early_stopping=True, validation_every=5, patience=10**6)
    previews, records = {}, []
    for _ in range(40):
        records.append(method.step())
        if method.iterations_done % 5 == 0:
            previews[method.iterations_done] = method.preview()
    stopping = method.early_stopping
    iterations, errors, correlations = zip(*stopping.validation_trace)
    assert iterations == tuple(range(5, 41, 5))
    assert stopping.correlated_noise is False  # independent uniform noise
    assert stopping.best_iteration == iterations[int(np.argmin(errors))]
    np.testing.assert_array_equal(method.result(), previews[stopping.best_iteration])
    assert not any(record.finished for record in records)
    # Each check's scores reach the step record, the rest carry none.
    checked = [(i + 1, r.scores["holdout_error"]) for i, r in enumerate(records) if r.scores]
    assert checked == list(zip(iterations, errors))


def test_early_stopping_ends_a_run_that_over_fits_pure_noise():
    from napari_zsdenoise.engine import DenoiseRun

    # A flat field under noise: the best estimate is flat, and a network that keeps
    # training on the noisy pixels can only get worse at the held-out ones.
    noisy = 0.5 + 0.1 * np.random.default_rng(3).standard_normal((48, 48))
    run = DenoiseRun(noisy, "mpi-fast", seed=0, iterations=600, early_stopping=True, patience=40,
                     validation_every=10, learning_rate=1e-2, **TINY)
    events = list(run)
    record = run.metadata["planes"][0]
    assert record["stopped_by_holdout"] is True
    assert events[-1].iteration == record["iterations_done"] < 600
    assert record["best_iteration"] <= record["iterations_done"] - 40
    assert not run.stopped_early  # the user did not press stop


@pytest.mark.parametrize("settings", [{"holdout_fraction": 0.0}, {"holdout_fraction": 0.5}, {"patience": 0},
                                      {"validation_every": 0}, {"early_stopping": 1}])
def test_early_stopping_settings_are_validated(settings):
    with pytest.raises((TypeError, ValueError)):
        MPIConfig(**settings)


def test_a_run_ending_between_checks_is_checked_once_more():
    image = np.random.default_rng(4).uniform(0.2, 0.8, (40, 40))
    method = _prepared(image, early_stopping=True, validation_every=25)
    for _ in range(7):
        method.step()
    assert method.early_stopping.validation_trace == []
    np.testing.assert_array_equal(method.result(), method.preview())
    assert [row[0] for row in method.early_stopping.validation_trace] == [7] and method.early_stopping.best_iteration == 7


def test_spatially_correlated_noise_is_scored_by_residual_correlation():
    from scipy.ndimage import uniform_filter

    # White noise smoothed over 3x3 pixels: neighbours' noise correlates strongly, so a
    # network can predict part of a held-out pixel's noise and that error misleads.
    noise = uniform_filter(np.random.default_rng(5).standard_normal((48, 48)), size=3)
    method = _prepared(0.5 + 0.1 * noise, early_stopping=True, validation_every=5, patience=10**6)
    for _ in range(30):
        method.step()
    iterations, errors, correlations = zip(*method.early_stopping.validation_trace)
    assert correlations[0] > 0.3 and method.early_stopping.correlated_noise is True
    assert method.early_stopping.best_iteration == iterations[int(np.argmax(correlations))]
    assert method.plane_facts()["stopping_signal"].startswith("residual correlation")


def test_a_budget_for_correlated_noise_keeps_the_ensemble_at_that_iteration_and_ends_the_run():
    from scipy.ndimage import uniform_filter

    noise = uniform_filter(np.random.default_rng(5).standard_normal((48, 48)), size=3)
    method = _prepared(0.5 + 0.1 * noise, early_stopping=True, validation_every=5, patience=10**6,
                       correlated_noise_iterations=30)
    for _ in range(40):
        if method.step().finished:
            break
    assert method.iterations_done == 30 and method.early_stopping.correlated_noise is True
    assert method.early_stopping.best_iteration == 30
    np.testing.assert_array_equal(method.result(), method.preview())  # the ensemble at 30 is the last one
    assert method.plane_facts()["stopping_signal"].startswith("fixed budget of 30 iterations")


@pytest.mark.parametrize("budget, decided_at, best, finished_at", [
    (0, None, 25, 100),     # no budget: the highest correlation (the first check), known at the fourth
    (150, None, 150, 150),  # decided at the fourth check, kept going to the budget
    (60, None, 50, 100),    # decided after the budget passed: the last check within it
    (10, None, 25, 100),    # shorter than the first check: the first check
    (150, False, 25, 75),   # pixel-independent noise: the held-out error decides, the budget plays no part
])
def test_stopping_rule_on_correlated_noise_with_and_without_a_budget(budget, decided_at, best, finished_at):
    from napari_zsdenoise.methods._early_stopping import StoppingRule

    # Both scores fall monotonically, as on the FMD widefield crops: the held-out error
    # improves at every check and the residual correlation is highest at the first one.
    rule = StoppingRule(patience=50, correlated_noise=decided_at, correlated_noise_iterations=budget)
    checks = [(25 * k, 0.02 / k, 0.51 - 0.01 * k) for k in range(1, 13)]
    if decided_at is False:  # here the error must stop improving for patience to end the run
        checks = [(25 * k, 0.01 + 0.001 * abs(k - 1), 0.1) for k in range(1, 13)]
    for iteration, error, correlation in checks:
        rule.observe(iteration, error, correlation)
        if rule.finished:
            break
    assert (rule.best_iteration, iteration) == (best, finished_at)


@pytest.mark.parametrize("correlations, expected", [
    ([0.445, 0.443, 0.441, 0.441], True),  # FMD widefield crop, our weights
    ([0.509, 0.480, 0.467, 0.461], True),  # the same from random initialisation
    ([0.411, 0.319, 0.270], False),        # confocal from random initialisation: signal left early on
    ([0.314, 0.260], False),
    ([0.09], False),
    ([0.445, 0.443], None),                # not decided yet
])
def test_correlated_noise_needs_a_residual_correlation_that_stays_high(correlations, expected):
    from napari_zsdenoise.methods._early_stopping import is_correlated_noise

    assert is_correlated_noise(correlations) is expected


def test_a_training_crop_as_large_as_the_plane_trains_on_the_whole_plane():
    image = np.random.default_rng(3).uniform(0.2, 0.8, (40, 40)).astype(np.float32)
    whole, cropped = _prepared(image), _prepared(image, training_crop=64)
    for _ in range(3):
        assert float(whole.step().loss) == float(cropped.step().loss)
    np.testing.assert_array_equal(whole.result(), cropped.result())


def test_training_crops_fill_the_ensemble_only_where_they_lie():
    image = np.random.default_rng(4).uniform(0.2, 0.8, (64, 48)).astype(np.float32)
    method = _prepared(image, training_crop=24, views_per_step=2)
    regions = []
    draw = method.draw_regions
    method.draw_regions = lambda: regions.append(draw()) or regions[-1]
    method.step()
    (first, second), = regions
    inside = np.zeros(image.shape, dtype=bool)
    for rows, columns in (first, second):
        assert (rows.stop - rows.start, columns.stop - columns.start) == (24, 24)
        inside[rows, columns] = True
    changed = method.preview() != image
    assert changed.any() and not np.any(changed & ~inside)


def test_a_whole_plane_fill_reaches_pixels_the_crops_missed():
    image = np.random.default_rng(5).uniform(0.2, 0.8, (64, 64)).astype(np.float32)
    method = _prepared(image, training_crop=17, fill_every=1)
    method.step()
    changed = method.preview() != image
    assert changed.mean() > 0.6  # about mask_ratio of the plane, far beyond one 17x17 crop


def test_training_crop_positions_are_reproducible_and_spread_over_the_plane():
    image = np.random.default_rng(6).uniform(0.2, 0.8, (96, 96)).astype(np.float32)
    first, second = (_prepared(image, training_crop=32, views_per_step=4) for _ in range(2))
    drawn = [first.draw_regions() for _ in range(20)]
    assert drawn == [second.draw_regions() for _ in range(20)]
    tops = {rows.start for regions in drawn for rows, _ in regions}
    assert min(tops) < 16 and max(tops) > 48


def test_a_training_crop_smaller_than_the_network_takes_is_refused():
    with pytest.raises(ValueError, match="scales=3 needs crops of at least 9 pixels .* but training_crop is 5"):
        MPIConfig(**{**TINY, "training_crop": 5})


def test_several_masks_of_the_whole_plane_train_together_and_all_fill_the_ensemble():
    image = np.random.default_rng(7).uniform(0.2, 0.8, (40, 40)).astype(np.float32)
    method = _prepared(image, views_per_step=3)
    fed = []
    fold = method.fold_in
    method.fold_in = lambda prediction, hidden, region=None: fed.append(hidden) or fold(prediction, hidden, region)
    method.step()
    assert len(fed) == 3 and all(hidden.shape == (1, 1, 40, 40) for hidden in fed)
    assert not torch.equal(fed[0], fed[1])  # a fresh mask per view


def test_warm_start_carries_the_network_to_the_next_plane_with_its_own_budget():
    from napari_zsdenoise import DenoiseRun
    from napari_zsdenoise.synthetic import fluorescence_phantom, poisson_gaussian_noise

    clean = fluorescence_phantom((48, 48), seed=3)
    stack = np.stack([poisson_gaussian_noise(clean, peak_photons=30, seed=s) for s in range(3)])
    first_losses = {}
    for warm in (False, True):
        run = DenoiseRun(stack, "bsn", device="cpu", seed=0, iterations=40, early_stopping=False, warm_start=warm,
                         warm_iterations=10, preview_every=0, preview_interval=0, **TINY)
        losses, totals = {}, {}
        for event in run:
            losses.setdefault(event.plane, event.loss)
            totals[event.plane] = event.total
        first_losses[warm] = losses
        # The progress counts to each plane's own budget, not the first plane's.
        assert list(totals.values()) == ([40, 10, 10] if warm else [40, 40, 40])
        planes = run.metadata["planes"]
        assert [plane["iterations_done"] for plane in planes] == ([40, 10, 10] if warm else [40, 40, 40])
        assert [plane.get("warm_started") for plane in planes] == ([False, True, True] if warm else [None] * 3)
    # Same first plane; the next planes start from a trained network, so their first loss is lower.
    assert first_losses[True][0] == first_losses[False][0]
    assert first_losses[True][1] < 0.8 * first_losses[False][1]


def test_warm_start_continues_from_the_best_checks_network_at_the_warm_learning_rate():
    from napari_zsdenoise.synthetic import fluorescence_phantom, poisson_gaussian_noise

    clean = fluorescence_phantom((48, 48), seed=3)
    first, second = (poisson_gaussian_noise(clean, peak_photons=30, seed=s).astype(np.float32) for s in range(2))
    method = MPIMethod(MPIConfig(**{**TINY, "weights": None, "early_stopping": True, "validation_every": 5,
                                    "patience": 10, "iterations": 60, "warm_start": True, "warm_learning_rate": 1e-4}))
    method.setup(torch.device("cpu"), 0)
    method.prepare(first, 0)
    assert method.optimizer.param_groups[0]["lr"] == method.config.learning_rate
    states = {}
    while not method.step().finished:
        states[method.iterations_done] = {k: v.clone() for k, v in method.network.state_dict().items()}
    states[method.iterations_done] = {k: v.clone() for k, v in method.network.state_dict().items()}
    best, last = method.early_stopping.best_iteration, method.iterations_done
    assert best < last  # the run went on past its best check
    method.prepare(second, 1)
    assert method.warm_started
    assert method.optimizer.param_groups[0]["lr"] == 1e-4
    carried = method.network.state_dict()
    assert all(torch.equal(carried[name], states[best][name]) for name in carried)
    assert not all(torch.equal(carried[name], states[last][name]) for name in carried)


def test_warm_start_starts_afresh_after_a_plane_with_spatially_correlated_noise():
    from napari_zsdenoise.synthetic import fluorescence_phantom, poisson_gaussian_noise

    clean = fluorescence_phantom((48, 48), seed=3)
    first, second, third = (poisson_gaussian_noise(clean, peak_photons=30, seed=s).astype(np.float32)
                            for s in range(3))
    method = MPIMethod(MPIConfig(**{**TINY, "weights": None, "early_stopping": True, "validation_every": 5,
                                    "patience": 10, "iterations": 20, "warm_start": True, "warm_iterations": 10,
                                    "correlated_noise_iterations": 10}))
    method.setup(torch.device("cpu"), 0)
    method.prepare(first, 0)
    while not method.step().finished:
        pass
    assert method.early_stopping.correlated_noise is False
    method.prepare(second, 1)
    assert method.warm_started and "warm_start_declined" not in method.plane_facts()
    while not method.step().finished:
        pass
    method.early_stopping.rule.correlated_noise = True  # as if the checks had found correlated noise
    carried = {name: value.clone() for name, value in method.network.state_dict().items()}
    method.prepare(third, 2)
    assert not method.warm_started
    assert method.plane_facts()["warm_start_declined"] == "spatially correlated noise on the plane before"
    assert method.optimizer.param_groups[0]["lr"] == method.config.learning_rate
    fresh = method.network.state_dict()
    assert not all(torch.equal(fresh[name], carried[name]) for name in fresh)


def test_fill_tiles_partition_the_plane_and_give_each_tile_its_margin():
    from napari_zsdenoise.methods.mpi.method import fill_tiles

    covered = np.zeros((100, 70), dtype=int)
    for (rows, columns), (context_rows, context_columns) in fill_tiles((100, 70), 32, 8):
        covered[rows, columns] += 1
        assert context_rows.start == max(0, rows.start - 8) and context_rows.stop == min(100, rows.stop + 8)
        assert context_columns.start == max(0, columns.start - 8) and context_columns.stop == min(70, columns.stop + 8)
    assert (covered == 1).all()


def test_a_plane_over_the_memory_budget_is_trained_on_crops_and_filled_in_tiles(small_noisy):
    from napari_zsdenoise import DenoiseRun

    run = DenoiseRun(small_noisy, "bsn", device="cpu", iterations=3, memory_budget_mb=1, **{**TINY, "weights": None})
    for _ in run:
        pass
    plane = run.metadata["planes"][0]
    assert plane["trained_on_crops"] < min(small_noisy.shape) and "the budget is 1 MB" in plane["reason"]
    unconstrained = DenoiseRun(small_noisy, "bsn", device="cpu", iterations=3, **{**TINY, "weights": None})
    for _ in unconstrained:
        pass
    assert "trained_on_crops" not in unconstrained.metadata["planes"][0]


def test_running_out_of_device_memory_retries_on_smaller_crops(monkeypatch):
    # The out-of-memory error is simulated: any network input above 24x24 pixels raises
    # it, as a CUDA device would for a plane too large.
    from napari_zsdenoise.networks.hourglass import SkipHourglass

    real_forward = SkipHourglass.forward

    def forward(self, masked_image, mask):
        if masked_image.shape[-1] * masked_image.shape[-2] > 24 * 24:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return real_forward(self, masked_image, mask)

    monkeypatch.setattr(SkipHourglass, "forward", forward)
    image = np.random.default_rng(8).uniform(0.2, 0.8, (64, 64)).astype(np.float32)
    method = _prepared(image)
    for _ in range(3):
        method.step()
    assert method.memory_plan["trained_on_crops"] == 16 and "ran out of memory at iteration 1" in method.memory_plan["reason"]
    assert method.result().shape == (64, 64)


def test_context_planes_refuse_a_repeated_plane_and_a_stack_too_short_for_them(small_noisy, tmp_path):
    from napari_zsdenoise import DenoiseRun

    other = np.random.default_rng(4).permutation(small_noisy.ravel()).reshape(small_noisy.shape)
    repeated = np.stack([other, small_noisy, small_noisy])
    with pytest.raises(ValueError, match="planes 1 and 2 along the axis before Y are identical"):
        DenoiseRun(repeated, "bsn", context_planes=1, iterations=2, device="cpu", **TINY)
    with pytest.raises(ValueError, match="context_planes=2 needs at least 3 planes"):
        DenoiseRun(np.stack([small_noisy, other]), "bsn", context_planes=2, iterations=2, device="cpu", **TINY)
    # A lazily read stack is checked as each plane is read: the planes before the repeat are kept.
    path = tmp_path / "repeated.npy"
    np.save(path, repeated)
    finished = []
    lazy = DenoiseRun(np.load(path, mmap_mode="r"), "bsn", context_planes=1, iterations=2, device="cpu",
                      on_plane_finished=lambda index, estimate, record: finished.append(index), **TINY)
    with pytest.raises(ValueError, match="planes 1 and 2 along the axis before Y are identical"):
        for _ in lazy:
            pass
    assert finished == [(0,)]
    fine = DenoiseRun(np.stack([small_noisy, other]), "bsn", context_planes=1, iterations=2, device="cpu", **TINY)
    for _ in fine:
        pass
    assert [plane["context_planes"] for plane in fine.metadata["planes"]] == [1, 1]


def test_context_planes_are_unmasked_extra_channels_where_the_image_has_them(small_noisy):
    from napari_zsdenoise import DenoiseRun

    with pytest.raises(ValueError, match="context_planes needs random initialisation"):
        DenoiseRun(np.stack([small_noisy] * 3), "mpi-fast", context_planes=1)
    flat = DenoiseRun(small_noisy, "bsn", context_planes=1, iterations=2, device="cpu", **TINY)
    for _ in flat:  # a 2-D image has no neighbours: it runs without, and says so
        pass
    assert flat.metadata["planes"][0]["context_planes"] == 0
    image = np.random.default_rng(9).uniform(0.2, 0.8, (3, 40, 40)).astype(np.float32)
    assert _prepared(image[1], context_planes=1).network.image_channels == 1
    method = MPIMethod(MPIConfig(**{**TINY, "context_planes": 1}))
    method.setup(torch.device("cpu"), 7)
    with pytest.raises(ValueError, match="needs 2 neighbouring planes"):
        method.prepare(image[1], 7, image[:1])
    method.prepare(image[1], 7, np.stack([image[0], image[2]]))
    assert method.network.image_channels == 3 and method.network.output_channels == 1
    seen = []
    real_forward = method.network.forward
    method.network.forward = lambda masked, mask: seen.append(masked.detach().clone()) or real_forward(masked, mask)
    method.step()
    masked = seen[0][0]
    np.testing.assert_array_equal(masked[1].numpy(), image[0])  # the neighbours unmasked
    np.testing.assert_array_equal(masked[2].numpy(), image[2])
    assert 0.7 < float((masked[0] == 0).float().mean()) < 0.95  # the plane itself masked


def _phantom_in_one_corner(size: int = 96, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """A noisy plane whose structure lies in its bottom-right quarter only, and its clean plane."""
    from napari_zsdenoise.synthetic import fluorescence_phantom, poisson_gaussian_noise

    structure = fluorescence_phantom((size // 2, size // 2), seed=seed)
    clean = np.full((size, size), np.median(structure), dtype=np.float32)
    clean[size // 2:, size // 2:] = structure
    return poisson_gaussian_noise(clean, peak_photons=30, seed=seed).astype(np.float32), clean


def test_most_structured_crop_finds_the_structure_on_the_allowed_grid():
    from napari_zsdenoise.methods.mpi.method import most_structured_crop

    plane, _ = _phantom_in_one_corner()
    rows, columns = most_structured_crop(plane, 48)
    assert rows.stop - rows.start == columns.stop - columns.start == 48
    # At least three quarters of the crop on the structured quarter (its edge with the flat part is detail too).
    assert (rows.stop - max(rows.start, 48)) * (columns.stop - max(columns.start, 48)) >= 0.75 * 48 * 48
    rows, columns = most_structured_crop(plane[:, :40], 48, multiple=4)  # narrower than the side: whole width
    assert (columns.start, columns.stop) == (0, 40) and rows.stop - rows.start == 48 and rows.start % 4 == 0
    rows, columns = most_structured_crop(plane, 46, multiple=4)
    assert rows.stop - rows.start == 44 and rows.start % 4 == 0 and columns.start % 4 == 0


def test_start_crop_trains_on_the_crop_then_continues_on_the_whole_plane():
    from napari_zsdenoise import DenoiseRun

    noisy, _ = _phantom_in_one_corner()
    run = DenoiseRun(noisy, "bsn", device="cpu", seed=0, iterations=30, early_stopping=False, start_crop=48,
                     whole_plane_iterations=10, warm_learning_rate=1e-4, learning_rate=3e-3, preview_every=1,
                     preview_interval=0, **TINY)
    previews = {}
    for event in run:
        previews[event.iteration] = event.preview
        assert event.total == 30
        if event.iteration == 21:
            # The whole plane goes on at the plane's learning rate: the warm one is for a stack's next plane.
            assert run.method.warm_started and run.method.optimizer.param_groups[0]["lr"] == 3e-3
        elif event.iteration <= 20:
            assert not run.method.warm_started
    plane = run.metadata["planes"][0]
    assert plane["iterations_done"] == 30
    top, left, height, width = plane["start_crop"]
    assert (height, width) == (48, 48) and top >= 24 and left >= 24 and plane["start_crop_iterations"] == 20
    # While the crop trains, the preview is the input outside it; afterwards the whole plane is estimated.
    early, outside = previews[5], np.ones(noisy.shape, dtype=bool)
    outside[top:top + 48, left:left + 48] = False
    assert early.shape == noisy.shape
    np.testing.assert_allclose(early[outside], noisy[outside], rtol=1e-5, atol=1e-3)
    assert not np.allclose(early[~outside], noisy[~outside], atol=1e-3)
    assert not np.allclose(run.result[outside], noisy[outside], atol=1e-3)


def test_start_crop_holds_out_the_whole_planes_pixels_and_carries_its_best_network():
    from napari_zsdenoise.methods._early_stopping import HoldoutEarlyStopping, StoppingRule

    noisy, _ = _phantom_in_one_corner()
    # Checks every 7 steps: the crop's budget of 40 ends between checks, so its best is not its last step.
    settings = {**TINY, "early_stopping": True, "validation_every": 7, "patience": 14, "iterations": 60,
                "start_crop": 48, "whole_plane_iterations": 20, "shuffle_factor": 2, "scales": 2}
    method = MPIMethod(MPIConfig(**settings))
    method.setup(torch.device("cpu"), 0)
    method.prepare(noisy, 4)
    whole = split_subimages(torch.from_numpy(noisy)[None, None], 2)
    reference = HoldoutEarlyStopping(whole, holdout_fraction=method.config.holdout_fraction,
                                     validation_every=7, seed=4, rule=StoppingRule(14))
    rows, columns = method._whole_plane[3]
    assert torch.equal(method.early_stopping.holdout,
                       reference.holdout[..., rows.start // 2: rows.stop // 2, columns.start // 2: columns.stop // 2])
    crop_phase, _ = method.plane_plan(noisy.shape, False).phases
    states = {}
    for _ in range(crop_phase.iterations):
        finished = method.step().finished
        states[method.iterations_done] = {k: v.clone() for k, v in method.network.state_dict().items()}
        if finished:
            break
    method.start_phase(1)
    best = method.start_crop_facts["start_crop_best_iteration"]
    assert best < method.start_crop_facts["start_crop_iterations"] == 40
    carried = method.network.state_dict()
    assert all(torch.equal(carried[name], states[best][name]) for name in carried)
    assert method.warm_started and torch.equal(method.early_stopping.holdout, reference.holdout)


def test_start_crop_is_skipped_for_small_planes_and_spatially_correlated_noise():
    from scipy import ndimage

    noisy, _ = _phantom_in_one_corner()
    method = _prepared(noisy, start_crop=96, whole_plane_iterations=10)
    assert method._whole_plane is None and method.noisy.shape[-2:] == (96, 96)
    correlated = ndimage.uniform_filter(np.random.default_rng(0).normal(0.5, 0.1, (96, 96)), 3).astype(np.float32)
    method = _prepared(correlated, start_crop=48, whole_plane_iterations=10)
    assert method._whole_plane is None and method.noisy.shape[-2:] == (96, 96)
    assert [phase.name for phase in method.plane_plan(correlated.shape, False).phases] == ["whole plane"]
    method = _prepared(noisy, start_crop=48, whole_plane_iterations=10)
    assert method._whole_plane is not None and method.noisy.shape[-2:] == (48, 48)
    assert [phase.name for phase in method.plane_plan(noisy.shape, False).phases] == ["start crop", "whole plane"]


def test_start_crop_leaves_the_whole_plane_at_most_half_the_budget():
    from napari_zsdenoise.methods.registry import get_method_spec

    with pytest.raises(ValueError, match="at least"):
        get_method_spec("bsn").make_config(**{**TINY, "start_crop": 8})
    noisy, _ = _phantom_in_one_corner()
    for iterations, whole_plane, phases in ((40, 10, [30, 10]), (40, 0, [20, 20]), (40, 100, [20, 20]), (1, 10, [1])):
        method = _prepared(noisy, start_crop=48, iterations=iterations, whole_plane_iterations=whole_plane)
        plan = method.plane_plan(noisy.shape, False)
        assert [phase.iterations for phase in plan.phases] == phases
        assert (method._whole_plane is None) == (len(phases) == 1)


def test_warm_iterations_given_for_a_start_crop_still_set_its_whole_plane_steps_with_a_warning():
    with pytest.warns(FutureWarning, match="whole_plane_iterations"):
        config = MPIConfig(**{**TINY, "start_crop": 48, "warm_iterations": 10})
    assert config.whole_plane_iterations == 10 and config.start_crop_whole_plane_steps == 10


def test_start_crop_with_context_planes_and_a_stop_during_the_crop():
    from napari_zsdenoise import DenoiseRun

    noisy, _ = _phantom_in_one_corner()
    stack = np.stack([np.roll(noisy, shift, axis=1) for shift in range(3)])
    run = DenoiseRun(stack, "bsn", device="cpu", seed=0, iterations=12, early_stopping=False, start_crop=48,
                     whole_plane_iterations=4, context_planes=1, plane=1, preview_every=0, preview_interval=0, **TINY)
    for _ in run:
        pass
    facts = run.metadata["planes"][0]
    assert facts["context_planes"] == 1 and facts["start_crop_iterations"] == 8 and facts["iterations_done"] == 12
    assert "stopped_on_start_crop" not in facts
    run = DenoiseRun(noisy, "bsn", device="cpu", seed=0, iterations=12, early_stopping=False, start_crop=48,
                     whole_plane_iterations=4, preview_every=0, preview_interval=0, **TINY)
    for event in run:
        if event.iteration == 3:
            run.stop()
    facts = run.metadata["planes"][0]
    assert facts["stopped_on_start_crop"] and facts["start_crop_iterations"] == 3
    top, left, height, width = facts["start_crop"]
    outside = np.ones(noisy.shape, dtype=bool)
    outside[top:top + height, left:left + width] = False
    np.testing.assert_allclose(run.result[outside], noisy[outside], rtol=1e-5, atol=1e-3)


def test_the_blend_judges_each_tile_of_a_plane_on_its_own_noise():
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(12)
    rows, columns = np.mgrid[0:96, 0:192] / 96
    image = 0.4 + 0.2 * np.sin(4 * columns) * np.cos(3 * rows)
    image[:, :128] += 0.05 * rng.standard_normal((96, 128))
    # Camera-like noise on the right third, inside the second of two tiles.
    image[:, 128:] += gaussian_filter(rng.normal(0.0, 0.2, (96, 64)), 0.8)
    method = _prepared(image, blend_noisy=True, blend_tile=96)
    assert method._blend_independent == [column < 2 for _ in range(2) for column in range(3)]  # blocks of 64
    for _ in range(4):
        method.step()
    result = method.result()
    ensemble = method._ensemble.mean()[0, 0].numpy()
    # The camera-like blocks keep the ensemble; the rest is blended with the noisy plane.
    assert np.array_equal(result[:, 128:], ensemble[:, 128:])
    assert not np.allclose(result[:, :24], ensemble[:, :24])
    assert method.plane_facts()["blend_weight"] > 0.0
