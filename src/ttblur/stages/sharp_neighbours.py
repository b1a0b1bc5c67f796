"""Sharp neighbours as references: where a video holds still, score restorations against it.

Hand-held footage has still moments: frames the detector reads as (nearly) sharp beside
blurred ones. Warped onto a blurred neighbour along the optical flow, such a frame shows what
that neighbour would look like without its blur, up to the motion between the two instants.
Comparing a model's restoration of the blurred frame with it needs no estimate of the blur's
length, direction or of the exposure, which is what the re-blur score
(:mod:`ttblur.stages.guard`) depends on, and a restoration's artefacts are not mistaken for
sharpness (the blur magnitude estimator reads them as sharp; a warped real frame does not
contain them).

For each frame ``t`` that has a sharper frame ``s`` within ``radius`` frames (the detector's
mean blur reading of ``s`` below ``sharp_px`` and below ``t``'s), the flows ``t -> s`` and
``s -> t`` are computed on the observed frames, ``s`` is warped onto ``t``, and pixels whose
forward and backward flows disagree by more than ``tolerance`` px (occlusions, flow failures)
or whose sample falls outside the frame get weight 0. The most textured box of ``t`` under that
weight is scored. The frames with the largest blur gap to their reference are kept.

A warped reference is misaligned by the flow's error, and against a misaligned reference a
blurred restoration scores better than a sharp one; so each 16 px block of a restoration may be
compared at the whole-pixel shift (up to ``shift_px``) that fits it best
(:func:`reference_psnr`; the guard's ``guard.reference_shift_px``).

**Is the neighbour sharper at all?** The detector's map can read a frame sharp that is as
blurred as the frame it would serve (rotation and zoom, where no frame is sharp; a moving object
over a still background). Scored against such a reference, a model that copies its blurred
input looks right. :func:`reblur_fit_gain` asks the video, in the manner of Reblur2Deblur (ICCP
2018): blurred by frame ``t``'s own estimated condition (the guard's ``box_condition``), a truly
sharper reference comes closer to the observed ``t``; one as blurred as ``t`` moves away. With
``guard.reference_reblur_check`` a window is scored only where the fit gains (> 0 dB). On 48
development videos (windows cut as the guard cuts them, scratch measurement): 113 of 118
windows whose frame is truly 2 px or more blurrier than its reference pass, and 35 of 44 whose
gap is under 1 px fail (every window of the two rotation-zoom videos whose "sharp" frame was
blurred 5-6 px); the passes among the latter gain under 0.1 dB (docs/results.md, "Does the
reference explain the frame?").

**The sharp frames themselves.** A network can also fail on the still moments: restore a
sharp frame worse than it came in (the shipped ``tiny`` network loses 3-9 dB on still frames
between moving ones). Beside the blurred windows, each reference frame ``s`` is cut at the same
place with its own clip (``ReferenceWindows.still_clips``), and :func:`still_psnr` measures how
close its restoration stays to the observed frame, capped at ``cap_db``: an output within the
noise of its input (about 1% RMS at the default 40 dB) has nothing left to gain, so a network
that already leaves sharp frames alone earns nothing for copying their noise. A frame is a
reference when the mean of the detector's map reads it under ``sharp_px``, and that map can call
a blurred frame sharp (a held-out frame blurred by 3.65 px read 0.57 px there, inside the box
scored; the same box read alone, 1.28 px). Copying such a frame scores up while its true PSNR
does not move, so with ``guard.still_box_sharp`` a reference frame earns credit against
itself only where the blur estimator, run on the scored box alone, also reads it under
``sharp_px`` (:func:`box_readings`; docs/results.md, "A sharp frame must read sharp where it is
scored"). The others stay for the veto (``ReferenceWindows.still_veto``,
``guard.still_box_veto``): an epoch whose restorations of all the sharp frames move away from
them is not kept (``guard.still_veto_cap_db``; docs/results.md, "A fall above the credit's
cap").

Measured on the development scenarios with the ``tiny`` network (docs/results.md, "A score
against the video's own sharp frames"): over 24 videos, the PSNR against these references
ranks the true change of the kept epoch with Spearman +0.64 where the re-blur score reaches
+0.12; it exists only on videos with sharp moments (13 of the 24).

Example:
    >>> import torch
    >>> from ttblur.stages.sharp_neighbours import reference_psnr
    >>> ref = torch.rand(2, 3, 16, 16)
    >>> weight = torch.ones(2, 1, 16, 16)
    >>> round(reference_psnr(ref, ref, weight), 1)
    100.0
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ttblur.inference import reflect_index
from ttblur.io.frame_store import Frames
from ttblur.specs import ModelSpec
from ttblur.stages.flow import warp_back
from ttblur.stages.reblur import motion_blur
from ttblur.stages.rsdm import MagnitudeFn, estimate_magnitude
from ttblur.types import FlowEstimator, Selection, validate_selection

__all__ = [
    "SHIFT_BLOCK",
    "ReferenceWindows",
    "box_readings",
    "choose_references",
    "consistent_flow",
    "reblur_fit_gain",
    "reference_psnr",
    "still_psnr",
    "textured_corner",
    "window_clip",
    "window_psnr",
    "window_region",
]

#: PSNR reported for an exact match (MSE 0).
PERFECT_DB = 100.0


def textured_corner(frame: Tensor, size: int, weight: Tensor | None = None) -> tuple[int, int]:
    """Top-left corner of the ``size`` box of ``frame`` with the most gradient energy.

    Args:
        frame: ``(3, H, W)`` image.
        size: box side, px (at most ``min(H, W)``).
        weight: ``(1, H, W)`` per-pixel weight of the gradient energy (``None``: 1).

    Returns:
        ``(top, left)``, searched on a grid of ``size / 4`` px steps.
    """
    gray = frame.float().mean(dim=0, keepdim=True)
    grad = (gray[:, :, 1:] - gray[:, :, :-1]).abs()[:, :-1] + (gray[:, 1:] - gray[:, :-1]).abs()[
        :, :, :-1
    ]
    if weight is not None:
        grad = grad * weight.float().to(grad.device)[:, :-1, :-1]
    step = max(1, size // 4)
    pooled = F.avg_pool2d(grad[None], kernel_size=size - 1, stride=step)[0, 0]
    index = int(pooled.argmax())
    return (index // pooled.shape[1]) * step, (index % pooled.shape[1]) * step


def window_region(
    size: int, border: int, height: int, width: int, multiple: int
) -> tuple[int, int]:
    """Side of a scored window's region and its unscored border, px.

    The region is ``size`` clamped to the frame and rounded down to ``multiple`` (at least
    ``multiple``); the border is at most ``border`` and leaves an 8 px box at least.

    Raises:
        ValueError: a frame side shorter than ``multiple`` (no window of the model's size
            multiple fits in the frame).
    """
    if min(height, width) < multiple:
        raise ValueError(
            f"frames are {height}x{width}, smaller than the model's size multiple ({multiple} "
            "px): the guard scores windows of at least that side; use larger frames or "
            "guard.enabled = false"
        )
    side = min(size, height, width)
    side = max(multiple, side - side % multiple)
    return side, max(0, min(border, (side - 8) // 2))


def consistent_flow(forward: Tensor, backward: Tensor, tolerance: float) -> Tensor:
    """Where a flow can be trusted: forward and backward flows cancel within ``tolerance`` px.

    Args:
        forward: ``(2, H, W)`` flow from frame ``t`` to frame ``s``, px.
        backward: ``(2, H, W)`` flow from ``s`` to ``t``.
        tolerance: px.

    Returns:
        ``(1, H, W)`` float mask: 1 where ``|forward(x) + backward(x + forward(x))| <
        tolerance`` and ``x + forward(x)`` lies inside the frame, else 0.
    """
    if forward.shape != backward.shape or forward.ndim != 3 or forward.shape[0] != 2:
        raise ValueError(
            f"forward and backward must be equal (2, H, W) flows, got {tuple(forward.shape)} "
            f"and {tuple(backward.shape)}"
        )
    back, inside = warp_back(backward.float(), forward.float())
    agree = (forward.float() + back).norm(dim=0, keepdim=True) < tolerance
    return agree.float() * inside


def window_clip(video: Frames, t: int, box: tuple[int, int], side: int, radius: int) -> Tensor:
    """The real frames ``t - radius .. t + radius`` (reflected at the ends) of the ``side`` x
    ``side`` region at ``box`` = ``(top, left)``: a scored window's clip.

    Shape:
        - video: ``(T, 3, H, W)``; output: ``(2 radius + 1, 3, side, side)`` float32 on the CPU.
    """
    top, left = box
    rows, cols = slice(top, top + side), slice(left, left + side)
    frames = [
        video[reflect_index(t + k, video.shape[0]), :, rows, cols]
        for k in range(-radius, radius + 1)
    ]
    return torch.stack(frames).float().cpu()


def _check_scored(output: Tensor, target: Tensor, weight: Tensor, name: str) -> None:
    """Raise unless ``output`` and ``target`` are equal ``(N, 3, h, w)`` and ``weight`` is
    ``(N, 1, h, w)``."""
    if output.shape != target.shape or output.ndim != 4:
        raise ValueError(
            f"output and {name} must be equal (N, 3, h, w), got {tuple(output.shape)} and "
            f"{tuple(target.shape)}"
        )
    if weight.shape != (output.shape[0], 1, *output.shape[-2:]):
        raise ValueError(
            f"weight must be (N, 1, h, w) = {(output.shape[0], 1, *output.shape[-2:])}, "
            f"got {tuple(weight.shape)}"
        )


def reference_psnr(
    output: Tensor, reference: Tensor, weight: Tensor, *, shift_px: int = 0
) -> float:
    """Weighted PSNR (dB) of ``output`` against ``reference`` over all windows.

    A warped reference is misaligned with the frame it was warped onto by the flow's error, and
    against a misaligned reference a blurred output scores better than a sharp one. With
    ``shift_px``, each ``SHIFT_BLOCK`` x ``SHIFT_BLOCK`` block of ``output`` is compared at
    the whole-pixel shift within ``shift_px`` px (each axis) that fits its reference best.

    Args:
        output: ``(N, 3, h, w)`` restored boxes in ``[0, 1]`` (values outside are clamped).
        reference: ``(N, 3, h, w)`` the warped sharp neighbours.
        weight: ``(N, 1, h, w)`` per-pixel weight (0 where the warp is not trusted).
        shift_px: largest shift of a block, px; 0 compares in place.

    Returns:
        ``10 log10(1 / weighted MSE)``; 100 dB for an exact match; NaN if every weight is 0.
    """
    _check_scored(output, reference, weight, "reference")
    _check_shift(shift_px)
    total = float(weight.sum())
    if total <= 0:
        return math.nan
    out, ref, w = output.float().clamp(0.0, 1.0), reference.float(), weight.float()
    mse = float(_best_shift_error(out, ref, w, shift_px).sum()) / total
    return PERFECT_DB if mse <= 10 ** (-PERFECT_DB / 10) else -10.0 * math.log10(mse)


def window_psnr(output: Tensor, reference: Tensor, weight: Tensor, *, shift_px: int = 0) -> Tensor:
    """Weighted PSNR (dB) of each window of ``output`` against its warped ``reference``.

    Args and shifts as :func:`reference_psnr`, which pools the windows' errors instead.

    Returns:
        ``(N,)`` float32: ``10 log10(1 / weighted MSE)`` per window; 100 dB for an exact
        match; NaN for a window whose weights are all 0.

    Example:
        >>> import torch
        >>> ref = torch.full((2, 3, 16, 16), 0.5)
        >>> out = ref + torch.tensor([0.1, 0.01]).view(2, 1, 1, 1)
        >>> window_psnr(out, ref, torch.ones(2, 1, 16, 16)).round().tolist()
        [20.0, 40.0]
    """
    _check_scored(output, reference, weight, "reference")
    _check_shift(shift_px)
    out, ref, w = output.float().clamp(0.0, 1.0), reference.float(), weight.float()
    totals = w.sum(dim=(1, 2, 3))
    mse = _best_shift_error(out, ref, w, shift_px).sum(dim=(1, 2, 3)) / totals
    db = -10.0 * torch.log10(mse.clamp(min=10 ** (-PERFECT_DB / 10)))
    return torch.where(totals > 0, db, torch.full_like(db, math.nan))


def _check_shift(shift_px: object) -> None:
    if not isinstance(shift_px, int) or isinstance(shift_px, bool) or shift_px < 0:
        raise ValueError(f"shift_px must be an integer >= 0, got {shift_px!r}")


def reblur_fit_gain(
    reference: Tensor, observed: Tensor, condition: Tensor, weight: Tensor
) -> Tensor:
    """How much better each warped reference explains its blurred frame once blurred by that
    frame's estimated condition, dB (the re-blur test of Reblur2Deblur, ICCP 2018).

    A truly sharper neighbour, blurred along frame ``t``'s motion by ``t``'s blur, comes
    closer to the observed ``t`` than it was; a neighbour as blurred as ``t`` (a rotation or
    zoom that leaves no frame sharp, read sharp by the detector) moves away from it once
    blurred again, and so does one when ``t`` itself is sharp.

    Args:
        reference: ``(N, 3, s, s)`` the sharp neighbours warped onto their frames
            (:attr:`ReferenceWindows.reference`; values outside ``[0, 1]`` are clamped).
        observed: ``(N, 3, s, s)`` the observed frames ``t`` there.
        condition: ``(N, 3, s, s)`` frame ``t``'s blur there (x, y direction, z length px).
        weight: ``(N, 1, s, s)`` where the warp is trusted (0 on the border).

    Returns:
        ``(N,)`` float32: ``10 log10(E_plain / E_blurred)`` of the weighted squared errors
        against ``observed``; > 0 where blurring the reference explains the frame better.
    """
    _check_scored(reference, observed, weight, "observed")
    if condition.shape != reference.shape:
        raise ValueError(
            f"condition must be (N, 3, s, s) = {tuple(reference.shape)}, got "
            f"{tuple(condition.shape)}"
        )
    ref, obs, w = reference.float().clamp(0.0, 1.0), observed.float(), weight.float()
    blurred = motion_blur(ref, condition.float())

    def error(x: Tensor) -> Tensor:
        return ((x - obs).square().mean(dim=1, keepdim=True) * w).sum(dim=(1, 2, 3))

    tiny = 1e-12
    return 10.0 * torch.log10(error(ref).clamp(min=tiny) / error(blurred).clamp(min=tiny))


def still_psnr(output: Tensor, observed: Tensor, weight: Tensor, *, cap_db: float) -> float:
    """Mean over windows of the weighted PSNR (dB) of ``output`` against ``observed``, each
    capped at ``cap_db``: how closely restorations of sharp frames keep those frames.

    Args:
        output: ``(N, 3, h, w)`` restored sharp frames in ``[0, 1]`` (values outside are
            clamped).
        observed: ``(N, 3, h, w)`` the observed frames restored.
        weight: ``(N, 1, h, w)`` per-pixel weight (0 on the unscored border).
        cap_db: the most a window can score; closer than this to its input counts the same.

    Returns:
        The mean capped PSNR; NaN if a window has no weight.

    Example:
        >>> import torch
        >>> frame = torch.full((1, 3, 8, 8), 0.5)
        >>> round(still_psnr(frame + 0.1, frame, torch.ones(1, 1, 8, 8), cap_db=40.0), 3)
        20.0
    """
    _check_scored(output, observed, weight, "observed")
    if not cap_db > 0:
        raise ValueError(f"cap_db must be > 0, got {cap_db!r}")
    w = weight.float()
    totals = w.sum(dim=(1, 2, 3))
    if output.shape[0] == 0 or bool((totals <= 0).any()):
        return math.nan
    out = output.float().clamp(0.0, 1.0)
    mse = _best_shift_error(out, observed.float(), w, 0).sum(dim=(1, 2, 3)) / totals
    floor = 10 ** (-cap_db / 10)
    return float((-10.0 * torch.log10(mse.clamp(min=floor))).mean())


#: Side of the blocks that :func:`reference_psnr` shifts one by one, px.
SHIFT_BLOCK = 16


def _best_shift_error(out: Tensor, ref: Tensor, weight: Tensor, reach: int) -> Tensor:
    """``(N, 1, H/B, W/B)``: per block, the least weighted squared error (channel mean) of
    ``out`` shifted by up to ``reach`` px against ``ref`` (edges replicated; ``reach`` 0: in
    place)."""
    height, width = out.shape[-2:]
    padded = F.pad(out, (reach, reach, reach, reach), mode="replicate") if reach else out
    pad = (0, -width % SHIFT_BLOCK, 0, -height % SHIFT_BLOCK)

    def block_error(dy: int, dx: int) -> Tensor:
        moved = padded[..., dy : dy + height, dx : dx + width]
        error = (moved - ref).square().mean(dim=1, keepdim=True) * weight
        return F.avg_pool2d(F.pad(error, pad), SHIFT_BLOCK)

    span = range(2 * reach + 1)
    blocks = [block_error(dy, dx) for dy in span for dx in span]
    return torch.stack(blocks).amin(dim=0) * SHIFT_BLOCK**2


@dataclass
class ReferenceWindows:
    """The real clips scored against sharp neighbours.

    Attributes:
        clips: ``(N, L, 3, s, s)`` real frames ``t - r .. t + r`` of each window's region.
        centre: index of frame ``t`` inside each clip.
        reference: ``(N, 3, s, s)`` the sharp frame ``s`` warped onto frame ``t`` there.
        weight: ``(N, 1, s, s)`` 1 where the warp is trusted, 0 elsewhere and on the border.
        frames: frame ``t`` of each window; ``sources``: its reference frame ``s``.
        boxes: ``(top, left)`` of each region in its frame.
        still_clips: ``(M, L, 3, s, s)`` real frames ``s - r .. s + r`` around each distinct
            reference frame, at the region of the first window it serves (its restoration is
            scored against its own observed frame, :func:`still_psnr`).
        still_frames: the reference frame of each still clip.
        still_boxes: ``(top, left)`` of each still clip's region in its frame.
        still_weight: ``(M, 1, s, s)`` 1 inside the scored box, 0 on its border.
        fit_gain: per blurred window, :func:`reblur_fit_gain` of its reference (dB), when the
            guard checked it (``guard.reference_reblur_check``); empty otherwise.
        still_veto: per still frame, True where it earns no credit and counts in the guard's
            veto only (``guard.still_box_veto``); empty: all False.
    """

    clips: Tensor
    centre: int
    reference: Tensor
    weight: Tensor
    frames: list[int]
    sources: list[int]
    boxes: list[tuple[int, int]]
    still_clips: Tensor
    still_frames: list[int]
    still_boxes: list[tuple[int, int]]
    still_weight: Tensor
    fit_gain: list[float] = field(default_factory=list)
    still_veto: list[bool] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.still_veto:
            self.still_veto = [False] * len(self.still_frames)
        self.still_veto = _flags(self.still_veto, len(self.still_frames), "still frame")

    @property
    def observed(self) -> Tensor:
        """``(N, 3, s, s)``: the observed (blurred) frame ``t`` of each window."""
        return self.clips[:, self.centre]

    @property
    def still_observed(self) -> Tensor:
        """``(M, 3, s, s)``: the observed sharp frame of each still clip."""
        return self.still_clips[:, self.centre]

    def with_still(self, keep: Sequence[bool]) -> ReferenceWindows:
        """These windows with only the still clips ``keep`` marks (one flag per still frame);
        the blurred windows are unchanged."""
        flags = _flags(keep, len(self.still_frames), "still frame")
        index = _index(flags)
        return replace(
            self,
            still_clips=self.still_clips[index],
            still_frames=_kept(self.still_frames, flags),
            still_boxes=_kept(self.still_boxes, flags),
            still_weight=self.still_weight[index],
            still_veto=_kept(self.still_veto, flags),
        )

    def with_still_veto(self, veto: Sequence[bool]) -> ReferenceWindows:
        """These windows with the still frames ``veto`` marks (one flag per still frame) set
        to veto only, beside those already so; nothing is removed."""
        flags = _flags(veto, len(self.still_frames), "still frame")
        merged = [a or b for a, b in zip(self.still_veto, flags, strict=True)]
        return replace(self, still_veto=merged)

    def with_windows(self, keep: Sequence[bool]) -> ReferenceWindows:
        """These windows with only the blurred windows ``keep`` marks (one flag per window);
        the still clips are unchanged."""
        flags = _flags(keep, len(self), "window")
        index = _index(flags)
        return replace(
            self,
            clips=self.clips[index],
            reference=self.reference[index],
            weight=self.weight[index],
            frames=_kept(self.frames, flags),
            sources=_kept(self.sources, flags),
            boxes=_kept(self.boxes, flags),
            fit_gain=_kept(self.fit_gain, flags) if self.fit_gain else [],
        )

    def __len__(self) -> int:
        return int(self.clips.shape[0])


def _flags(keep: Sequence[bool], count: int, what: str) -> list[bool]:
    flags = [bool(k) for k in keep]
    if len(flags) != count:
        raise ValueError(f"keep needs one flag per {what} ({count}), got {len(flags)}")
    return flags


def _index(flags: list[bool]) -> Tensor:
    return torch.tensor([i for i, k in enumerate(flags) if k], dtype=torch.long)


def _kept(values: list[Any], flags: list[bool]) -> list[Any]:
    return [v for v, k in zip(values, flags, strict=True) if k]


def box_readings(
    windows: ReferenceWindows, bme: MagnitudeFn, *, batch_size: int = 4
) -> list[float]:
    """The blur ``bme`` reads in each still frame's scored box, run on that region alone.

    The mean of the detector's map, read on whole frames, decides which frames are
    references and can call a blurred frame sharp; read alone, the box that is scored gives
    a second reading of the place that counts (module docs).

    Args:
        windows: the windows (:func:`choose_references`).
        bme: a blur magnitude estimator (``frames (N, 3, s, s) -> (N, 1, s, s)`` px).
        batch_size: boxes per call.

    Returns:
        One mean reading per still frame (px), over its box inside the unscored border.
    """
    if not windows.still_frames:
        return []
    reading = estimate_magnitude(bme, windows.still_observed, batch_size=batch_size)
    weight = windows.still_weight
    total = (torch.as_tensor(reading).float() * weight).sum(dim=(1, 2, 3))
    return (total / weight.sum(dim=(1, 2, 3))).tolist()


def _sharper_neighbour(blur: list[float], t: int, radius: int, sharp_px: float) -> int | None:
    """The sharpest frame within ``radius`` of ``t`` that reads under ``sharp_px`` and under
    frame ``t`` (the nearer on ties), or None."""
    near = [
        s
        for s in range(max(0, t - radius), min(len(blur), t + radius + 1))
        if s != t and blur[s] < sharp_px and blur[s] < blur[t]
    ]
    return min(near, key=lambda s: (blur[s], abs(s - t))) if near else None


def choose_references(
    video: Frames,
    selection: Selection,
    spec: ModelSpec,
    flow: FlowEstimator,
    *,
    radius: int = 3,
    sharp_px: float = 1.0,
    frames: int = 8,
    size: int = 160,
    border: int = 16,
    clip_radius: int = 2,
    tolerance: float = 1.0,
    min_trusted: float = 0.3,
) -> ReferenceWindows | None:
    """Pair blurred frames with sharp neighbours and cut the windows to score (module docs).

    Args:
        video: ``(T, 3, H, W)`` float RGB in ``[0, 1]``.
        selection: the detector's output; its magnitude maps ``(T, 1, H, W)`` (px) say which
            frames are sharp (their mean).
        spec: the model's calling convention (for the window's size multiple).
        flow: optical flow between observed frames.
        radius: frames on each side of ``t`` searched for a sharp neighbour.
        sharp_px: a frame is a reference when its mean blur reading is below this (px).
        frames: windows kept at most (the frames with the largest blur gap to their reference).
        size: side of a window's region, px (clamped to the frame, rounded down to
            ``spec.multiple``); ``border``: px of it on each side left unscored.
        clip_radius: real frames on each side in a window's clip (the model's context).
        tolerance: px of forward-backward flow disagreement above which a pixel is untrusted.
        min_trusted: a window needs at least this share of trusted pixels in its scored box.

    Returns:
        The windows, or ``None`` when no frame has a sharp neighbour (a steady pan, a video
        blurred throughout): the caller falls back to another score.

    Shape:
        - clips: ``(N, 2 clip_radius + 1, 3, s, s)``; reference: ``(N, 3, s, s)``.
        - still_clips: ``(M, 2 clip_radius + 1, 3, s, s)``, one per distinct reference frame.
    """
    validate_selection(video, selection)
    num_frames, _, height, width = video.shape
    for name, value, low in (("radius", radius, 1), ("frames", frames, 1), ("size", size, 8)):
        if not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    side, border = window_region(size, border, height, width, spec.multiple)
    blur = [float(selection.magnitude[t].float().mean()) for t in range(num_frames)]
    pairs = []
    for t in range(num_frames):
        s = _sharper_neighbour(blur, t, radius, sharp_px)
        if s is not None:
            pairs.append((blur[t] - blur[s], t, s))
    pairs.sort(key=lambda item: (-item[0], item[1]))
    kept: list[tuple[int, int, tuple[int, int], Tensor, Tensor, Tensor]] = []
    inner = (slice(None), slice(border, side - border), slice(border, side - border))

    for _, t, s in pairs:
        if len(kept) == frames:
            break
        here, there = video[t : t + 1].float(), video[s : s + 1].float()
        forward = flow(here, there)[0].float().cpu()
        trusted = consistent_flow(forward, flow(there, here)[0].float().cpu(), tolerance)
        warped, _ = warp_back(video[s].float().cpu(), forward)
        top, left = textured_corner(video[t].cpu(), side, trusted)
        rows, cols = slice(top, top + side), slice(left, left + side)
        weight = torch.zeros(1, side, side)
        weight[inner] = trusted[:, rows, cols][inner]
        if float(weight[inner].mean()) < min_trusted:
            continue
        kept.append(
            (
                t,
                s,
                (top, left),
                window_clip(video, t, (top, left), side, clip_radius),
                warped[:, rows, cols],
                weight,
            )
        )
    if not kept:
        return None
    kept.sort(key=lambda window: window[0])  # in frame order
    still: dict[int, tuple[int, int]] = {}
    for _, s, box, *_ in kept:
        still.setdefault(s, box)
    box_mask = torch.zeros(1, side, side)
    box_mask[inner] = 1.0
    return ReferenceWindows(
        clips=torch.stack([w[3] for w in kept]),
        centre=clip_radius,
        reference=torch.stack([w[4] for w in kept]),
        weight=torch.stack([w[5] for w in kept]),
        frames=[w[0] for w in kept],
        sources=[w[1] for w in kept],
        boxes=[w[2] for w in kept],
        still_clips=torch.stack(
            [window_clip(video, s, box, side, clip_radius) for s, box in sorted(still.items())]
        ),
        still_frames=sorted(still),
        still_boxes=[still[s] for s in sorted(still)],
        still_weight=box_mask.expand(len(still), 1, side, side).clone(),
    )
