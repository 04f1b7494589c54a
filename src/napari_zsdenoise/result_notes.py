"""Whether a finished result deserves a second look, from its run's record alone (no Qt here).

A microscopist cannot see PSNR, so a run that hands back a barely denoised plane with a "done" status is
worse than a slow one. The record of each plane says why early stopping ended it (``stop_reason``), where the
kept result was (``best_iteration``), how far the held-out error fell from its first check to its best
(``held_out_gain``), the kept ensemble's gain over the input estimated without a clean image
(``estimated_gain_db``), and which signal decided (``stopping_signal``). From those, :func:`result_doubts` says in
one line per concern what looks doubtful and names the setting that helps; the CLI prints the lines as
warnings and the dock shows them in its status.
"""

from __future__ import annotations

from typing import Any

from napari_zsdenoise.run_record import (
    BEST_ITERATION,
    ESTIMATED_GAIN_DB,
    HELD_OUT_GAIN,
    STOP_REASON,
    STOPPING_SIGNAL,
    WARM_STARTED,
    computed_planes,
)

#: Planes kept before this iteration by a held-out rule stopped early: on the robustness suite no plane with
#: pixel-independent noise was near its best before it, and most ensembles were still worse than the noisy
#: input at iteration 100 (docs/robustness.md).
EARLY_ITERATION = 150
#: A kept ensemble whose estimated gain over the noisy input (``estimated_gain_db``, which errs low) is below
#: this may be no better than the input.
DOUBTFUL_ESTIMATED_GAIN_DB = -6.0


def _planes_text(indices: list[Any]) -> str:
    if all(not index for index in indices):
        return "the image"
    names = [", ".join(str(i) for i in index) if isinstance(index, (list, tuple)) else str(index)
             for index in indices]
    if len(names) > 4:
        names = names[:3] + [f"… ({len(names)} in all)"]
    return "plane " + names[0] if len(names) == 1 else "planes " + "; ".join(names)


def result_doubts(metadata: dict[str, Any]) -> list[str]:
    """One line for each doubtful trait of the run whose record is ``metadata`` (``DenoiseRun.metadata``)."""
    planes = computed_planes(metadata)
    doubts = []
    for reasons, remedy in ((("rose", "patience", "plateau"),
                             "a longer patience (patience=200, CLI --patience 200) or without early stopping"),
                            (("copies noise",), "the anti-correlation stop off (max_residual_anticorrelation=0, "
                                                "CLI --max-residual-anticorrelation 0)")):
        # A warm-started plane continues a trained network: keeping an early check is what it is for.
        early = [plane for plane in planes
                 if plane.get(STOP_REASON) in reasons and not plane.get(WARM_STARTED)
                 and ((plane.get(BEST_ITERATION) or 0) < EARLY_ITERATION
                      or (plane.get(ESTIMATED_GAIN_DB) is not None
                          and plane[ESTIMATED_GAIN_DB] < DOUBTFUL_ESTIMATED_GAIN_DB))]
        if early:
            where = _planes_text([plane.get("index", ()) for plane in early])
            kept = sorted(plane[BEST_ITERATION] for plane in early)
            doubts.append(
                f"{where[0].upper()}{where[1:]} stopped early (kept iteration {kept[0]}"
                f"{'' if kept[0] == kept[-1] else f'-{kept[-1]}'}), so the result may be barely denoised or worse "
                f"than the input: run it again with {remedy}")
    correlated = [plane for plane in planes if "correlated" in str(plane.get(STOPPING_SIGNAL) or "")]
    if correlated:
        where = _planes_text([plane.get("index", ()) for plane in correlated])
        doubts.append(
            f"the noise of {where} looks spatially correlated (camera-like), where held-out pixels cannot tell the "
            f"best iteration and blind-spot networks learn part of the noise: compare with sub-images "
            f"(shuffle_factor=2, CLI --shuffle-factor 2)")
    return doubts


#: What each ``stop_reason`` of a plane's record means, for summaries.
STOP_REASONS = {
    "rose": "a held-out error rising past its best",
    "patience": "no better held-out check within the patience",
    "plateau": "a held-out error flat for the plateau patience",
    "copies noise": "a residual anti-correlated between neighbours (the network began to copy noise)",
    "budget": "the fixed budget for spatially correlated noise",
    "iterations": "the iteration budget",
}


def stopping_summary(metadata: dict[str, Any]) -> str | None:
    """Why the computed planes ended and what their held-out pixels gained, in a phrase (None without
    early stopping)."""
    planes = [plane for plane in computed_planes(metadata) if plane.get(STOP_REASON)]
    if not planes:
        return None
    counts: dict[str, int] = {}
    for plane in planes:
        counts[plane[STOP_REASON]] = counts.get(plane[STOP_REASON], 0) + 1
    reasons = "; ".join(STOP_REASONS.get(reason, reason)
                        + (f" ({count} plane{'' if count == 1 else 's'})" if len(planes) > 1 else "")
                        for reason, count in counts.items())
    gains = sorted(100 * plane.get(HELD_OUT_GAIN, 0.0) for plane in planes)
    gain = f"{gains[0]:.0f} %" if gains[0] == gains[-1] or len(planes) == 1 else f"{gains[0]:.0f}-{gains[-1]:.0f} %"
    return f"ended by {reasons}; held-out error {gain} below its first check"
