"""INS-BSN: masks, the detached SIREN, the U-Net, reproducibility and a measured gain."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from napari_zsdenoise import DenoiseRun, denoise
from napari_zsdenoise.methods.ins_bsn import dilate_cross, draw_masks, ins_bsn_losses
from napari_zsdenoise.networks.n2n_unet import N2NUNet
from napari_zsdenoise.networks.siren import Siren

CROSS = ndimage.generate_binary_structure(2, 1)
SMALL = {"siren_width": 16, "siren_layers": 2}


@pytest.mark.parametrize("dilation", [1, 2, 3])
def test_invisible_set_excludes_visible_pixels_and_their_cross_neighbourhood(dilation):
    generator = torch.Generator().manual_seed(dilation)
    visible, invisible = draw_masks((1, 1, 41, 33), 0.1, dilation, generator, torch.device("cpu"))
    visible_np, invisible_np = visible[0, 0].numpy(), invisible[0, 0].numpy()
    assert visible_np.any() and invisible_np.any()
    expected = ~ndimage.binary_dilation(visible_np, structure=CROSS, iterations=dilation)
    np.testing.assert_array_equal(invisible_np, expected)
    assert not (visible_np & invisible_np).any()


def test_no_dilation_supervises_every_hidden_pixel():
    mask = torch.rand(1, 1, 20, 20, generator=torch.Generator().manual_seed(0)) < 0.2
    assert torch.equal(dilate_cross(mask, 0), mask)


def _small_problem(seed: int = 0):
    torch.manual_seed(seed)
    denoiser, siren = N2NUNet(), Siren(width=16, layers=2, dropout=0.1)
    noisy = torch.rand(1, 1, 24, 20)
    generator = torch.Generator().manual_seed(seed)
    visible, invisible = draw_masks(tuple(noisy.shape), 0.2, 1, generator, torch.device("cpu"))
    offsets = torch.rand(int(visible.sum()), 2, generator=generator)
    return denoiser, siren, noisy, visible, invisible, offsets


def _grads(module: torch.nn.Module) -> list[torch.Tensor | None]:
    return [p.grad for p in module.parameters()]


def test_siren_gets_no_gradient_from_the_denoiser_loss():
    denoiser, siren, noisy, visible, invisible, offsets = _small_problem()
    losses = ins_bsn_losses(denoiser, siren, noisy, visible, invisible, offsets)
    losses.denoiser.backward()
    assert all(g is None or not g.any() for g in _grads(siren))
    assert any(g is not None and g.any() for g in _grads(denoiser))

    for term in ("inr", "consistency"):
        denoiser.zero_grad(set_to_none=True)
        siren.zero_grad(set_to_none=True)
        losses = ins_bsn_losses(denoiser, siren, noisy, visible, invisible, offsets)
        getattr(losses, term).backward()
        assert any(g is not None and g.any() for g in _grads(siren)), term
        assert all(g is None or not g.any() for g in _grads(denoiser)), term


def test_denoiser_never_sees_the_noisy_value_of_a_hidden_pixel():
    denoiser, siren, noisy, visible, invisible, offsets = _small_problem()
    changed = torch.where(visible, noisy, noisy + 0.5)
    outputs = []
    for plane in (noisy, changed):
        generator = torch.Generator().manual_seed(7)  # the same dropout in both passes
        losses = ins_bsn_losses(denoiser, siren, plane, visible, invisible, offsets, generator=generator)
        outputs.append(losses.denoised)
    torch.testing.assert_close(outputs[0], outputs[1], rtol=0, atol=0)


def test_held_out_pixels_enter_neither_loss():
    denoiser, siren, noisy, visible, invisible, offsets = _small_problem()
    holdout = torch.rand(noisy.shape, generator=torch.Generator().manual_seed(3)) < 0.2
    hidden_holdout = holdout & ~visible  # visible ones are denoiser input, as every visible pixel
    assert hidden_holdout.any() and (hidden_holdout & invisible).any()
    changed = torch.where(hidden_holdout, noisy + 0.5, noisy)

    def losses_for(plane, held_out):
        generator = torch.Generator().manual_seed(7)  # the same dropout in both passes
        losses = ins_bsn_losses(denoiser, siren, plane, visible, invisible, offsets, generator=generator,
                                holdout=held_out)
        return torch.stack([losses.denoiser, losses.inr, losses.consistency])

    torch.testing.assert_close(losses_for(noisy, holdout), losses_for(changed, holdout), rtol=0, atol=0)
    # Without the holdout the same change reaches the denoiser's loss.
    assert not torch.equal(losses_for(noisy, None), losses_for(changed, None))


def test_early_stopping_keeps_the_best_check_and_ends_the_run(small_noisy):
    run = DenoiseRun(small_noisy, "ins-bsn", seed=0, iterations=400, early_stopping=True, patience=20,
                     validation_every=5, learning_rate=1e-2, device="cpu", **SMALL)
    events = list(run)
    record = run.metadata["planes"][0]
    assert record["stopped_by_holdout"] is True
    assert events[-1].iteration == record["iterations_done"] < 400
    assert record["best_iteration"] <= record["iterations_done"] - 20
    assert record["stopping_signal"] in ("held-out error", "residual correlation (spatially correlated noise)")


def test_without_early_stopping_the_ensemble_starts_at_the_noisy_plane(small_noisy):
    from napari_zsdenoise.config import INSBSNConfig
    from napari_zsdenoise.methods.ins_bsn import INSBSNMethod

    for early_stopping, start in ((False, "noisy"), (True, "zero")):
        method = INSBSNMethod(INSBSNConfig(early_stopping=early_stopping, **SMALL))
        method.setup(torch.device("cpu"), 0)
        method.prepare(small_noisy.astype(np.float32), 0)
        assert method._ensemble.start == start
        assert (method.early_stopping is not None) is early_stopping


@pytest.mark.parametrize("blur, correlated", [(0.0, False), (0.8, True)])
def test_noise_type_for_early_stopping_is_decided_from_the_image(blur, correlated):
    from scipy import ndimage

    from napari_zsdenoise.config import INSBSNConfig
    from napari_zsdenoise.methods.ins_bsn import INSBSNMethod

    noise = np.random.default_rng(1).standard_normal((64, 64))
    plane = (0.5 + 0.1 * (ndimage.gaussian_filter(noise, blur) if blur else noise)).astype(np.float32)
    method = INSBSNMethod(INSBSNConfig(early_stopping=True, **SMALL))
    method.setup(torch.device("cpu"), 0)
    method.prepare(plane, 0)
    assert method.early_stopping.correlated_noise is correlated  # before any check
    method.step()
    assert method.plane_facts()["stopping_signal"] == (
        "residual correlation (spatially correlated noise)" if correlated else "held-out error")


@pytest.mark.parametrize("shape", [(45, 37), (16, 16), (70, 33)])
def test_unet_keeps_odd_shapes(shape):
    with torch.no_grad():
        assert N2NUNet()(torch.rand(1, 1, *shape)).shape == (1, 1, *shape)


def test_parameter_counts():
    unet = sum(p.numel() for p in N2NUNet().parameters())
    siren = sum(p.numel() for p in Siren().parameters())
    print(f"N2N U-Net {unet} parameters, SIREN {siren}")  # 988,609 and 33,537
    assert 900_000 <= unet <= 1_100_000
    assert siren < 50_000


def test_seeded_runs_repeat_bit_exactly(small_noisy):
    first = denoise(small_noisy, "ins-bsn", iterations=3, seed=5, device="cpu", **SMALL)
    again = denoise(small_noisy, "ins-bsn", iterations=3, seed=5, device="cpu", **SMALL)
    other = denoise(small_noisy, "ins-bsn", iterations=3, seed=6, device="cpu", **SMALL)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert first.shape == small_noisy.shape and first.dtype == np.float32


def test_stacks_and_previews(small_noisy):
    stack = np.stack([small_noisy, small_noisy[::-1]])
    result = denoise(stack, "ins-bsn", iterations=2, seed=0, device="cpu", **SMALL)
    assert result.shape == stack.shape and np.isfinite(result).all()
    run = DenoiseRun(small_noisy, "ins-bsn", iterations=4, preview_every=2, device="cpu", **SMALL)
    previews = [e.preview for e in run if e.preview is not None]
    assert len(previews) >= 2 and not np.array_equal(previews[0], previews[-1])


@pytest.mark.parametrize(
    "settings",
    [
        {"iterations": 0},
        {"visible_fraction": 0.0},
        {"visible_fraction": 1.0},
        {"dilation": -1},
        {"dilation": 1.5},
        {"siren_width": 0},
        {"siren_layers": True},
        {"siren_dropout": 1.0},
        {"ema_beta": 1.0},
        {"learning_rate": 0.0},
        {"siren_learning_rate": -1e-4},
        {"early_stopping": 1},
        {"holdout_fraction": 0.5},
        {"patience": 0},
        {"validation_every": 0},
        {"no_such_setting": 1},
    ],
)
def test_bad_settings_are_refused(settings, small_noisy):
    with pytest.raises((ValueError, TypeError)):
        DenoiseRun(small_noisy, "ins-bsn", **settings)


def test_planes_smaller_than_16_pixels_are_refused():
    with pytest.raises(ValueError):
        DenoiseRun(np.zeros((15, 40), dtype=np.float32), "ins-bsn")
