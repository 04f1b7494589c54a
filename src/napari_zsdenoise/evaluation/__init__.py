"""Scoring against clean references, the benchmark runner and iteration timing.

Nothing in the product depends on this subpackage; the CLI's ``bench`` and ``speed``
commands and the study scripts under ``benchmarks/`` use it.
"""

from napari_zsdenoise.evaluation.runner import PairScore, iter_lines, run_benchmark
from napari_zsdenoise.evaluation.scoring import CROP_ORIGINS, centre_crop, find_pairs, load_pair, score, to_unit_range
from napari_zsdenoise.evaluation.speed import time_iterations

__all__ = ["CROP_ORIGINS", "PairScore", "centre_crop", "find_pairs", "iter_lines", "load_pair", "run_benchmark", "score",
           "time_iterations", "to_unit_range"]
