"""How far the image moves per frame and how much of the frame interval the exposure fills.

A blurry frame integrates the scene over its exposure; consecutive frames are one frame
interval apart. If the image moves ``m`` px per frame interval (optical flow between
frames), a frame is blurred over ``rho * m`` px, where ``rho = exposure / frame interval``
(``0 < rho <= 1``). Both are properties of the camera and the shot, not of one patch, so they
are estimated once per video, without ground truth:

* **motion per frame** ``m`` (:func:`video_motion`): the mean optical-flow length between
  consecutive frames, averaged over the higher-motion half of the frames (still moments,
  where pseudo-sharp patches come from, would understate the shot's motion);
* **exposure ratio** ``rho`` (:func:`fit_exposure_ratio`), by analysis by synthesis: for a
  pseudo-sharp patch of frame ``t`` and a neighbour frame ``s`` (``t +- 1``, ``t +- 2``) whose
  content moves ``m_s`` px per frame along ``u_s`` (``u_s``: the mean flow of the frame pairs
  around ``s`` over the patch box), frame ``s`` warped back onto ``t`` by the flow ``t -> s``
  should look like the patch blurred ``rho * m_s`` px along ``u_s``, with the video's noise.
  Each frame's motion is taken to span its own frame interval, centred on the frame, so the
  pair ``a -> a + 1`` moves half of frame ``a``'s motion plus half of frame ``a + 1``'s (exact
  for a constant or linearly changing velocity, and for a velocity that changes from frame to
  frame, as a hand-held shake does). For ``s = t +- 1``, the patches' frame being a still
  moment (that is why its patches read sharp), ``m_s`` is twice the length of the mean flow of
  the pair joining ``t`` and ``s``; for ``s = t +- 2`` it is the mean flow length of the two
  pairs around ``s``. (The mean of the two pairs around a neighbour beside a still frame halves
  part of its motion: on hand-held development videos the fit read up to twice the true ratio,
  docs/results.md.) ``rho`` is the candidate of :data:`RATIOS` (0.1 to 1.0: an exposure
  cannot outlast the frame interval) with the least squared error summed over patches and
  neighbours. A neighbour is compared only if it moves at least ``min_motion`` px per frame
  *and*, warped back, holds clearly less fine detail than the patch (otherwise the "sharp"
  patch carries as much blur as the neighbour, as on a steady pan, and ``rho`` cannot be told
  from 0). A compared patch whose error stays far above the noise's at every ratio was not
  registered by the flow and is left out (:data:`MAX_RESIDUAL_NOISE`). Given the detector's
  blur maps, a neighbour that reads still in the patch's box (under
  :data:`STILL_NEIGHBOUR_PX`) is not compared either: a hand-held camera can pause for two
  frames a little apart, and the flow around the second pause measures how far the image moved
  between frames, not during that frame's exposure. The uncertainty is the
  standard deviation of the fitted ratio over bootstrap resamplings, of the compared patches
  and of their frames (the larger):
  a fit whose spread exceeds :data:`MAX_RATIO_STD` is refused (``ratio`` None, ``note`` says
  why), and so is a fit at the smallest ratio tried (the neighbours are no blurrier than the
  patches: no sharp reference, or an exposure too short to tell).
  Given the detector's blur maps, the fit is also refused when the pseudo-sharp patches are
  about as blurred as the video's median frame (:data:`MAX_SHARP_SHARE`): then there is no
  sharp reference at all. And it is refused when the image moves steadily (the frame pairs'
  flow lengths vary by less than :data:`STEADY_MOTION_SPREAD` of their mean): with one
  exposure, the same motion blurs every frame alike, so a frame that reads sharper is not a
  sharp reference (on steady development pans the fit read 0.2-0.3 for a true 1.0 from
  such frames).

  Not solved: two frames away from the still moment, a hand-held shake that reverses from
  frame to frame still hides part of a neighbour's motion from the flow between frames.

See ``docs/results.md`` for how close the fit comes on each scenario family.

Example:
    >>> import torch
    >>> from ttblur.stages.exposure import ExposureEstimate
    >>> ExposureEstimate(ratio=0.5, motion_px=12.0).blur_px
    6.0
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor

from ttblur.io.frame_store import Frames, FrameStore, per_frame
from ttblur.stages.flow import warp_back
from ttblur.stages.reblur import match_noise, motion_blur, video_noise_std
from ttblur.types import (
    ExposureEstimate,
    FlowEstimator,
    PatchLocation,
    check_map_shape,
    warn_mag_norm_ignored,
)

__all__ = [
    "MAX_RATIO_STD",
    "MAX_SHARP_SHARE",
    "RATIOS",
    "STEADY_MOTION_SPREAD",
    "STILL_NEIGHBOUR_PX",
    "ExposureEstimate",
    "estimate_exposure",
    "fit_exposure_ratio",
    "frame_motion",
    "sharp_share",
    "video_motion",
    "warp_back",
]

#: Candidate exposure ratios of the fit: 0.1, 0.2, ..., 1.0 (bounded to (0, 1]: an exposure
#: cannot outlast the frame interval).
RATIOS: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(1, 11))
#: A fit whose bootstrap standard deviation exceeds this is refused (``ratio`` None). 0.075:
#: between the spreads of the two fitted hand-held development videos (0.05, right; 0.09,
#: 0.21 off) of the scenario suite (benchmarks/exposure_fit.py, docs/results.md).
MAX_RATIO_STD = 0.075
#: A neighbour is compared only if its detail along the motion is below this share of the
#: patch's (2 px of blur on a smooth texture with noise: ~0.91; two equally blurred frames:
#: 1 +- the noise).
_SHARPER = 0.95
#: With the detector's blur maps given, the fit is refused when the pseudo-sharp patches read
#: at least this share of the median frame's blur: no frame is sharper than the others (a
#: steady pan), so nothing tells the exposure from 0. Chosen on development videos (pans read
#: 0.95-0.98, every other family 0.002-0.92; docs/results.md).
MAX_SHARP_SHARE = 0.9
#: The fit is refused when the consecutive frame pairs' mean flow lengths vary by less than
#: this share of their mean (standard deviation / mean): the image moves steadily, so with one
#: exposure every frame is blurred alike and no frame is sharper than another. Chosen on the
#: 72 development videos of the scenario suite at 192 x 256 and at 288 x 384 (steady pans
#: 0.022 at most, every other family 0.18 or more; docs/results.md).
STEADY_MOTION_SPREAD = 0.05
#: A compared patch whose squared error, at its best ratio, exceeds this many times the
#: noise's (``2 * noise_std**2``) plus :data:`MIN_RESIDUAL_LIMIT` was not registered onto the
#: pseudo-sharp patch by the optical flow and is left out of the fit.
MAX_RESIDUAL_NOISE = 20.0
MIN_RESIDUAL_LIMIT = 1e-3
#: Given the detector's blur maps, a neighbour that reads under this blur (px, mean over the
#: patch's box) is not compared: it is a still moment too, so the flow around it (the image's
#: motion between frames) says nothing of its blur. On hand-held development videos such
#: neighbours two frames away read 0.0-0.1 px (blurred ones 2.9 px or more) and pulled the
#: fit to 0.1-0.2 for true ratios of 0.56-0.63 (docs/results.md).
STILL_NEIGHBOUR_PX = 1.0
#: Bootstrap resamplings of the compared patches.
_RESAMPLES = 200
#: Pixels left out on each side of a patch (the blur pads beyond it) and of the frame
#: (the flow is least reliable there) when comparing.
_BORDER = 8
#: Defaults of the fit: neighbours compared, px per frame below which a neighbour is skipped,
#: patch frames used and patches used per frame (the last two bound the cost).
_OFFSETS = (-2, -1, 1, 2)
_MIN_MOTION = 1.5
_MAX_FRAMES = 8
_PER_FRAME = 2
#: Patches larger than this are compared at a reduced scale (:func:`estimate_exposure`).
_WORKING_PATCH = 128


def _pair_flows(
    video: Frames, flow: FlowEstimator, pairs: Sequence[int], keep: set[int], batch: int = 4
) -> tuple[Tensor, dict[int, Tensor]]:
    """Mean flow length ``(len(pairs),)`` px of the consecutive frame pairs ``pairs`` (pair
    ``a``: frame ``a`` -> ``a + 1``), and the flows ``(2, H, W)`` of those in ``keep``."""
    lengths = torch.zeros(len(pairs))
    kept: dict[int, Tensor] = {}
    for start in range(0, len(pairs), batch):
        chunk = list(pairs[start : start + batch])
        index = torch.tensor(chunk)
        out = flow(video[index], video[index + 1]).float().cpu()
        lengths[start : start + len(chunk)] = torch.hypot(out[:, 0], out[:, 1]).mean(dim=(1, 2))
        kept.update({a: out[i] for i, a in enumerate(chunk) if a in keep})
    return lengths, kept


def frame_motion(lengths: Tensor) -> Tensor:
    """Per-frame motion ``(T,)`` px from the mean flow lengths of the ``T - 1`` consecutive
    pairs: the mean of the pairs on either side of a frame (one pair at the ends)."""
    return torch.cat([lengths[:1], (lengths[:-1] + lengths[1:]) / 2, lengths[-1:]])


def _motion_from_lengths(lengths: Tensor) -> float:
    """Motion per frame over the higher-motion half of the frames, from the mean flow lengths
    of all consecutive pairs ``(T - 1,)``."""
    if lengths.numel() == 0:
        return 0.0
    per_frame = frame_motion(lengths)
    top = per_frame >= per_frame.median()
    return float(per_frame[top].mean())


def video_motion(video: Frames, flow: FlowEstimator) -> float:
    """The video's motion per frame interval in px.

    Args:
        video: ``(T, 3, H, W)`` float RGB in ``[0, 1]``, ``T >= 2``.
        flow: the optical-flow estimator.

    Returns:
        the mean optical-flow length between consecutive frames (a frame's motion is the mean
        of the pairs on either side), averaged over the frames at or above the median motion.
    """
    _check_video(video)
    lengths, _ = _pair_flows(video, flow, range(video.shape[0] - 1), set())
    return _motion_from_lengths(lengths)


def _check_video(video: Frames) -> None:
    if not isinstance(video, Frames) or video.ndim != 4 or video.shape[1] != 3:
        got = tuple(video.shape) if isinstance(video, Frames) else type(video).__name__
        raise ValueError(f"video must be a (T, 3, H, W) tensor, got {got}")
    if video.shape[0] < 2:
        raise ValueError(f"need at least 2 frames to measure motion, got {video.shape[0]}")


def _fit_frames(patches: Sequence[PatchLocation], max_frames: int) -> list[int]:
    """The frames holding the most patches (at most ``max_frames``), in frame order."""
    counts: dict[int, int] = {}
    for p in patches:
        counts[p.frame] = counts.get(p.frame, 0) + 1
    ranked = sorted(counts, key=lambda f: (-counts[f], f))[:max_frames]
    return sorted(ranked)


def _neighbours(frame: int, offsets: Sequence[int], num_frames: int) -> list[int]:
    return [frame + k for k in offsets if 0 <= frame + k < num_frames]


def _needed_pairs(frames: list[int], offsets: Sequence[int], num_frames: int) -> set[int]:
    """Pairs around every compared neighbour (``s - 1 -> s`` and ``s -> s + 1``)."""
    return {
        a for t in frames for s in _neighbours(t, offsets, num_frames) for a in (s - 1, s)
    } & set(range(num_frames - 1))


def fit_exposure_ratio(
    video: Frames,
    patches: Sequence[PatchLocation],
    flow: FlowEstimator,
    *,
    noise_std: float,
    mag_norm: float | None = None,
    offsets: Sequence[int] = _OFFSETS,
    min_motion: float = _MIN_MOTION,
    max_frames: int = _MAX_FRAMES,
    max_patches_per_frame: int = _PER_FRAME,
    seed: int = 0,
) -> float | None:
    """Exposure / frame interval, fitted at the pseudo-sharp patches (see the module doc).

    Args:
        video: ``(T, 3, H, W)`` float RGB in ``[0, 1]``, ``T >= 2``.
        patches: pseudo-sharp patch locations (all of one size ``p > 16``).
        flow: the optical-flow estimator.
        noise_std: the video's sensor noise (the synthetic neighbours get it topped up).
        mag_norm: deprecated and ignored (DeprecationWarning); blur lengths are in pixels.
        offsets: neighbours of a patch's frame that are compared.
        min_motion: px per frame below which a neighbour is skipped.
        max_frames: patch frames used (those holding the most patches), bounding the cost.
        max_patches_per_frame: patches used per frame (the first ones).
        seed: seed of the noise top-up.

    Returns:
        the ratio of :data:`RATIOS` with the least error, or ``None`` when no neighbour moves
        fast enough to compare, or the fit is too uncertain (:data:`MAX_RATIO_STD`).
    """
    warn_mag_norm_ignored("fit_exposure_ratio", mag_norm)
    _check_video(video)
    return _fit(
        video,
        patches,
        flow,
        noise_std,
        seed,
        offsets=offsets,
        min_motion=min_motion,
        max_frames=max_frames,
        per_frame=max_patches_per_frame,
        all_pairs=False,
    ).ratio


@dataclass
class _Comparison:
    """Pseudo-sharp patches of one frame against one neighbour warped back onto them."""

    sharp: Tensor  # (n, 3, p, p)
    target: Tensor  # (n, 3, p, p)
    weight: Tensor  # (n, 1, p, p): 1 where the target was sampled inside its frame
    unit: Tensor  # (n, 2) the neighbour's direction of motion
    speed: Tensor  # (n,) the neighbour's motion, px per frame
    frame: int  # the patches' frame


def _detail(images: Tensor, weight: Tensor, unit: Tensor) -> Tensor:
    """Mean absolute derivative ``(n,)`` of ``images`` ``(n, 3, p, p)`` along the directions
    ``unit`` ``(n, 2)``, where ``weight`` ``(n, 1, p, p)`` is 1: the fine detail that a blur
    along ``unit`` removes."""
    dx = (images[..., 1:-1, 2:] - images[..., 1:-1, :-2]) / 2
    dy = (images[..., 2:, 1:-1] - images[..., :-2, 1:-1]) / 2
    along = (unit[:, 0].view(-1, 1, 1, 1) * dx + unit[:, 1].view(-1, 1, 1, 1) * dy).abs()
    inner = weight[..., 1:-1, 1:-1]
    return (along * inner).sum(dim=(1, 2, 3)) / (3 * inner.sum(dim=(1, 2, 3))).clamp_min(1)


def _comparisons(
    video: Frames,
    patches: Sequence[PatchLocation],
    frames: list[int],
    pair_flow: dict[int, Tensor],
    flow: FlowEstimator,
    *,
    offsets: Sequence[int],
    min_motion: float,
    per_frame: int,
    blur: Frames | None = None,
) -> list[_Comparison]:
    out = []
    for t in frames:
        chosen = [p for p in patches if p.frame == t][:per_frame]
        source = video[t].float().cpu()
        for s in _neighbours(t, offsets, video.shape[0]):
            sides = [a for a in (s - 1, s) if a in pair_flow]
            # The neighbour's own motion per frame at each patch: speed and mean direction.
            crops = torch.stack(
                [torch.stack([p.crop(pair_flow[a]) for a in sides]) for p in chosen]
            )
            if abs(s - t) == 1:
                # Beside the patches' frame, a still moment: the pair joining the two moved
                # half of the neighbour's own motion (see the module doc).
                joining = crops[:, sides.index(min(s, t))]
                speed = 2 * torch.linalg.vector_norm(joining.mean(dim=(2, 3)), dim=1)
            else:
                speed = torch.hypot(crops[:, :, 0], crops[:, :, 1]).mean(dim=(1, 2, 3))
            # A neighbour that reads still is a pause too: its flow is not its blur.
            reads = None if blur is None else blur[s].float()
            moving = [
                i
                for i in range(len(chosen))
                if float(speed[i]) >= min_motion
                and (reads is None or float(chosen[i].crop(reads).mean()) >= STILL_NEIGHBOUR_PX)
            ]
            if not moving:
                continue
            # The flow t -> t + 1 is a consecutive pair, already computed.
            to_s = pair_flow[t] if s == t + 1 else flow(video[t : t + 1], video[s : s + 1])[0]
            to_s = to_s.float().cpu()
            warped, inside = warp_back(video[s].float().cpu(), to_s)
            weight = torch.zeros_like(inside)
            weight[:, _BORDER:-_BORDER, _BORDER:-_BORDER] = 1.0
            weight = weight * inside
            sharp = torch.stack([chosen[i].crop(source) for i in moving])
            target = torch.stack([chosen[i].crop(warped) for i in moving])
            mask = torch.stack([chosen[i].crop(weight) for i in moving])
            # The blurred patch is padded beyond its own box: its border is left out too (a
            # quarter of a small patch at most).
            edge = min(_BORDER, mask.shape[-1] // 4, mask.shape[-2] // 4)
            if edge:
                mask = F.pad(mask[..., edge:-edge, edge:-edge], (edge,) * 4)
            # Only a patch clearly sharper than its warped neighbour tells rho: where the
            # neighbour holds as much detail (a steady pan blurs every frame alike, a very
            # short exposure blurs none), any rho explains the pair as well as rho -> 0.
            mean = crops[moving].mean(dim=(1, 3, 4))  # (n, 2)
            unit = mean / torch.linalg.vector_norm(mean, dim=1, keepdim=True).clamp_min(1e-6)
            keep = _detail(target, mask, unit) < _SHARPER * _detail(sharp, mask, unit)
            if not bool(keep.any()):
                continue
            out.append(
                _Comparison(
                    sharp=sharp[keep],
                    target=target[keep],
                    weight=mask[keep],
                    unit=unit[keep],
                    speed=speed[moving][keep],
                    frame=t,
                )
            )
    return out


def _errors(
    comparisons: list[_Comparison],
    ratio: float,
    noise_std: float,
    generator: torch.Generator,
) -> Tensor:
    """Per compared patch, the mean squared error ``(n_total,)`` of the patch blurred
    ``ratio * speed`` px (noise topped up) against the warped neighbour (8 px at the patch's
    and at the frame's edges and the pixels warped from outside the neighbour frame left
    out)."""
    out = []
    for c in comparisons:
        condition = torch.empty_like(c.sharp)
        condition[:, :2] = c.unit.view(-1, 2, 1, 1)
        condition[:, 2] = (ratio * c.speed).view(-1, 1, 1)
        pred = match_noise(motion_blur(c.sharp, condition), noise_std, generator=generator)
        squared = ((pred - c.target).square() * c.weight).sum(dim=(1, 2, 3))
        counted = 3 * c.weight.sum(dim=(1, 2, 3)).clamp_min(1.0)
        out.append((squared / counted).double())
    return torch.cat(out)


def _fit(
    video: Frames,
    patches: Sequence[PatchLocation],
    flow: FlowEstimator,
    noise_std: float,
    seed: int,
    *,
    offsets: Sequence[int],
    min_motion: float,
    max_frames: int,
    per_frame: int,
    all_pairs: bool,
    blur: Frames | None = None,
) -> ExposureEstimate:
    """The fitted ratio with its bootstrap spread (or why it was refused) and the motion per
    frame of the consecutive pairs computed: every pair when ``all_pairs`` (for
    :func:`video_motion`), else only those the fit needs, in px of ``video``. ``blur``: the
    detector's maps at ``video``'s scale (px), to leave still neighbours out."""
    frames = _fit_frames(patches, max_frames)
    needed = _needed_pairs(frames, offsets, video.shape[0])
    pairs = range(video.shape[0] - 1) if all_pairs else sorted(needed)
    lengths, pair_flow = _pair_flows(video, flow, pairs, needed)
    spread_of_motion = _motion_spread(lengths, min_motion)
    if spread_of_motion is not None and spread_of_motion < STEADY_MOTION_SPREAD:
        note = (
            f"the image moves steadily ({float(lengths.mean()):.1f} px per frame, varying by "
            f"{spread_of_motion:.1%} between frame pairs; refused under "
            f"{STEADY_MOTION_SPREAD:.0%}): every frame is blurred alike, so no frame is sharper "
            "than the others and the exposure ratio cannot be fitted (for example a steady pan)"
        )
        return ExposureEstimate(None, _motion_from_lengths(lengths), note=note)
    comparisons = _comparisons(
        video,
        patches,
        frames,
        pair_flow,
        flow,
        offsets=offsets,
        min_motion=min_motion,
        per_frame=per_frame,
        blur=blur,
    )
    if not comparisons:
        note = (
            "no moving neighbour of a pseudo-sharp patch was clearly blurrier than the patch: "
            "the exposure ratio cannot be told from the video (for example a steady pan, "
            "where every frame is blurred alike)"
        )
        return ExposureEstimate(None, _motion_from_lengths(lengths), note=note)
    generator = torch.Generator().manual_seed(seed)
    table = torch.stack([_errors(comparisons, r, noise_std, generator) for r in RATIOS], dim=1)
    row_frames = torch.cat([torch.full((c.sharp.shape[0],), c.frame) for c in comparisons])
    # A neighbour the flow did not register onto the patch leaves a residual of the order of
    # the texture's contrast at every ratio (blurring more always "helps" it): left out.
    limit = MAX_RESIDUAL_NOISE * 2 * noise_std**2 + MIN_RESIDUAL_LIMIT
    registered = table.min(dim=1).values <= limit
    if not bool(registered.any()):
        note = (
            "no neighbour registered onto the pseudo-sharp patches (the residual after the "
            f"best blur stayed above {limit:.2g}: the optical flow failed), so the exposure "
            "ratio cannot be told"
        )
        return ExposureEstimate(None, _motion_from_lengths(lengths), note=note)
    table, row_frames = table[registered], row_frames[registered]
    ratios = torch.tensor(RATIOS, dtype=torch.float64)
    best = float(ratios[int(table.sum(dim=0).argmin())])
    spread = _bootstrap_spread(table, row_frames, ratios, generator)
    if best == RATIOS[0]:
        note = (
            f"the exposure ratio fit reached the smallest ratio tried ({RATIOS[0]}): the "
            "neighbours are no blurrier than the pseudo-sharp patches blurred by a tenth of "
            "the motion, so the ratio cannot be told (for example a steady pan, where no "
            "frame is sharper than the others, or an exposure of about a tenth of the frame "
            "interval or less)"
        )
        return ExposureEstimate(None, _motion_from_lengths(lengths), ratio_std=spread, note=note)
    if spread > MAX_RATIO_STD:
        note = (
            f"the exposure ratio fit is too uncertain ({best:.1f} +- {spread:.2f} over "
            f"{table.shape[0]} compared patches; refused above +- {MAX_RATIO_STD})"
        )
        return ExposureEstimate(None, _motion_from_lengths(lengths), ratio_std=spread, note=note)
    return ExposureEstimate(best, _motion_from_lengths(lengths), ratio_std=spread)


def _motion_spread(lengths: Tensor, min_motion: float) -> float | None:
    """Standard deviation over mean of the frame pairs' mean flow lengths ``(P,)``, or ``None``
    when there are fewer than two pairs or the image barely moves (mean under ``min_motion``
    px per frame: nothing to fit either way, the other rules say why)."""
    if lengths.numel() < 2 or float(lengths.mean()) < min_motion:
        return None
    return float(lengths.std(correction=0) / lengths.mean())


def _bootstrap_spread(
    table: Tensor, frames: Tensor, ratios: Tensor, generator: torch.Generator
) -> float:
    """Standard deviation of the fitted ratio over bootstrap resamplings, the larger of two:
    resampling the compared patches, and resampling the patches' frames (a hand-held camera
    moves differently within each frame's exposure, so patches of one frame err together)."""
    rows = torch.randint(0, table.shape[0], (_RESAMPLES, table.shape[0]), generator=generator)
    by_patch = float(ratios[table[rows].sum(dim=1).argmin(dim=1)].std(correction=0))
    distinct = frames.unique()
    per_frame = torch.stack([table[frames == f].sum(dim=0) for f in distinct])  # (F, R)
    draws = torch.randint(0, len(distinct), (_RESAMPLES, len(distinct)), generator=generator)
    by_frame = float(ratios[per_frame[draws].sum(dim=1).argmin(dim=1)].std(correction=0))
    return max(by_patch, by_frame)


def estimate_exposure(
    video: Frames,
    patches: Sequence[PatchLocation],
    flow: FlowEstimator,
    *,
    magnitude: Frames | None = None,
    mag_norm: float | None = None,
    seed: int = 0,
) -> ExposureEstimate:
    """The video's exposure ratio (:func:`fit_exposure_ratio`, default settings) and motion
    per frame (:func:`video_motion`), from one pass of pair flows.

    Patches larger than 128 px are compared at a reduced scale (the video average-pooled by
    ``patch size // 128``; the ratio does not depend on scale, motion is reported in full-
    resolution px), which bounds the cost at 720p. The noise level is estimated on the video
    at that scale (:func:`~ttblur.stages.reblur.video_noise_std`).

    Args:
        video: ``(T, 3, H, W)`` float RGB in ``[0, 1]``, ``T >= 2``.
        patches: pseudo-sharp patch locations, all of one size.
        flow: the optical-flow estimator.
        magnitude: the detector's per-pixel blur maps ``(T, 1, H, W)`` px
            (``Selection.magnitude``); given, the fit is refused when the patches read at
            least :data:`MAX_SHARP_SHARE` of the median frame's blur, and neighbours that read
            under :data:`STILL_NEIGHBOUR_PX` in a patch's box are not compared to it.
        mag_norm: deprecated and ignored (DeprecationWarning); blur lengths are in pixels.
        seed: seed of the fit's noise top-up.

    Returns:
        :class:`ExposureEstimate`.

    Raises:
        ValueError: ``magnitude`` is not ``(T, 1, H, W)`` of the video.
    """
    warn_mag_norm_ignored("estimate_exposure", mag_norm)
    _check_video(video)
    if magnitude is not None:
        check_map_shape(magnitude, tuple(video.shape))
    share = None if magnitude is None or not patches else sharp_share(magnitude, patches)
    refused = share is not None and share >= MAX_SHARP_SHARE
    factor = max(1, patches[0].size // _WORKING_PATCH) if patches else 1
    if factor > 1:
        video = _pooled(video, factor)
        magnitude = None if magnitude is None else _pooled(magnitude, factor)
        patches = [
            PatchLocation(p.frame, p.top // factor, p.left // factor, p.size // factor)
            for p in patches
        ]
    if refused:
        # No sharp reference: only the motion is measured, nothing is compared.
        note = (
            f"the pseudo-sharp patches are as blurred as the video's median frame (they read "
            f"{share:.2f} of its blur): no frame is sharper than the others, so the exposure "
            "ratio cannot be fitted (for example a steady pan)"
        )
        return ExposureEstimate(None, video_motion(video, flow) * factor, note=note)
    fitted = _fit(
        video,
        patches,
        flow,
        video_noise_std(video),
        seed,
        offsets=_OFFSETS,
        min_motion=_MIN_MOTION / factor,
        max_frames=_MAX_FRAMES,
        per_frame=_PER_FRAME,
        all_pairs=True,
        blur=magnitude,
    )
    return replace(fitted, motion_px=fitted.motion_px * factor)


def _pooled(frames: Frames, factor: int) -> Frames:
    """``frames`` average-pooled by ``factor`` (a view for a :class:`FrameStore`)."""
    if isinstance(frames, FrameStore):
        return frames.pooled(factor)
    return F.avg_pool2d(frames.float(), factor)


def sharp_share(magnitude: Frames, patches: Sequence[PatchLocation]) -> float:
    """Mean blur the maps read on the patches over the median of the frames' mean blur.

    Args:
        magnitude: ``(T, 1, H, W)`` per-pixel blur maps, px.
        patches: the pseudo-sharp patches (non-empty).

    Returns:
        the share (``inf`` when the median frame reads no blur at all but the patches do,
        0 when neither does).
    """
    if magnitude.ndim != 4 or magnitude.shape[1] != 1:
        raise ValueError(f"magnitude must be (T, 1, H, W), got {tuple(magnitude.shape)}")
    maps = magnitude.detach().float()
    own = float(torch.stack([p.crop(maps[p.frame]).mean() for p in patches]).mean())
    typical = float(per_frame(maps, lambda m: m.flatten(1).mean(dim=1)).median())
    if typical <= 0:
        return 0.0 if own <= 0 else float("inf")
    return own / typical
