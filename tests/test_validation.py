"""Bad input fails early, with a message naming the problem, before any torch work."""

from __future__ import annotations

import numpy as np
import pytest

from napari_zsdenoise import DenoiseRun, denoise
from napari_zsdenoise._validation import check_image_array


@pytest.mark.parametrize(
    ("image", "error", "message"),
    [
        (np.full((64, 64), np.nan, dtype=np.float32), ValueError, "NaN or infinite"),
        (np.where(np.eye(64, dtype=bool), np.inf, 1.0), ValueError, "NaN or infinite"),
        (np.zeros((0, 64), dtype=np.float32), ValueError, "empty"),
        (np.zeros((64, 64, 0), dtype=np.float32), ValueError, "empty"),
        (np.zeros((16, 64), dtype=np.float32), ValueError, "at least 33x33"),
        (np.zeros(64, dtype=np.float32), ValueError, "at least 2 dimensions"),
        (np.zeros((64, 64), dtype=np.complex64), TypeError, "complex"),
        (np.zeros((64, 64), dtype=bool), TypeError, "boolean"),
        (np.full((64, 64), "a", dtype=object), TypeError, "not a real numeric type"),
        (np.full((64, 64), "a"), TypeError, "not a real numeric type"),
    ],
    ids=["nan", "inf", "empty", "empty-x", "too-small", "1d", "complex", "bool", "object", "string"],
)
def test_bad_input_is_rejected_before_running(image, error, message):
    with pytest.raises(error, match=message):
        DenoiseRun(image, "mpi-fast")  # construction alone must fail: no iteration needed


def test_nan_in_a_later_plane_of_a_stack_is_named():
    stack = np.ones((3, 40, 40), dtype=np.float32)
    stack[2, 5, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        DenoiseRun(stack, "mpi-fast")


def test_not_an_array_is_a_type_error():
    with pytest.raises(TypeError):
        check_image_array(object())


def test_unknown_method_lists_the_choices():
    with pytest.raises(ValueError, match="mpi-fast"):
        denoise(np.zeros((64, 64)), method="no-such-method")


def test_unknown_setting_is_a_type_error():
    with pytest.raises(TypeError, match="no setting"):
        DenoiseRun(np.zeros((64, 64)), "mpi-fast", learning_rat=1e-3)


@pytest.mark.parametrize(
    "overrides",
    [{"iterations": 0}, {"mask_ratio": 1.0}, {"mask_ratio": 0.0}, {"ema_beta": 1.0}, {"learning_rate": -1.0},
     {"iterations": 2.5}, {"shuffle_factor": 0}],
)
def test_invalid_settings_are_rejected(overrides):
    with pytest.raises((ValueError, TypeError)):
        DenoiseRun(np.zeros((64, 64)), "mpi-fast", **overrides)


def test_bad_plane_and_seed():
    stack = np.zeros((2, 3, 40, 40), dtype=np.float32)
    with pytest.raises(ValueError, match="out of range"):
        DenoiseRun(stack, "mpi-fast", plane=6)
    with pytest.raises(ValueError, match="does not fit"):
        DenoiseRun(stack, "mpi-fast", plane=(0, 3))
    with pytest.raises(TypeError, match="seed"):
        DenoiseRun(stack, "mpi-fast", seed=1.5)


def test_bad_device_is_rejected():
    with pytest.raises(ValueError, match="unknown device|not available"):
        DenoiseRun(np.zeros((64, 64)), "mpi-fast", device="tpu")
