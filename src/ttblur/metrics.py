"""Image quality metrics with the image-restoration field's conventions: PSNR and SSIM.

Both take ``(..., 3, H, W)`` RGB tensors with values in ``[0, data_range]`` (``[0, 1]`` by
default) and follow the BasicSR evaluation protocol:

- ``crop_border``: that many pixels are removed from each of the four sides first;
- ``y_channel``: compare only the ITU-R BT.601 luma of the studio-swing YCbCr conversion,
  ``Y = (65.481 R + 128.553 G + 24.966 B + 16) / 255`` for RGB in ``[0, 1]`` (so
  ``Y`` lies in ``[16/255, 235/255]``), with data range 1;
- PSNR is ``10 log10(data_range^2 / MSE)`` with the MSE over all channels and pixels of one
  image (``inf`` for identical images);
- SSIM uses an 11x11 Gaussian window with sigma 1.5, ``K1 = 0.01``, ``K2 = 0.03``, population
  (not sample) covariances, and only the "valid" positions where the window fits inside the
  image; the map is averaged over those positions and over the RGB channels. This equals
  ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=1, channel_axis=...)``, which filters the whole
  image and then crops ``(11 - 1) // 2 = 5`` pixels from each side of the map.

Computation is in float64; results are float64 tensors (on the CPU for MPS inputs, which lack
float64). Gradients flow through both metrics.

Example:
    >>> import torch
    >>> from ttblur.metrics import psnr
    >>> psnr(torch.full((3, 16, 16), 0.1), torch.zeros(3, 16, 16))
    tensor(20.0000, dtype=torch.float64)
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["PSNR", "SSIM", "crop_removes_all", "psnr", "rgb_to_y", "spearman", "ssim"]

Reduction = Literal["mean", "none"]


def crop_removes_all(crop_border: int, height: int, width: int) -> bool:
    """Whether removing ``crop_border`` px from each side leaves nothing of a
    ``height x width`` image (the metrics refuse it; ``ttblur eval`` checks it up front)."""
    return 2 * crop_border >= min(height, width)


_WINDOW = 11
_SIGMA = 1.5
_K1 = 0.01
_K2 = 0.03
# BT.601 studio-swing luma for RGB in [0, 1], divided by 255 (BasicSR's rgb2ycbcr, y_only).
_Y_WEIGHTS = (65.481 / 255.0, 128.553 / 255.0, 24.966 / 255.0)
_Y_OFFSET = 16.0 / 255.0


def rgb_to_y(image: Tensor) -> Tensor:
    """BT.601 studio-swing luma of RGB images.

    Args:
        image: ``(..., 3, H, W)`` RGB in ``[0, 1]``.

    Returns:
        ``(..., 1, H, W)`` luma ``Y = (65.481 R + 128.553 G + 24.966 B + 16) / 255`` in
        ``[16/255, 235/255]``, same dtype as ``image``.
    """
    if image.ndim < 3 or image.shape[-3] != 3:
        raise ValueError(
            f"rgb_to_y expects (..., 3, H, W) RGB images, got shape {tuple(image.shape)}"
        )
    r, g, b = image.unbind(dim=-3)
    y = _Y_WEIGHTS[0] * r + _Y_WEIGHTS[1] * g + _Y_WEIGHTS[2] * b + _Y_OFFSET
    return y.unsqueeze(-3)


def _check_inputs(
    pred: Tensor,
    target: Tensor,
    crop_border: int,
    data_range: float,
    reduction: str,
    name: str,
) -> None:
    for label, value in (("pred", pred), ("target", target)):
        if not isinstance(value, Tensor):
            raise ValueError(f"{name}: {label} must be a torch.Tensor, got {type(value).__name__}")
    if pred.shape != target.shape:
        raise ValueError(
            f"{name}: pred and target must have the same shape, got {tuple(pred.shape)} and "
            f"{tuple(target.shape)}"
        )
    if pred.ndim < 3 or pred.shape[-3] != 3:
        raise ValueError(
            f"{name}: expected RGB images of shape (..., 3, H, W), got {tuple(pred.shape)}"
        )
    for label, value in (("pred", pred), ("target", target)):
        if not value.is_floating_point():
            raise ValueError(
                f"{name}: {label} must be a float tensor in [0, data_range], got dtype "
                f"{value.dtype} (convert uint8 with .float() / 255)"
            )
    # NumPy integers and floats count as the numbers they hold (numbers.Integral / Real).
    if isinstance(crop_border, bool) or not isinstance(crop_border, numbers.Integral):
        raise ValueError(f"{name}: crop_border must be an int >= 0, got {crop_border!r}")
    crop_border = int(crop_border)
    if crop_border < 0:
        raise ValueError(f"{name}: crop_border must be an int >= 0, got {crop_border!r}")
    height, width = pred.shape[-2:]
    if crop_removes_all(crop_border, height, width):
        raise ValueError(
            f"{name}: crop_border={crop_border} removes the whole {height}x{width} image"
        )
    if isinstance(data_range, bool) or not isinstance(data_range, numbers.Real):
        raise ValueError(f"{name}: data_range must be a positive number, got {data_range!r}")
    data_range = float(data_range)
    if not math.isfinite(data_range) or data_range <= 0:
        raise ValueError(f"{name}: data_range must be a positive number, got {data_range!r}")
    if reduction not in ("mean", "none"):
        raise ValueError(f"{name}: reduction must be 'mean' or 'none', got {reduction!r}")
    tolerance = 1e-4 * data_range
    for label, value in (("pred", pred), ("target", target)):
        values = value.detach()
        if values.numel() == 0:
            raise ValueError(f"{name}: {label} is empty (shape {tuple(value.shape)})")
        if not bool(torch.isfinite(values).all()):
            raise ValueError(f"{name}: {label} contains NaN or inf values")
        low, high = float(values.min()), float(values.max())
        if low < -tolerance or high > data_range + tolerance:
            raise ValueError(
                f"{name}: {label} values must lie in [0, {data_range:g}] (data_range), got "
                f"[{low:.4g}, {high:.4g}]; clamp model outputs first"
            )


def _prepare(
    pred: Tensor, target: Tensor, crop_border: int, y_channel: bool, data_range: float
) -> tuple[Tensor, Tensor]:
    """float64, scaled to data range 1, cropped, optionally luma; shapes ``(B, C, h, w)``."""
    device = pred.device if pred.device.type != "mps" else torch.device("cpu")
    x = pred.to(device=device, dtype=torch.float64) / data_range
    y = target.to(device=device, dtype=torch.float64) / data_range
    if crop_border:
        x = x[..., crop_border:-crop_border, crop_border:-crop_border]
        y = y[..., crop_border:-crop_border, crop_border:-crop_border]
    if y_channel:
        x, y = rgb_to_y(x), rgb_to_y(y)
    return x.reshape(-1, *x.shape[-3:]), y.reshape(-1, *y.shape[-3:])


def _reduce(values: Tensor, lead: torch.Size, reduction: str) -> Tensor:
    values = values.reshape(lead)
    return values.mean() if reduction == "mean" else values


def psnr(
    pred: Tensor,
    target: Tensor,
    *,
    crop_border: int = 0,
    y_channel: bool = False,
    data_range: float = 1.0,
    reduction: Reduction = "mean",
) -> Tensor:
    """Peak signal-to-noise ratio in dB, ``10 log10(data_range^2 / MSE)`` per image.

    Args:
        pred: ``(..., 3, H, W)`` float RGB in ``[0, data_range]`` (e.g. the restored frames).
        target: same shape, the reference.
        crop_border: pixels removed from each side before comparing.
        y_channel: compare the BT.601 luma only (see :func:`rgb_to_y`).
        data_range: value of white (1 for ``[0, 1]`` images, 255 for 8-bit scale).
        reduction: ``"mean"`` averages the per-image values (``inf`` if any image pair is
            identical); ``"none"`` returns them with shape ``pred.shape[:-3]``.

    Returns:
        float64 tensor, 0-dim for ``"mean"`` or ``pred.shape[:-3]`` for ``"none"``; ``inf`` for
        identical images.

    Raises:
        ValueError: not tensors, shape mismatch, not 3 channels, non-float dtype, NaN/inf,
            values outside ``[0, data_range]``, bad ``crop_border`` / ``data_range`` /
            ``reduction``.
    """
    _check_inputs(pred, target, crop_border, data_range, reduction, "psnr")
    x, y = _prepare(pred, target, crop_border, y_channel, data_range)
    mse = (x - y).pow(2).mean(dim=(-3, -2, -1))
    values = 10.0 * torch.log10(1.0 / mse)
    return _reduce(values, pred.shape[:-3], reduction)


def _gaussian_weights() -> list[float]:
    coords = [k - (_WINDOW - 1) / 2 for k in range(_WINDOW)]
    weights = [math.exp(-(c * c) / (2 * _SIGMA**2)) for c in coords]
    total = sum(weights)
    return [w / total for w in weights]


def _valid_blur(image: Tensor, weights: list[float]) -> Tensor:
    """Separable Gaussian filter, 'valid' positions only: ``(..., H, W) -> (..., H-10, W-10)``.

    Written as 2 x 11 shifted in-place adds: several times faster on the CPU in float64 than a
    depthwise ``conv2d``, identical up to rounding, and differentiable.
    """
    size = len(weights)
    height = image.shape[-2] - size + 1
    rows = image[..., 0:height, :] * weights[0]
    for k in range(1, size):
        rows.add_(image[..., k : k + height, :], alpha=weights[k])
    width = image.shape[-1] - size + 1
    out = rows[..., 0:width] * weights[0]
    for k in range(1, size):
        out.add_(rows[..., k : k + width], alpha=weights[k])
    return out


def _ssim_per_image(x: Tensor, y: Tensor) -> Tensor:
    """``(B, C, H, W)`` float64 in [0, 1] -> ``(B,)`` mean SSIM over valid positions and C."""
    weights = _gaussian_weights()
    mu_x = _valid_blur(x, weights)
    mu_y = _valid_blur(y, weights)
    var_x = _valid_blur(x * x, weights) - mu_x * mu_x
    var_y = _valid_blur(y * y, weights) - mu_y * mu_y
    cov = _valid_blur(x * y, weights) - mu_x * mu_y
    c1, c2 = _K1**2, _K2**2
    numerator = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    denominator = (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    return (numerator / denominator).mean(dim=(-3, -2, -1))


def ssim(
    pred: Tensor,
    target: Tensor,
    *,
    crop_border: int = 0,
    y_channel: bool = False,
    data_range: float = 1.0,
    reduction: Reduction = "mean",
) -> Tensor:
    """Structural similarity (Gaussian 11x11, sigma 1.5, valid positions only) per image.

    Args:
        pred: ``(..., 3, H, W)`` float RGB in ``[0, data_range]``; after ``crop_border``
            both sides must be at least 11 pixels.
        target: same shape, the reference.
        crop_border: pixels removed from each side before comparing.
        y_channel: compare the BT.601 luma only (see :func:`rgb_to_y`).
        data_range: value of white (``C1 = (0.01 data_range)^2``, ``C2 = (0.03
            data_range)^2``).
        reduction: ``"mean"`` or ``"none"`` (shape ``pred.shape[:-3]``).

    Returns:
        float64 tensor in ``[-1, 1]``, 1 for identical images.

    Raises:
        ValueError: as :func:`psnr`, and images smaller than the 11x11 window.
    """
    _check_inputs(pred, target, crop_border, data_range, reduction, "ssim")
    height, width = (s - 2 * crop_border for s in pred.shape[-2:])
    if min(height, width) < _WINDOW:
        raise ValueError(
            f"ssim: images must be at least {_WINDOW}x{_WINDOW} after crop_border={crop_border}, "
            f"got {height}x{width}"
        )
    x, y = _prepare(pred, target, crop_border, y_channel, data_range)
    return _reduce(_ssim_per_image(x, y), pred.shape[:-3], reduction)


class _ImageMetric(nn.Module):
    """Shared module form of a full-reference metric with fixed options."""

    def __init__(
        self,
        *,
        crop_border: int = 0,
        y_channel: bool = False,
        data_range: float = 1.0,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__()
        self.crop_border = crop_border
        self.y_channel = y_channel
        self.data_range = data_range
        self.reduction: Reduction = reduction

    def _options(self) -> dict[str, Any]:
        return {
            "crop_border": self.crop_border,
            "y_channel": self.y_channel,
            "data_range": self.data_range,
            "reduction": self.reduction,
        }

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self._options().items())


class PSNR(_ImageMetric):
    """Module form of :func:`psnr` with fixed options; ``forward(pred, target)``."""

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        """PSNR in dB of ``(..., 3, H, W)`` images; see :func:`psnr`."""
        return psnr(pred, target, **self._options())


class SSIM(_ImageMetric):
    """Module form of :func:`ssim` with fixed options; ``forward(pred, target)``."""

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        """SSIM of ``(..., 3, H, W)`` images; see :func:`ssim`."""
        return ssim(pred, target, **self._options())


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks ``0..n-1`` of a 1-D array, ties given their average rank."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    # first index of each run of equal values, and the run each sorted position is in
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], len(values)] - 1
    run = np.cumsum(np.r_[True, sorted_values[1:] != sorted_values[:-1]]) - 1
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = 0.5 * (starts + ends)[run]
    return ranks


def spearman(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Spearman rank correlation of two equally long 1-D sequences.

    Ties get their average rank; pairs holding a NaN are left out. Vectorised (numpy), so
    it serves per-pixel comparisons as well as per-video ones.

    Returns:
        the correlation in ``[-1, 1]``; NaN for fewer than 3 pairs or a constant sequence.

    Raises:
        ValueError: the sequences are not 1-D or differ in length.

    Example:
        >>> spearman([1, 2, 3, 4], [10, 30, 20, 40])
        0.8
    """
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(
            f"spearman needs two 1-D sequences of equal length, got {a.shape}, {b.shape}"
        )
    keep = ~(np.isnan(a) | np.isnan(b))
    a, b = a[keep], b[keep]
    if len(a) < 3:
        return math.nan
    ra, rb = _average_ranks(a), _average_ranks(b)
    ra -= ra.mean()
    rb -= rb.mean()
    denominator = math.sqrt(float((ra * ra).sum() * (rb * rb).sum()))
    return float((ra * rb).sum() / denominator) if denominator > 0 else math.nan
