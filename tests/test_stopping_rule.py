"""The early-stopping rule's decisions on recorded held-out traces, without tensors.

The traces are shaped as the ones recorded on the robustness suite (benchmarks/robustness.py): a plateau that
a short patience mistakes for the end, a late peak, and a flat curve with noise on it.
"""

from __future__ import annotations

import numpy as np
import pytest

from napari_zsdenoise.methods._early_stopping import StoppingRule, make_stopping_rule
from napari_zsdenoise.methods.registry import get_method_spec


def _decide(rule: StoppingRule, errors: list[float], every: int = 25,
            correlations: list[float] | None = None) -> tuple[int, int, str | None]:
    """(best check, last check, reason) of ``rule`` fed one held-out error (and residual correlation) per check."""
    iteration = 0
    for k, error in enumerate(errors, start=1):
        iteration = every * k
        rule.observe(iteration, error, 0.05 if correlations is None else correlations[k - 1])
        if rule.finished:
            break
    return rule.best_iteration, iteration, rule.reason


# Falls, stays flat for two checks, falls on to a peak at 250, then rises.
PLATEAU_THEN_FALL = [0.030, 0.014, 0.0110, 0.01102, 0.01101, 0.0100, 0.0094, 0.0091, 0.0090, 0.0089,
                     0.0093, 0.0098, 0.0104, 0.0110]
# The stretched 8-bit confocal case of the robustness suite: the held-out error falls to 525 while the result
# peaked at 375, where the residual's neighbour correlation fell through zero.
STILL_FALLING = [0.0217, 0.0106, 0.0081, 0.0073, 0.0070, 0.0068, 0.0066, 0.0065, 0.0062, 0.0059, 0.0057,
                 0.0054, 0.0051, 0.0048, 0.0046, 0.0044, 0.0042, 0.0041, 0.0040, 0.0039, 0.00392, 0.0040]
FALLING_CORRELATION = [0.43, 0.36, 0.32, 0.30, 0.29, 0.27, 0.26, 0.25, 0.23, 0.21, 0.18, 0.14, 0.11, 0.07, 0.03,
                       -0.004, -0.037, -0.067, -0.095, -0.118, -0.138, -0.155]
# Keeps falling slowly to a late peak at 400, then rises.
LATE_PEAK = [0.010 + 0.02 * np.exp(-k / 3) - 0.0001 * k if k <= 16 else 0.0085 + 0.0004 * (k - 16)
             for k in range(1, 21)]


def test_the_old_rule_ends_on_the_plateau_and_the_new_one_goes_on_to_the_peak():
    old = _decide(StoppingRule(25, correlated_noise=False), PLATEAU_THEN_FALL)
    new = _decide(StoppingRule(25, correlated_noise=False, rising_checks=2, plateau_patience=150),
                  PLATEAU_THEN_FALL)
    assert old == (75, 100, "patience")
    # On the plateau the error rose once (75 -> 100) and then fell; past the peak it rose at 275 and 300.
    assert new == (250, 300, "rose")


def test_a_late_peak_is_reached():
    errors = [float(e) for e in LATE_PEAK]
    peak = 25 * (int(np.argmin(errors)) + 1)
    best, last, reason = _decide(StoppingRule(25, correlated_noise=False, rising_checks=2, plateau_patience=150),
                                 errors)
    assert best == peak and last > peak and reason == "rose"


def test_a_noisy_flat_curve_ends_after_the_plateau_patience_not_on_the_first_wobble():
    # Flat after 75, wobbling up and down by 0.5 % of its level: never two rises in a row.
    errors = [0.03, 0.012, 0.010] + [0.01003 if k % 2 else 0.01005 for k in range(20)]
    best, last, reason = _decide(StoppingRule(25, correlated_noise=False, rising_checks=2, plateau_patience=150),
                                 errors)
    assert (best, last, reason) == (75, 225, "plateau")
    assert _decide(StoppingRule(25, correlated_noise=False), errors)[1:] == (100, "patience")


def test_a_clear_rise_ends_the_run_at_patience_as_before():
    errors = [0.03, 0.012, 0.010, 0.013, 0.016]
    new = _decide(StoppingRule(25, correlated_noise=False, rising_checks=2, plateau_patience=150), errors)
    assert new == (75, 125, "rose")  # one check later than the earlier rule (75, 100): the second rise
    assert _decide(StoppingRule(25, correlated_noise=False, rising_checks=1), errors) == (75, 100, "rose")


def test_without_rising_checks_the_rule_is_the_earlier_releases_patience():
    assert _decide(StoppingRule(25, correlated_noise=False), PLATEAU_THEN_FALL)[2] == "patience"
    assert StoppingRule(50, plateau_patience=10).plateau_patience == 50  # never shorter than patience


def test_correlated_noise_is_decided_as_before_and_ignores_the_rise():
    rule = StoppingRule(25, correlated_noise=True, correlated_noise_iterations=100, rising_checks=2,
                        plateau_patience=150)
    assert _decide(rule, [0.03, 0.02, 0.015, 0.012, 0.011, 0.010]) == (100, 100, "budget")


def test_the_summary_says_why_and_what_the_held_out_pixels_gained():
    rule = StoppingRule(25, correlated_noise=False, rising_checks=2, plateau_patience=150)
    _decide(rule, [0.02, 0.01, 0.011, 0.012])
    assert rule.summary() == {"stop_reason": "rose", "best_iteration": 50, "held_out_gain": 0.5}
    running = StoppingRule(25, correlated_noise=False)
    _decide(running, [0.02, 0.01])
    assert running.summary()["stop_reason"] == "iterations"


def test_presets_build_their_rule_from_their_settings():
    config = get_method_spec("bsn-balanced").default_config
    rule = make_stopping_rule(config)
    assert (rule.patience, rule.rising_checks) == (config.patience, config.rising_checks)
    assert rule.plateau_patience == max(config.plateau_patience, config.patience)


@pytest.mark.parametrize("name", ["mpi", "bsn", "bsn-quick", "bsn-fast"])
def test_presets_measured_with_the_earlier_rule_keep_it(name):
    config = get_method_spec(name).default_config
    assert config.rising_checks == 0 and config.plateau_patience == 0 and config.max_residual_anticorrelation == 0


def test_a_residual_that_falls_through_the_anticorrelation_limit_ends_the_run_before_the_error_turns():
    rule = StoppingRule(25, correlated_noise=False, rising_checks=2, plateau_patience=100,
                        max_residual_anticorrelation=0.02)
    # -0.037 at 425 is the first check past the limit: not kept, and the run ends there.
    assert _decide(rule, STILL_FALLING, correlations=FALLING_CORRELATION) == (400, 425, "copies noise")
    without = StoppingRule(25, correlated_noise=False, rising_checks=2, plateau_patience=100)
    assert _decide(without, STILL_FALLING, correlations=FALLING_CORRELATION)[0] == 25 * (
        int(np.argmin(STILL_FALLING)) + 1)


def test_a_plane_that_starts_below_the_anticorrelation_limit_is_left_to_the_held_out_error():
    # A warm-started plane: its network comes from the plane before, its residual anti-correlates from the start.
    rule = StoppingRule(25, correlated_noise=False, rising_checks=2, plateau_patience=100,
                        max_residual_anticorrelation=0.02)
    errors = [0.03, 0.012, 0.010, 0.013, 0.016]
    assert _decide(rule, errors, correlations=[-0.05] * len(errors)) == (75, 125, "rose")


def test_the_anticorrelation_limit_leaves_correlated_noise_to_its_budget():
    rule = StoppingRule(25, correlated_noise=True, correlated_noise_iterations=100, max_residual_anticorrelation=0.02)
    assert _decide(rule, [0.03, 0.02, 0.015, 0.012, 0.011], correlations=[0.5, 0.3, 0.0, -0.1, -0.2]) == (
        100, 100, "budget")


def test_a_plane_whose_held_out_error_is_flat_early_is_denoised_on_past_the_plateau(monkeypatch):
    """Quality on a seeded synthetic camera frame (64², Poisson-Gaussian, 20 photons at the brightest pixel).

    The held-out error of this small plane falls steadily, so the plateau the rule must see through is made
    flat on purpose: the check at iteration 50 reports no better error than the best before it (as on the
    widefield frame where a plateau at 75-100 ended a run). The training and the kept ensembles are real; the
    earlier rule (patience 25) ends on the plateau and keeps the check at 25, the rule of `bsn-balanced`
    goes on to the error's real peak."""
    from skimage.metrics import peak_signal_noise_ratio

    from napari_zsdenoise import DenoiseRun
    from napari_zsdenoise.synthetic import fluorescence_phantom, poisson_gaussian_noise

    clean = fluorescence_phantom((64, 64), seed=21)
    noisy = np.round(poisson_gaussian_noise(clean, peak_photons=20.0, read_noise=2.0, offset=100.0, seed=22))
    truth = clean * 20.0 + 100.0
    observe = StoppingRule.observe

    def flat_at_50(rule, iteration, error, correlation):
        if iteration == 50:
            error = rule.best_scores["error"] * 1.001
        return observe(rule, iteration, error, correlation)

    monkeypatch.setattr(StoppingRule, "observe", flat_at_50)
    kept = {}
    for label, rule in (("earlier", {"rising_checks": 0, "plateau_patience": 0, "max_residual_anticorrelation": 0}),
                        ("bsn-balanced", {})):
        run = DenoiseRun(noisy.astype(np.uint16), "bsn-balanced", device="cpu", seed=0, iterations=150, **rule)
        for _ in run:
            pass
        plane = run.metadata["planes"][0]
        kept[label] = (peak_signal_noise_ratio(truth, run.result.astype(np.float64), data_range=20.0),
                       plane["best_iteration"], plane["stop_reason"])
    assert kept["earlier"][1:] == (25, "patience")
    assert kept["bsn-balanced"][1] > 50 and kept["bsn-balanced"][2] in ("rose", "plateau", "copies noise", "iterations")
    assert kept["bsn-balanced"][0] > kept["earlier"][0] + 1.0, kept


def test_a_warm_started_plane_is_left_to_the_held_out_error():
    config = get_method_spec("bsn-balanced").default_config
    assert make_stopping_rule(config).max_residual_anticorrelation == config.max_residual_anticorrelation > 0
    assert make_stopping_rule(config, warm_started=True).max_residual_anticorrelation == 0
