"""Tests of ttblur.metrics: PSNR / SSIM against scikit-image on a real photo, BasicSR options."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ttblur.metrics import PSNR, SSIM, psnr, rgb_to_y, spearman, ssim

skimage = pytest.importorskip("skimage")
from skimage import data, filters  # noqa: E402
from skimage.metrics import peak_signal_noise_ratio, structural_similarity  # noqa: E402

TOL = 1e-4


def sk_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """scikit-image SSIM with the restoration convention, (H, W, 3) or (H, W) in [0, 1]."""
    return float(
        structural_similarity(
            a,
            b,
            channel_axis=2 if a.ndim == 3 else None,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=1.0,
        )
    )


def to_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float()


def to_numpy(image: torch.Tensor) -> np.ndarray:
    """float32 tensor -> float64 HWC array with exactly the same values."""
    return image.double().permute(1, 2, 0).numpy()


@pytest.fixture(scope="module")
def pair() -> tuple[torch.Tensor, torch.Tensor]:
    """A 128x160 crop of the astronaut photo and a blurred, noisy copy (both in [0, 1])."""
    sharp = data.astronaut()[40:168, 180:340].astype(np.float64) / 255.0
    rng = np.random.default_rng(0)
    degraded = filters.gaussian(sharp, sigma=1.2, channel_axis=-1)
    degraded = np.clip(degraded + rng.normal(0.0, 0.03, sharp.shape), 0.0, 1.0)
    return to_tensor(degraded), to_tensor(sharp)


@pytest.fixture(scope="module")
def batch(pair) -> tuple[torch.Tensor, torch.Tensor]:
    """(2, 2, 3, H, W): four different degradations of the same photo."""
    pred, target = pair
    preds = torch.stack(
        [
            pred,
            target,
            (target * 0.8 + 0.1),
            torch.flip(pred, dims=[-1]),
        ]
    ).view(2, 2, *pred.shape)
    return preds, target.expand_as(preds).contiguous()


def test_psnr_matches_skimage(pair):
    pred, target = pair
    expected = peak_signal_noise_ratio(to_numpy(target), to_numpy(pred), data_range=1.0)
    value = psnr(pred, target)
    assert value.dtype == torch.float64 and value.shape == ()
    assert 20.0 < expected < 35.0  # a real degradation, not a trivial case
    assert float(value) == pytest.approx(expected, abs=TOL)


def test_ssim_matches_skimage(pair):
    pred, target = pair
    expected = sk_ssim(to_numpy(pred), to_numpy(target))
    assert 0.3 < expected < 0.95
    assert float(ssim(pred, target)) == pytest.approx(expected, abs=TOL)


def test_reduction_none_gives_per_image_values(batch):
    preds, targets = batch
    p = psnr(preds, targets, reduction="none")
    s = ssim(preds, targets, reduction="none")
    assert p.shape == (2, 2) and s.shape == (2, 2)
    for i in range(2):
        for j in range(2):
            a, b = to_numpy(preds[i, j]), to_numpy(targets[i, j])
            if i == 0 and j == 1:  # identical pair
                assert math.isinf(float(p[i, j]))
            else:
                assert float(p[i, j]) == pytest.approx(
                    peak_signal_noise_ratio(b, a, data_range=1.0), abs=TOL
                )
            assert float(s[i, j]) == pytest.approx(sk_ssim(a, b), abs=TOL)
    assert float(ssim(preds, targets)) == pytest.approx(float(s.mean()), abs=1e-12)
    finite = preds[1]
    assert float(psnr(finite, targets[1])) == pytest.approx(float(p[1].mean()), abs=1e-12)


def test_crop_border_matches_skimage_on_cropped_images(pair):
    pred, target = pair
    c = 8
    a, b = to_numpy(pred)[c:-c, c:-c], to_numpy(target)[c:-c, c:-c]
    assert float(psnr(pred, target, crop_border=c)) == pytest.approx(
        peak_signal_noise_ratio(b, a, data_range=1.0), abs=TOL
    )
    assert float(ssim(pred, target, crop_border=c)) == pytest.approx(sk_ssim(a, b), abs=TOL)
    # the border differs: a corrupted frame edge must not change the cropped score
    spoiled = pred.clone()
    spoiled[:, :c] = 1.0
    assert float(psnr(spoiled, target, crop_border=c)) == float(psnr(pred, target, crop_border=c))
    assert float(psnr(spoiled, target)) < float(psnr(pred, target)) - 1.0


def test_rgb_to_y_is_bt601_studio_swing():
    colours = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    y = rgb_to_y(colours.view(4, 3, 1, 1)).view(4)
    expected = [16 / 255, 235 / 255, (65.481 + 16) / 255, (24.966 + 16) / 255]
    assert y.tolist() == pytest.approx(expected, abs=1e-6)


def test_y_channel_matches_hand_computation(pair):
    pred, target = pair

    def luma(image: np.ndarray) -> np.ndarray:
        r, g, b = image[..., 0], image[..., 1], image[..., 2]
        return (65.481 * r + 128.553 * g + 24.966 * b + 16.0) / 255.0

    a, b = luma(to_numpy(pred)), luma(to_numpy(target))
    mse = np.mean((a - b) ** 2)
    assert float(psnr(pred, target, y_channel=True)) == pytest.approx(
        10 * np.log10(1.0 / mse), abs=TOL
    )
    assert float(ssim(pred, target, y_channel=True)) == pytest.approx(sk_ssim(a, b), abs=TOL)
    # luma PSNR differs from RGB PSNR (the noise is per channel, luma averages it)
    assert float(psnr(pred, target, y_channel=True)) > float(psnr(pred, target)) + 1.0


def test_identical_images_give_inf_psnr_and_unit_ssim(pair):
    _, target = pair
    assert math.isinf(float(psnr(target, target.clone())))
    assert float(ssim(target, target.clone())) == pytest.approx(1.0, abs=1e-12)
    flat = torch.full((3, 20, 20), 0.5)
    assert float(ssim(flat, flat)) == pytest.approx(1.0, abs=1e-12)


def test_known_psnr_value():
    target = torch.zeros(2, 3, 16, 16)
    pred = torch.full_like(target, 0.1)  # MSE = 0.01 -> 20 dB
    assert float(psnr(pred, target)) == pytest.approx(20.0, abs=1e-5)
    assert psnr(pred, target, reduction="none").tolist() == pytest.approx([20.0, 20.0], abs=1e-5)


def test_data_range_255_equals_unit_range(pair):
    pred, target = pair
    for metric in (psnr, ssim):
        scaled = metric(pred * 255, target * 255, data_range=255.0)
        # float32 scaling by 255 rounds the inputs: agreement to float32 precision
        assert float(scaled) == pytest.approx(float(metric(pred, target)), abs=1e-5)


def test_module_forms_match_functions(pair):
    pred, target = pair
    assert torch.equal(PSNR(crop_border=4)(pred, target), psnr(pred, target, crop_border=4))
    assert torch.equal(SSIM(y_channel=True)(pred, target), ssim(pred, target, y_channel=True))


def test_ssim_is_differentiable(pair):
    pred, target = pair
    pred = pred[:, :32, :32].clone().requires_grad_(True)
    loss = 1 - ssim(pred, target[:, :32, :32])
    loss.backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all()
    assert float(pred.grad.abs().sum()) > 0


@pytest.mark.parametrize("metric", [psnr, ssim])
def test_input_errors(metric):
    good = torch.rand(3, 16, 16)
    with pytest.raises(ValueError, match=r"same shape, got \(3, 16, 16\) and \(3, 16, 17\)"):
        metric(good, torch.rand(3, 16, 17))
    with pytest.raises(ValueError, match=r"\(\.\.\., 3, H, W\), got \(2, 4, 16, 16\)"):
        metric(torch.rand(2, 4, 16, 16), torch.rand(2, 4, 16, 16))
    with pytest.raises(ValueError, match=r"\(\.\.\., 3, H, W\), got \(16, 16\)"):
        metric(torch.rand(16, 16), torch.rand(16, 16))
    bad = good.clone()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="pred contains NaN"):
        metric(bad, good)
    with pytest.raises(ValueError, match=r"target values must lie in \[0, 1\].*clamp"):
        metric(good, good * 1.5 + 0.1)
    with pytest.raises(ValueError, match=r"must be a float tensor.*uint8"):
        metric((good * 255).to(torch.uint8), good)
    with pytest.raises(ValueError, match="crop_border=8 removes the whole 16x16 image"):
        metric(good, good, crop_border=8)
    with pytest.raises(ValueError, match="crop_border must be an int >= 0"):
        metric(good, good, crop_border=-1)
    with pytest.raises(ValueError, match="reduction must be 'mean' or 'none'"):
        metric(good, good, reduction="sum")
    with pytest.raises(ValueError, match="data_range must be a positive number"):
        metric(good, good, data_range=0)
    with pytest.raises(ValueError, match=r"must be a torch\.Tensor, got ndarray"):
        metric(good.numpy(), good)


def test_ssim_needs_the_window_to_fit():
    small = torch.rand(3, 10, 30)
    with pytest.raises(ValueError, match=r"at least 11x11 after crop_border=0, got 10x30"):
        ssim(small, small)
    with pytest.raises(ValueError, match=r"after crop_border=5, got 10x10"):
        ssim(torch.rand(3, 20, 20), torch.rand(3, 20, 20), crop_border=5)
    assert ssim(torch.rand(3, 20, 20), torch.rand(3, 20, 20), crop_border=4).shape == ()
    assert math.isfinite(float(psnr(small, small.flip(-1))))


def test_spearman_ranks_with_ties() -> None:
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 1, 2], [1, 2, 3]) == pytest.approx(0.866, abs=1e-3)
    assert spearman([1, 2], [1, 2]) != spearman([1, 2], [1, 2])  # NaN: too few


def test_numpy_numbers_are_accepted_as_the_numbers_they_hold():
    gen = torch.Generator().manual_seed(0)
    a, b = torch.rand(1, 3, 24, 24, generator=gen), torch.rand(1, 3, 24, 24, generator=gen)
    plain = psnr(a, b, crop_border=2, data_range=1.0)
    assert psnr(a, b, crop_border=np.int64(2), data_range=np.float32(1.0)) == plain
    assert ssim(a, b, crop_border=np.int32(2)) == ssim(a, b, crop_border=2)
    with pytest.raises(ValueError, match="crop_border must be an int"):
        psnr(a, b, crop_border=np.float64(2.0))
