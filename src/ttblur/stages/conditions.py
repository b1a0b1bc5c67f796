"""Functional forms of the blur-condition computations (DBCGM's building blocks).

Pure tensor functions, kornia style: :mod:`ttblur.stages.dbcgm`'s generators (the module
forms) and the guard call them, and users can compose them directly.

- :func:`neighbour_pairs`, :func:`neighbour_frames`: which frames a patch at ``t`` uses;
- :func:`blur_direction`, :func:`flow_length`: unit direction and length of accumulated flow;
- :func:`adapt_magnitude`: the paper's magnitude adaptation ``M_t / max(M_t) * mean + offset``;
- :func:`video_blur_samples`, :func:`match_video_blur`: pair lengths that follow the video's
  own blur distribution (``dbcgm.lengths = "video"``);
- :func:`condition_map`: stack direction and length into a ``(N, 3, h, w)`` condition.

Shape conventions: flows ``(N, 2, h, w)`` px, magnitudes ``(N, 1, h, w)`` px, conditions
``(N, 3, h, w)`` (x, y unit direction, z = blur length in px).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ttblur.io.frame_store import Frames, per_frame
from ttblur.types import finite_range, warn_mag_norm_ignored

__all__ = [
    "adapt_magnitude",
    "blur_direction",
    "condition_map",
    "flow_length",
    "match_video_blur",
    "neighbour_frames",
    "neighbour_pairs",
    "video_blur_samples",
]

_MEAN_EPS = 1e-6


def neighbour_pairs(frame: int, num_frames: int, neighbours: int) -> list[int]:
    """Frame pairs ``(a, a + 1)`` whose flows are summed for a patch at ``frame``.

    Args:
        frame: the patch's frame ``t``, ``0 <= t < num_frames``.
        num_frames: number of frames ``T`` of the video.
        neighbours: ``k``, frames used on each side of ``t``.

    Returns:
        The first frames ``a`` of the pairs, ``t - k <= a`` and ``a + 1 <= t + k``, restricted
        to pairs inside the video (``0 <= a`` and ``a + 1 <= T - 1``), ascending. ``2k`` pairs
        away from the ends, fewer near them.
    """
    _check_frame(frame, num_frames, neighbours)
    return list(range(max(frame - neighbours, 0), min(frame + neighbours, num_frames - 1)))


def neighbour_frames(frame: int, num_frames: int, neighbours: int) -> list[int]:
    """Frames whose magnitude maps are averaged for a patch at ``frame``.

    Returns:
        ``t - k .. t + k`` without ``t``, restricted to ``[0, T - 1]``, ascending.
    """
    _check_frame(frame, num_frames, neighbours)
    low, high = max(frame - neighbours, 0), min(frame + neighbours, num_frames - 1)
    return [s for s in range(low, high + 1) if s != frame]


def _check_frame(frame: int, num_frames: int, neighbours: int) -> None:
    if neighbours < 1:
        raise ValueError(f"neighbours must be >= 1, got {neighbours}")
    if not 0 <= frame < num_frames:
        raise ValueError(f"frame {frame} is outside a video of {num_frames} frames")


def flow_length(vectors: Tensor) -> Tensor:
    """Per-pixel length ``(N, 1, h, w)`` of ``(N, 2, h, w)`` vectors.

    ``torch.hypot`` is used because ``torch.linalg.vector_norm(dim=1)`` is ~40x slower on CPU.
    """
    return torch.hypot(vectors[:, 0:1], vectors[:, 1:2])


def blur_direction(flow: Tensor, min_flow: float = 0.5) -> Tensor:
    """Unit blur direction of accumulated flows, with a fallback where the flow is too small.

    Args:
        flow: ``(N, 2, h, w)`` accumulated flow in pixels (channel 0 = x, 1 = y).
        min_flow: pixels where ``|F| < min_flow`` (px) take the fallback direction; ``0``
            keeps every non-zero vector (zero vectors always fall back).

    Returns:
        ``(N, 2, h, w)`` unit vectors: ``F / |F|`` where ``|F| >= min_flow`` (and ``> 0``);
        elsewhere the patch's mean flow direction ``mean(F) / |mean(F)|`` (mean over all the
        patch's pixels) or ``(1, 0)`` when ``|mean(F)| <= 1e-6`` px.

    Raises:
        ValueError: wrong rank / channels, NaN/inf or ``min_flow < 0``.
    """
    if not isinstance(flow, Tensor) or flow.ndim != 4 or flow.shape[1] != 2:
        shape = tuple(flow.shape) if isinstance(flow, Tensor) else type(flow).__name__
        raise ValueError(f"flow must be (N, 2, h, w), got {shape}")
    if not (math.isfinite(min_flow) and min_flow >= 0):
        raise ValueError(f"min_flow must be a finite number >= 0, got {min_flow}")
    if flow.numel():
        finite_range(flow, "flow")
    flow = flow.float()
    norm = flow_length(flow)
    reliable = (norm >= min_flow) & (norm > 0)
    unit = flow / norm.clamp_min(1e-12)

    mean = flow.mean(dim=(2, 3), keepdim=True)  # (N, 2, 1, 1)
    mean_norm = flow_length(mean)
    default = torch.zeros_like(mean)
    default[:, 0] = 1.0
    fallback = torch.where(mean_norm > _MEAN_EPS, mean / mean_norm.clamp_min(1e-12), default)
    return torch.where(reliable, unit, fallback.expand_as(flow))


def adapt_magnitude(
    current: Tensor,
    neighbour_mean: Tensor,
    *,
    current_max: Tensor | None = None,
    offset: float = 10.0,
) -> Tensor:
    """The paper's magnitude adaptation ``M' = M_t / max(M_t) * mean(M_neighbours) + offset``.

    Args:
        current: ``(N, 1, h, w)`` magnitude map ``M_t`` of the patch's own frame, px, ``>= 0``.
        neighbour_mean: ``(N, 1, h, w)`` per-pixel mean of the neighbour frames' maps, px.
        current_max: ``(N,)`` the maximum used to normalise ``M_t`` (the official code uses the
            whole frame's maximum); ``None`` uses the maximum of ``current`` itself. Where it
            is 0 the normalised map is taken as 1 (the limit for a constant map).
        offset: pixels added to the result (official: 10).

    Returns:
        ``(N, 1, h, w)`` adapted magnitude ``M'`` in pixels.

    Raises:
        ValueError: mismatched shapes, negative or non-finite values.
    """
    if current.ndim != 4 or current.shape[1] != 1:
        raise ValueError(f"current must be (N, 1, h, w), got {tuple(current.shape)}")
    if neighbour_mean.shape != current.shape:
        raise ValueError(
            f"neighbour_mean {tuple(neighbour_mean.shape)} must match current "
            f"{tuple(current.shape)}"
        )
    if not (math.isfinite(offset) and offset >= 0):
        raise ValueError(f"offset must be a finite number >= 0, got {offset}")
    for name, x in (("current", current), ("neighbour_mean", neighbour_mean)):
        low = finite_range(x, name)[0] if x.numel() else 0.0
        if low < 0:
            raise ValueError(f"{name} must be >= 0 px, got minimum {low:.4g}")
    current = current.float()
    if current_max is None:
        peak = current.amax(dim=(1, 2, 3)) if current.numel() else current.new_zeros(0)
    else:
        peak = current_max.to(device=current.device, dtype=torch.float32).reshape(-1)
        if peak.shape[0] != current.shape[0]:
            raise ValueError(f"current_max must be (N,) = ({current.shape[0]},)")
        if peak.numel() and not bool((peak >= 0).all() & torch.isfinite(peak).all()):
            raise ValueError("current_max must be finite and >= 0")
    peak = peak.view(-1, 1, 1, 1)
    ratio = torch.where(peak > 0, current / peak.clamp_min(1e-12), torch.ones_like(current))
    return ratio * neighbour_mean.float() + offset


def video_blur_samples(magnitude: Frames, cell: int) -> Tensor:
    """The video's own distribution of blur: mean BME blur of every ``cell`` x ``cell`` block
    of every frame.

    Args:
        magnitude: ``(T, 1, H, W)`` per-pixel blur maps in px (``Selection.magnitude``).
        cell: block side, px (clamped to the frame); a partial last block is dropped.

    Returns:
        ``(K,)`` float32 block means, px, on the maps' device.

    Shape:
        - magnitude: ``(T, 1, H, W)``
        - output: ``(T * floor(H / c) * floor(W / c),)`` with ``c = min(cell, H, W)``.
    """
    if magnitude.ndim != 4 or magnitude.shape[1] != 1:
        raise ValueError(f"magnitude must be (T, 1, H, W), got {tuple(magnitude.shape)}")
    if cell < 1:
        raise ValueError(f"cell must be >= 1 px, got {cell}")
    side = min(int(cell), int(magnitude.shape[2]), int(magnitude.shape[3]))

    def pooled(maps: Tensor) -> Tensor:
        return torch.nn.functional.avg_pool2d(maps.float(), side, stride=side).reshape(-1)

    return per_frame(magnitude, pooled)


def match_video_blur(
    magnitude: Tensor,
    own_blur: Tensor,
    video_blur: Tensor,
    *,
    identity_px: float = 0.5,
) -> Tensor:
    """Give the pseudo pairs the video's own distribution of blur lengths.

    The patches are ranked by the mean of their estimated condition length ``M'``; the patch
    of rank ``i`` (of ``N``) gets the ``(i + 0.5) / N`` quantile ``B_i`` of ``video_blur``,
    the blur the video shows. A patch already carries its own blur ``r_i`` (what the BME reads
    on it), and blurs compose roughly in quadrature, so the length to add is
    ``L_i = sqrt(max(B_i^2 - r_i^2, 0))``; below ``identity_px`` it is 0, an identity pair
    that teaches the model to leave a frame as sharp as the patch alone. Each patch's map
    keeps its spatial shape, scaled to mean ``L_i`` (a constant map where ``M'`` is all 0).

    Args:
        magnitude: ``(N, 1, p, p)`` estimated condition length ``M'`` per patch, px, ``>= 0``.
        own_blur: ``(N,)`` blur the BME reads on each patch in its own frame, px, ``>= 0``.
        video_blur: ``(K,)`` samples of the video's blur, px (:func:`video_blur_samples`).
        identity_px: lengths below this become 0 (px, ``>= 0``).

    Returns:
        ``(N, 1, p, p)`` float32 lengths in px.

    Example:
        >>> m = torch.tensor([4.0, 8.0]).view(2, 1, 1, 1).expand(2, 1, 2, 2)
        >>> video = torch.tensor([0.2] * 5 + [10.0] * 5)  # half nearly still, half 10 px
        >>> out = match_video_blur(m, torch.tensor([1.0, 1.0]), video)
        >>> [round(float(v), 3) for v in out.mean(dim=(1, 2, 3))]
        [0.0, 9.95]
    """
    if magnitude.ndim != 4 or magnitude.shape[1] != 1:
        raise ValueError(f"magnitude must be (N, 1, p, p), got {tuple(magnitude.shape)}")
    num = magnitude.shape[0]
    if own_blur.shape != (num,):
        raise ValueError(f"own_blur must be ({num},), got {tuple(own_blur.shape)}")
    if video_blur.ndim != 1 or video_blur.numel() == 0:
        raise ValueError(
            f"video_blur must be a non-empty (K,) tensor, got {tuple(video_blur.shape)}"
        )
    if not (math.isfinite(identity_px) and identity_px >= 0):
        raise ValueError(f"identity_px must be a finite number >= 0, got {identity_px}")
    for name, x in (("magnitude", magnitude), ("own_blur", own_blur), ("video_blur", video_blur)):
        low = finite_range(x, name)[0] if x.numel() else 0.0
        if low < 0:
            raise ValueError(f"{name} must be >= 0 px, got minimum {low:.4g}")
    if num == 0:
        return magnitude.float()
    device = magnitude.device
    estimate = magnitude.float().mean(dim=(1, 2, 3))
    rank = torch.empty(num, device=device)
    rank[torch.argsort(estimate, stable=True)] = torch.arange(
        num, device=device, dtype=torch.float32
    )
    levels = torch.quantile(video_blur.float().to(device), (rank + 0.5) / num)
    own = own_blur.float().to(device)
    length = torch.sqrt((levels * levels - own * own).clamp_min(0.0))
    length = torch.where(length < identity_px, torch.zeros_like(length), length)
    scale = length / estimate.clamp_min(1e-12)
    shaped = magnitude.float() * scale.view(-1, 1, 1, 1)
    flat = length.view(-1, 1, 1, 1).expand_as(shaped)
    return torch.where((estimate > 0).view(-1, 1, 1, 1), shaped, flat)


def condition_map(direction: Tensor, magnitude: Tensor, mag_norm: float | None = None) -> Tensor:
    """Stack a direction and a magnitude into a blur condition map.

    Args:
        direction: ``(N, 2, h, w)`` unit blur direction.
        magnitude: ``(N, 1, h, w)`` blur magnitude in pixels, ``>= 0``.
        mag_norm: deprecated and ignored (DeprecationWarning); z is in pixels.

    Returns:
        ``(N, 3, h, w)`` float32: ``x, y = direction``, ``z = magnitude`` in pixels (negative
        values clipped to 0).
    """
    warn_mag_norm_ignored("condition_map", mag_norm)
    if direction.ndim != 4 or direction.shape[1] != 2:
        raise ValueError(f"direction must be (N, 2, h, w), got {tuple(direction.shape)}")
    if magnitude.ndim != 4 or magnitude.shape[1] != 1:
        raise ValueError(f"magnitude must be (N, 1, h, w), got {tuple(magnitude.shape)}")
    if direction.shape[0] != magnitude.shape[0] or direction.shape[2:] != magnitude.shape[2:]:
        raise ValueError(
            f"direction {tuple(direction.shape)} and magnitude {tuple(magnitude.shape)} must "
            "match in N, h, w"
        )
    z = magnitude.float().clamp_min(0.0)
    return torch.cat([direction.float(), z], dim=1)
