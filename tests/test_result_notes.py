"""Doubtful results are said in one line that names the setting that helps."""

from __future__ import annotations

from napari_zsdenoise.result_notes import DOUBTFUL_ESTIMATED_GAIN_DB, EARLY_ITERATION, result_doubts


def _plane(index=(), **facts):
    return {"index": list(index), "iterations_done": 200, **facts}


def test_a_plane_stopped_early_by_the_held_out_rule_is_doubtful_and_names_patience():
    metadata = {"planes": [_plane(stop_reason="patience", best_iteration=75, held_out_gain=0.9,
                                  estimated_gain_db=1.0, stopping_signal="held-out error")]}
    (doubt,) = result_doubts(metadata)
    assert doubt.startswith("The image stopped early (kept iteration 75)") and "--patience 200" in doubt


def test_a_late_stop_whose_estimated_gain_is_far_below_zero_is_doubtful():
    plane = _plane(stop_reason="rose", best_iteration=400, estimated_gain_db=DOUBTFUL_ESTIMATED_GAIN_DB - 1)
    assert len(result_doubts({"planes": [plane]})) == 1


def test_a_plane_that_ran_long_or_to_its_budget_is_not_doubtful():
    late = _plane(stop_reason="rose", best_iteration=EARLY_ITERATION, estimated_gain_db=-2.0,
                  stopping_signal="held-out error")
    unknown = _plane(stop_reason="plateau", best_iteration=300, estimated_gain_db=None)
    budget = _plane(stop_reason="iterations", best_iteration=50, stopping_signal="held-out error")
    assert result_doubts({"planes": [late, unknown, budget]}) == []


def test_correlated_noise_is_said_once_for_all_its_planes():
    signal = "fixed budget of 100 iterations (spatially correlated noise)"
    metadata = {"planes": [_plane((k,), stop_reason="budget", best_iteration=100, held_out_gain=0.3,
                                  stopping_signal=signal) for k in range(6)]}
    (doubt,) = result_doubts(metadata)
    assert "planes 0; 1; 2; … (6 in all)" in doubt and "--shuffle-factor 2" in doubt


def test_planes_from_an_earlier_run_are_not_judged_again():
    plane = _plane((0,), stop_reason="patience", best_iteration=25, held_out_gain=0.0, resumed=True)
    assert result_doubts({"planes": [plane]}) == []


def test_the_summary_says_why_the_planes_ended_and_what_they_gained():
    from napari_zsdenoise.result_notes import stopping_summary

    one = {"planes": [_plane(stop_reason="rose", best_iteration=400, held_out_gain=0.62)]}
    assert stopping_summary(one) == "ended by a held-out error rising past its best; held-out error 62 % below its first check"
    stack = {"planes": [_plane((0,), stop_reason="rose", held_out_gain=0.5),
                        _plane((1,), stop_reason="plateau", held_out_gain=0.4)]}
    assert stopping_summary(stack) == ("ended by a held-out error rising past its best (1 plane); a held-out error "
                                       "flat for the plateau patience (1 plane); held-out error 40-50 % below "
                                       "its first check")
    assert stopping_summary({"planes": [_plane()]}) is None


def test_a_warm_started_plane_that_keeps_an_early_check_is_not_doubtful():
    warm = _plane((1,), stop_reason="rose", best_iteration=25, estimated_gain_db=1.0, warm_started=True,
                  stopping_signal="held-out error")
    cold = _plane((0,), stop_reason="copies noise", best_iteration=50, estimated_gain_db=1.0, warm_started=False,
                  stopping_signal="held-out error")
    (doubt,) = result_doubts({"planes": [cold, warm]})
    assert doubt.startswith("Plane 0 stopped early") and "run it again with the anti-correlation stop off" in doubt
