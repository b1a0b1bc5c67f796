"""Relative Sharpness Detection Module (RSDM): choose the relatively sharp patches of a video.

Even a blurry video has frames and regions that are less blurred than the rest (the camera
slows down, the shutter catches a still moment). The RSDM finds them and returns them as
pseudo-sharp patches:

1. the Blur Magnitude Estimator (:class:`~ttblur.nets.bme.BlurMagnitudeEstimator`) predicts a
   magnitude map ``M_t`` (pixels) for every frame, in batches, keeping only the ``(T, 1, H, W)``
   maps;
2. an adaptive, per-video threshold ``eta`` binarises them (sharp = ``M < eta``) and patches
   are placed on the sharp regions (below); ``eta`` is searched by bisection so that about
   ``ratio`` (20 % in the paper) of the *candidate patches*, counted over the whole video, are
   kept.

**Candidate patches** (the denominator of ``ratio``, shared with :class:`RandomPatchSelector`):
the ``patch_size`` squares of a regular grid with stride ``stride`` (default
``patch_size // 2``) whose last row/column is flush with the bottom/right border, on every frame
``border_frames .. T - border_frames - 1`` (the first and last ``border_frames`` frames lack the
neighbours that DBCGM and the video fine-tuning need). Their number is
``n = frames * rows * cols`` and the target count is ``k = max(1, round(ratio * n))``.

**Patches at a threshold** ``eta``: on each candidate frame the sharp mask ``M < eta`` is split
into 8-connected regions (``cv2.connectedComponentsWithStats``); regions with fewer than
``min_coverage * patch_size ** 2`` pixels are ignored. A region whose bounding box
fits in a patch gets one patch centred on its box; a larger region is covered by patches at
``stride`` spacing along each side longer than a patch (centred along a side that fits). Every
placement is clamped inside the frame, duplicates are merged, and a patch is kept only if at
least ``min_coverage`` of its pixels are sharp. When everything is sharp this gives exactly
the candidate grid, so the count reaches ``n`` at ``eta > max M``.

**Search** (the official code's bisection, made terminating): ``eta`` is bisected between the
smallest and just above the largest magnitude of the candidate frames until the number of
patches is within ``tolerance * n`` of ``k``, or after ``max_iterations`` halvings (or when the
interval vanishes, e.g. for a constant video). If the search does not converge, the patches of
the smallest threshold seen that gave more than ``k`` patches are ranked by mean magnitude and
the ``k`` sharpest are kept. Kept patches are never more than ``k``: when the converged count
exceeds ``k`` the sharpest ``k`` are kept. Patches are returned sharpest first (mean magnitude
inside the patch, ties broken by frame, top, left), so ``max_patches`` keeps the sharpest.

Everything is deterministic. The magnitude maps are returned in the :class:`Selection` so the
condition generator (DBCGM) reuses them instead of running the BME again.

:class:`RandomPatchSelector` is the paper's ablation: the same candidate set and the same count
``k``, drawn uniformly at random (seeded). It still runs the BME, because DBCGM needs the
magnitude maps downstream.

Example:
    >>> import torch
    >>> from ttblur.stages.rsdm import RelativeSharpnessDetector
    >>> video = torch.rand(8, 3, 64, 96)
    >>> speed = torch.arange(8.0).view(8, 1, 1, 1).expand(8, 1, 64, 96)  # frame t: t px
    >>> detector = RelativeSharpnessDetector(bme=lambda frames: frames[:, :1] * 0, patch_size=32)
    >>> selection = detector.select(video, magnitude=speed)
    >>> selection.candidates, len(selection), sorted({p.frame for p in selection.patches})
    (60, 12, [2])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from ttblur.config import RSDMConfig
from ttblur.io.frame_store import Frames, FrameStore, per_frame
from ttblur.nets.bme import BlurMagnitudeEstimator
from ttblur.registry import DETECTORS
from ttblur.types import (
    PatchLocation,
    Selection,
    check_map_shape,
    finite_range,
    validate_video,
)

#: The ``rsdm`` section's defaults are the detectors' constructor defaults (one source).
_DEFAULTS = RSDMConfig()

__all__ = [
    "CandidateGrid",
    "MagnitudeFn",
    "RandomPatchSelector",
    "RelativeSharpnessDetector",
    "candidate_grid",
    "estimate_magnitude",
    "select_relatively_sharp",
]

#: Anything mapping frames ``(N, 3, H, W)`` in [0, 1] to magnitude maps ``(N, 1, H, W)`` px.
MagnitudeFn = Callable[[Tensor], Tensor]


# --------------------------------------------------------------------------------------------
# candidates


def _positions(extent: int, patch: int, stride: int) -> np.ndarray:
    """Start offsets of a 1-D grid of ``patch``-long windows covering ``[0, extent)``."""
    last = extent - patch
    starts = list(range(0, last + 1, stride))
    if starts[-1] != last:
        starts.append(last)
    return np.asarray(starts, dtype=np.int64)


@dataclass(frozen=True)
class CandidateGrid:
    """The candidate patches of a video (see the module docstring).

    Attributes:
        frames: candidate frame indices ``border_frames .. T - border_frames - 1``.
        tops: row offsets of the grid (stride ``stride``, last one ``H - patch_size``).
        lefts: column offsets of the grid (last one ``W - patch_size``).
        patch_size: side of a patch, px.
        stride: grid spacing, px.
    """

    frames: tuple[int, ...]
    tops: tuple[int, ...]
    lefts: tuple[int, ...]
    patch_size: int
    stride: int

    def __len__(self) -> int:
        return len(self.frames) * len(self.tops) * len(self.lefts)

    @property
    def per_frame(self) -> int:
        """Candidate patches per frame."""
        return len(self.tops) * len(self.lefts)

    def location(self, index: int) -> PatchLocation:
        """Candidate ``index`` in frame-major, then row-major order."""
        if not 0 <= index < len(self):
            raise IndexError(f"candidate index {index} out of range [0, {len(self)})")
        f, rest = divmod(index, self.per_frame)
        r, c = divmod(rest, len(self.lefts))
        return PatchLocation(self.frames[f], self.tops[r], self.lefts[c], self.patch_size)

    def target_count(self, ratio: float) -> int:
        """Number of patches to keep: ``max(1, round(ratio * len(self)))``, at most ``len``."""
        return min(len(self), max(1, round(ratio * len(self))))


def candidate_grid(
    num_frames: int,
    height: int,
    width: int,
    *,
    patch_size: int,
    stride: int | None = None,
    border_frames: int = 2,
) -> CandidateGrid:
    """Build the candidate grid of a ``(T, 3, H, W)`` video.

    Args:
        num_frames: ``T``; must exceed ``2 * border_frames``.
        height, width: frame size in px; both ``>= patch_size``.
        patch_size: side of a patch, px (> 0).
        stride: grid spacing in px; default ``max(1, patch_size // 2)``.
        border_frames: frames skipped at each end (>= 0).

    Raises:
        ValueError: too few frames, frames smaller than a patch, or non-positive sizes.
    """
    if patch_size <= 0:
        raise ValueError(f"patch_size must be > 0, got {patch_size}")
    stride = max(1, patch_size // 2) if stride is None else stride
    if stride <= 0:
        raise ValueError(f"stride must be > 0, got {stride}")
    if border_frames < 0:
        raise ValueError(f"border_frames must be >= 0, got {border_frames}")
    if num_frames <= 2 * border_frames:
        raise ValueError(
            f"video has {num_frames} frames; patch selection skips the first and last "
            f"{border_frames} frames, so it needs at least {2 * border_frames + 1}"
        )
    if height < patch_size or width < patch_size:
        raise ValueError(
            f"frames of {height}x{width} px are smaller than the {patch_size}x{patch_size} "
            "patch; lower patch_size or use larger frames"
        )
    return CandidateGrid(
        frames=tuple(range(border_frames, num_frames - border_frames)),
        tops=tuple(int(v) for v in _positions(height, patch_size, stride)),
        lefts=tuple(int(v) for v in _positions(width, patch_size, stride)),
        patch_size=patch_size,
        stride=stride,
    )


# --------------------------------------------------------------------------------------------
# magnitude maps


def _validate_magnitude(magnitude: Frames, video_shape: tuple[int, ...]) -> None:
    if not isinstance(magnitude, Frames):
        raise ValueError(f"magnitude must be a torch.Tensor, got {type(magnitude).__name__}")
    check_map_shape(magnitude, video_shape)
    if not magnitude.is_floating_point():
        raise ValueError(f"magnitude must be floating point, got {magnitude.dtype}")
    if magnitude.numel():
        low, _ = finite_range(magnitude, "magnitude")
        if low < 0:
            raise ValueError(f"magnitude must be >= 0 px, got minimum {low:.4g}")


def estimate_magnitude(
    bme: BlurMagnitudeEstimator | MagnitudeFn,
    video: Frames,
    *,
    batch_size: int = 4,
    progress: bool = False,
) -> Frames:
    """Blur magnitude maps of every frame, ``batch_size`` frames at a time.

    Args:
        bme: a :class:`BlurMagnitudeEstimator` (its :meth:`~BlurMagnitudeEstimator.predict`
            is used, on its own device) or any callable ``frames (N, 3, H, W) -> (N, 1, H, W)``
            in px.
        video: ``(T, 3, H, W)`` float RGB in ``[0, 1]``: a tensor or a
            :class:`~ttblur.io.frame_store.FrameStore` (read ``batch_size`` frames at a time).
        batch_size: frames per call (> 0).
        progress: show a progress bar of the frames done.

    Returns:
        ``(T, 1, H, W)`` float32 magnitude in pixels on the CPU; for a frame store, a new
        store beside it (memory stays bounded however long the video).

    Raises:
        ValueError: invalid video, ``batch_size <= 0``, or a callable returning a wrong shape,
            NaN/inf or negative values.
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be > 0, got {batch_size}")
    validate_video(video)
    num_frames, _, height, width = video.shape
    out: Frames
    if isinstance(video, FrameStore):
        out = FrameStore.create((num_frames, 1, height, width), directory=video.directory)
    else:
        out = torch.empty(num_frames, 1, height, width, dtype=torch.float32)
    bar = tqdm(total=num_frames, desc="blur magnitude", unit="frame", disable=not progress)
    with torch.no_grad(), bar:
        for start in range(0, num_frames, batch_size):
            chunk = video[start : start + batch_size]
            if isinstance(bme, BlurMagnitudeEstimator):
                pred = bme.predict(chunk, batch_size=batch_size)
            else:
                pred = bme(chunk)
            expected = (chunk.shape[0], 1, height, width)
            if not isinstance(pred, Tensor) or tuple(pred.shape) != expected:
                shape = tuple(pred.shape) if isinstance(pred, Tensor) else type(pred).__name__
                raise ValueError(
                    f"the magnitude estimator must return (N, 1, H, W) = {expected}, got {shape}"
                )
            if isinstance(out, FrameStore):
                out.write(start, pred)
            else:
                out[start : start + chunk.shape[0]] = pred.detach().float().cpu()
            bar.update(chunk.shape[0])
    _validate_magnitude(out, tuple(video.shape))
    return out


# --------------------------------------------------------------------------------------------
# threshold search


def _axis_starts(start: int, extent: int, limit: int, patch: int, stride: int) -> np.ndarray:
    """Patch offsets along one axis covering ``[start, start + extent)``, clamped in frame."""
    if extent <= patch:
        centred = start + (extent - patch) // 2
        return np.asarray([min(max(centred, 0), limit - patch)], dtype=np.int64)
    offsets = start + _positions(extent, patch, stride)
    return np.clip(offsets, 0, limit - patch)


def _patches_at(
    frame_map: np.ndarray, threshold: float, patch: int, stride: int, min_coverage: float
) -> np.ndarray:
    """``(K, 2)`` (top, left) of the patches placed on one frame at ``threshold``."""
    sharp = (frame_map < threshold).astype(np.uint8)
    height, width = sharp.shape
    if not sharp.any():
        return np.zeros((0, 2), dtype=np.int64)
    count, _, stats, _ = cv2.connectedComponentsWithStats(sharp, connectivity=8)
    stats = stats[1:count]  # drop the background label
    stats = stats[stats[:, cv2.CC_STAT_AREA] >= min_coverage * patch * patch]
    if stats.shape[0] == 0:
        return np.zeros((0, 2), dtype=np.int64)
    xs, ys = stats[:, cv2.CC_STAT_LEFT], stats[:, cv2.CC_STAT_TOP]
    ws, hs = stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT]
    small = (ws <= patch) & (hs <= patch)
    tops = np.clip(ys[small] + (hs[small] - patch) // 2, 0, height - patch)
    lefts = np.clip(xs[small] + (ws[small] - patch) // 2, 0, width - patch)
    placed = [np.stack([tops, lefts], axis=1).astype(np.int64)]
    for x, y, w, h in zip(xs[~small], ys[~small], ws[~small], hs[~small]):
        rows = _axis_starts(int(y), int(h), height, patch, stride)
        cols = _axis_starts(int(x), int(w), width, patch, stride)
        grid = np.stack(np.meshgrid(rows, cols, indexing="ij"), axis=-1).reshape(-1, 2)
        placed.append(grid)
    boxes = np.unique(np.concatenate(placed), axis=0)
    integral = cv2.integral(sharp)  # (H+1, W+1) int32
    t, le = boxes[:, 0], boxes[:, 1]
    inside = (
        integral[t + patch, le + patch]
        - integral[t, le + patch]
        - integral[t + patch, le]
        + integral[t, le]
    )
    return boxes[inside >= min_coverage * patch * patch - 1e-9]


class _CandidateMaps:
    """The magnitude maps of frames ``first .. stop - 1`` as ``(H, W)`` float32 arrays, with
    each frame's minimum and maximum; a frame store is read one frame at a time."""

    def __init__(self, magnitude: Frames, first: int, stop: int) -> None:
        self.first, self.count = first, stop - first
        if isinstance(magnitude, FrameStore):
            self._store: FrameStore | None = magnitude
            self._array = None
            stats = per_frame(magnitude, _map_stats)[first:stop]
            self.mins, self.maxs = stats[:, 0].numpy(), stats[:, 1].numpy()
            pixels = self.count * magnitude.shape[2] * magnitude.shape[3]
            self.mean = float(stats[:, 2].sum()) / pixels
        else:
            self._store = None
            self._array = magnitude.detach().float().cpu()[first:stop, 0].numpy()
            flat = self._array.reshape(self.count, -1)
            self.mins, self.maxs = flat.min(axis=1), flat.max(axis=1)
            self.mean = float(self._array.mean())

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> np.ndarray:
        if self._array is not None:
            return self._array[index]
        assert self._store is not None
        return self._store[self.first + index, 0].numpy()


def _map_stats(maps: Tensor) -> Tensor:
    """``(n, 3)`` float64: minimum, maximum and sum of each ``(1, H, W)`` map."""
    flat = maps.flatten(1)
    return torch.stack([flat.amin(1).double(), flat.amax(1).double(), flat.double().sum(1)], 1)


def _all_patches_at(
    maps: _CandidateMaps, threshold: float, patch: int, stride: int, min_coverage: float
) -> np.ndarray:
    """``(K, 3)`` (frame index into ``maps``, top, left) over all candidate frames."""
    found = []
    for index in range(len(maps)):
        if float(maps.mins[index]) >= threshold:
            continue
        boxes = _patches_at(maps[index], threshold, patch, stride, min_coverage)
        if boxes.shape[0]:
            found.append(np.concatenate([np.full((boxes.shape[0], 1), index), boxes], axis=1))
    if not found:
        return np.zeros((0, 3), dtype=np.int64)
    return np.concatenate(found).astype(np.int64)


def _mean_inside(maps: _CandidateMaps, boxes: np.ndarray, patch: int) -> np.ndarray:
    """Mean magnitude inside each ``(frame, top, left)`` box (float64)."""
    means = np.empty(boxes.shape[0], dtype=np.float64)
    for index in np.unique(boxes[:, 0]):
        rows = boxes[:, 0] == index
        integral = cv2.integral(maps[index].astype(np.float64))
        t, le = boxes[rows, 1], boxes[rows, 2]
        total = (
            integral[t + patch, le + patch]
            - integral[t, le + patch]
            - integral[t + patch, le]
            + integral[t, le]
        )
        means[rows] = total / (patch * patch)
    return means


def _sharpest_first(maps: _CandidateMaps, boxes: np.ndarray, patch: int) -> tuple[np.ndarray, Any]:
    means = _mean_inside(maps, boxes, patch)
    order = np.lexsort((boxes[:, 2], boxes[:, 1], boxes[:, 0], means))
    return boxes[order], means[order]


def select_relatively_sharp(
    magnitude: Frames,
    *,
    patch_size: int = 256,
    ratio: float = 0.2,
    border_frames: int = 2,
    stride: int | None = None,
    tolerance: float = 0.02,
    min_coverage: float = 0.75,
    max_iterations: int = 40,
    max_patches: int | None = None,
    progress: bool = False,
) -> Selection:
    """Functional RSDM: adaptive-threshold patch selection on given magnitude maps.

    Args:
        magnitude: ``(T, 1, H, W)`` blur magnitude maps in pixels (>= 0, finite): a tensor or
            a :class:`~ttblur.io.frame_store.FrameStore` (read one map at a time).
        patch_size: side of a pseudo-sharp patch, px.
        ratio: share of the candidate patches to keep, in ``(0, 1]``.
        border_frames: frames skipped at each end.
        stride: candidate grid spacing, default ``patch_size // 2``.
        tolerance: the search stops when the count is within ``tolerance * candidates`` of
            the target, in ``(0, 1)``.
        min_coverage: share of sharp pixels a placed patch needs, in ``(0, 1]``.
        max_iterations: cap on the bisection steps (> 0).
        max_patches: keep at most this many (the sharpest).
        progress: show a progress bar of the threshold search (one step per pass over the
            maps).

    Returns:
        :class:`Selection` (patches sharpest first; ``magnitude`` is the input on the CPU;
        ``threshold`` in px; ``info``: ``target``, ``iterations``, ``converged`` (1 or 0),
        ``found`` (patches at the threshold before trimming), ``mean_magnitude_kept`` and
        ``mean_magnitude_candidates`` in px).

    Raises:
        ValueError: bad maps or parameters, too few frames, frames smaller than a patch.
    """
    if not isinstance(magnitude, Frames) or magnitude.ndim != 4 or magnitude.shape[1] != 1:
        shape = tuple(magnitude.shape) if isinstance(magnitude, Frames) else type(magnitude)
        raise ValueError(f"magnitude must be (T, 1, H, W), got {shape}")
    _validate_magnitude(magnitude, (magnitude.shape[0], 3, *magnitude.shape[2:]))
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f"ratio must be in (0, 1], got {ratio}")
    if not 0.0 < tolerance < 1.0:
        raise ValueError(f"tolerance must be in (0, 1), got {tolerance}")
    if not 0.0 < min_coverage <= 1.0:
        raise ValueError(f"min_coverage must be in (0, 1], got {min_coverage}")
    if max_iterations <= 0:
        raise ValueError(f"max_iterations must be > 0, got {max_iterations}")
    if max_patches is not None and max_patches <= 0:
        raise ValueError(f"max_patches must be > 0, got {max_patches}")
    num_frames, _, height, width = magnitude.shape
    grid = candidate_grid(
        num_frames, height, width, patch_size=patch_size, stride=stride, border_frames=border_frames
    )
    patch, step = grid.patch_size, grid.stride
    maps = _CandidateMaps(magnitude, grid.frames[0], grid.frames[-1] + 1)
    total = len(grid)
    target = grid.target_count(ratio)
    slack = tolerance * total

    bar = tqdm(
        total=max_iterations + 1, desc="sharpness threshold", unit="pass", disable=not progress
    )

    def count_at(eta: float) -> np.ndarray:
        bar.update(1)
        return _all_patches_at(maps, eta, patch, step, min_coverage)

    low = float(maps.mins.min())
    high = float(maps.maxs.max())
    high = high + max(abs(high) * 1e-6, 1e-6)  # everything is sharp: the full grid
    high_boxes = count_at(high)
    threshold, boxes, converged, iterations = high, high_boxes, False, 0
    if abs(high_boxes.shape[0] - target) <= slack:
        converged = True
    else:
        while iterations < max_iterations and high - low > 1e-9 * max(1.0, abs(high)):
            iterations += 1
            mid = 0.5 * (low + high)
            found = count_at(mid)
            if abs(found.shape[0] - target) <= slack:
                threshold, boxes, converged = mid, found, True
                break
            if found.shape[0] > target:
                high, high_boxes = mid, found
            else:
                low = mid
        if not converged:  # fall back to the sharpest-ranked patches of the tightest excess
            threshold, boxes = high, high_boxes
    bar.close()
    found_count = int(boxes.shape[0])
    ordered, means = _sharpest_first(maps, boxes, patch)
    keep = min(found_count, target, max_patches or found_count)
    ordered, means = ordered[:keep], means[:keep]
    patches = [
        PatchLocation(grid.frames[0] + int(f), int(t), int(le), patch) for f, t, le in ordered
    ]
    return Selection(
        patches=patches,
        magnitude=magnitude.detach().float().cpu(),
        threshold=float(threshold),
        candidates=total,
        info={
            "target": float(target),
            "iterations": float(iterations),
            "converged": 1.0 if converged else 0.0,
            "found": float(found_count),
            "mean_magnitude_kept": float(means.mean()) if keep else float("nan"),
            "mean_magnitude_candidates": maps.mean,
        },
    )


# --------------------------------------------------------------------------------------------
# stage classes


def _resolve_bme(
    bme: BlurMagnitudeEstimator | MagnitudeFn | None,
) -> BlurMagnitudeEstimator | MagnitudeFn:
    if bme is None:
        return BlurMagnitudeEstimator.from_pretrained()
    if not callable(bme):
        raise ValueError(f"bme must be a BlurMagnitudeEstimator or a callable, got {type(bme)}")
    return bme


def _load_bme(section: RSDMConfig, device: str | torch.device | None) -> BlurMagnitudeEstimator:
    bme = BlurMagnitudeEstimator.from_pretrained(section.weights, revision=section.weights_revision)
    return bme.to(torch.device(device) if device is not None else torch.device("cpu"))


def _grid_settings(section: RSDMConfig) -> dict[str, Any]:
    """The ``rsdm`` fields both selectors take: patch size, ratio, borders, batch, cap."""
    return {
        "patch_size": section.patch_size,
        "ratio": section.ratio,
        "border_frames": section.border_frames,
        "batch_size": section.batch_size,
        "max_patches": section.max_patches,
    }


class _GridPatchSelector:
    """What both selectors share: the BME, the candidate grid and the magnitude maps."""

    def __init__(
        self,
        bme: BlurMagnitudeEstimator | MagnitudeFn | None,
        *,
        patch_size: int,
        ratio: float,
        border_frames: int,
        batch_size: int,
        stride: int | None,
        max_patches: int | None,
    ) -> None:
        if patch_size <= 0:
            raise ValueError(f"patch_size must be > 0, got {patch_size}")
        if not 0.0 < ratio <= 1.0:
            raise ValueError(f"ratio must be in (0, 1], got {ratio}")
        if batch_size <= 0:
            raise ValueError(f"batch_size must be > 0, got {batch_size}")
        if max_patches is not None and max_patches <= 0:
            raise ValueError(f"max_patches must be > 0, got {max_patches}")
        self.bme = _resolve_bme(bme)
        self.patch_size = patch_size
        self.ratio = ratio
        self.border_frames = border_frames
        self.batch_size = batch_size
        self.stride = stride
        self.max_patches = max_patches

    def _grid_and_magnitude(
        self, video: Frames, magnitude: Frames | None, progress: bool = False
    ) -> tuple[CandidateGrid, Frames]:
        """Check ``video``, build its candidate grid (size checks before the network runs),
        then run the BME unless ``magnitude`` maps ``(T, 1, H, W)`` are given (checked)."""
        validate_video(video)
        grid = candidate_grid(
            video.shape[0],
            video.shape[2],
            video.shape[3],
            patch_size=self.patch_size,
            stride=self.stride,
            border_frames=self.border_frames,
        )
        if magnitude is None:
            magnitude = estimate_magnitude(
                self.bme, video, batch_size=self.batch_size, progress=progress
            )
        else:
            _validate_magnitude(magnitude, tuple(video.shape))
        return grid, magnitude


@DETECTORS.register("relative_sharpness")
class RelativeSharpnessDetector(_GridPatchSelector):
    """The paper's RSDM (:class:`~ttblur.protocols.SharpnessDetector`): BME + adaptive threshold.

    Args:
        bme: magnitude predictor: a :class:`BlurMagnitudeEstimator` or any callable
            ``frames (N, 3, H, W) -> (N, 1, H, W)`` px (e.g. ground truth in tests); ``None``
            loads the shipped ``bme-lite`` weights.
        patch_size: side of a pseudo-sharp patch, px (paper: 256).
        ratio: share of candidate patches kept (paper: 0.2).
        border_frames: frames skipped at each end (2: DBCGM uses t-2..t+2).
        tolerance: stop the search within ``tolerance * candidates`` of the target.
        batch_size: frames per BME call.
        stride: candidate grid spacing, default ``patch_size // 2``.
        min_coverage: share of sharp pixels a placed patch needs.
        max_iterations: bisection cap.
        max_patches: keep at most this many patches (the sharpest).

    Example:
        >>> import torch
        >>> from ttblur import RelativeSharpnessDetector
        >>> magnitude = torch.linspace(0, 9, 10).view(10, 1, 1, 1).expand(10, 1, 32, 32)
        >>> det = RelativeSharpnessDetector(bme=lambda f: f[:, :1] * 0, patch_size=16, ratio=0.2)
        >>> sel = det.select(torch.rand(10, 3, 32, 32), magnitude=magnitude.clone())
        >>> sel.candidates, len(sel), [p.frame for p in sel.patches].count(2)
        (54, 11, 9)
    """

    def __init__(
        self,
        bme: BlurMagnitudeEstimator | MagnitudeFn | None = None,
        *,
        patch_size: int = _DEFAULTS.patch_size,
        ratio: float = _DEFAULTS.ratio,
        border_frames: int = _DEFAULTS.border_frames,
        tolerance: float = _DEFAULTS.tolerance,
        batch_size: int = _DEFAULTS.batch_size,
        stride: int | None = None,
        min_coverage: float = 0.75,
        max_iterations: int = 40,
        max_patches: int | None = _DEFAULTS.max_patches,
    ) -> None:
        super().__init__(
            bme,
            patch_size=patch_size,
            ratio=ratio,
            border_frames=border_frames,
            batch_size=batch_size,
            stride=stride,
            max_patches=max_patches,
        )
        self.tolerance = tolerance
        self.min_coverage = min_coverage
        self.max_iterations = max_iterations

    @classmethod
    def from_config(
        cls, section: RSDMConfig, device: str | torch.device | None = None
    ) -> RelativeSharpnessDetector:
        """Build from ``AdaptConfig.rsdm``; loads BME weights from ``section.weights`` (None:
        the shipped default) onto ``device`` (None: CPU)."""
        return cls(
            _load_bme(section, device), tolerance=section.tolerance, **_grid_settings(section)
        )

    def __repr__(self) -> str:
        return (
            f"RelativeSharpnessDetector(patch_size={self.patch_size}, ratio={self.ratio}, "
            f"border_frames={self.border_frames}, tolerance={self.tolerance})"
        )

    def select(
        self, video: Frames, magnitude: Frames | None = None, *, progress: bool = False
    ) -> Selection:
        """Choose the relatively sharp patches of ``video``.

        Args:
            video: ``(T, 3, H, W)`` float RGB in ``[0, 1]``, ``T > 2 * border_frames``,
                ``H, W >= patch_size``.
            magnitude: optional precomputed ``(T, 1, H, W)`` maps in px (skips the BME).
            progress: show progress bars of the blur magnitude pass and the threshold search.

        Returns:
            :class:`Selection`: patches (sharpest first), ``magnitude`` ``(T, 1, H, W)`` px,
            the threshold in px, the number of candidates and search details in ``info``.

        Raises:
            ValueError: invalid video or maps, too few frames, frames smaller than a patch.
        """
        _, magnitude = self._grid_and_magnitude(video, magnitude, progress)
        return select_relatively_sharp(
            magnitude,
            patch_size=self.patch_size,
            ratio=self.ratio,
            border_frames=self.border_frames,
            stride=self.stride,
            tolerance=self.tolerance,
            min_coverage=self.min_coverage,
            max_iterations=self.max_iterations,
            max_patches=self.max_patches,
            progress=progress,
        )


@DETECTORS.register("random")
class RandomPatchSelector(_GridPatchSelector):
    """Ablation :class:`~ttblur.protocols.SharpnessDetector`: random candidate patches.

    Keeps ``k = max(1, round(ratio * candidates))`` patches of the same candidate grid as
    :class:`RelativeSharpnessDetector`, drawn uniformly without replacement with
    ``numpy.random.default_rng(seed)``, returned in frame, row, column order. It still runs
    the BME: the magnitude maps are part of the :class:`Selection` because DBCGM needs them.

    Args:
        bme: as for :class:`RelativeSharpnessDetector` (``None``: shipped weights).
        patch_size, ratio, border_frames, batch_size, stride, max_patches: as there.
        seed: seed of the draw.
    """

    def __init__(
        self,
        bme: BlurMagnitudeEstimator | MagnitudeFn | None = None,
        *,
        patch_size: int = _DEFAULTS.patch_size,
        ratio: float = _DEFAULTS.ratio,
        border_frames: int = _DEFAULTS.border_frames,
        batch_size: int = _DEFAULTS.batch_size,
        stride: int | None = None,
        seed: int = 0,
        max_patches: int | None = _DEFAULTS.max_patches,
    ) -> None:
        super().__init__(
            bme,
            patch_size=patch_size,
            ratio=ratio,
            border_frames=border_frames,
            batch_size=batch_size,
            stride=stride,
            max_patches=max_patches,
        )
        self.seed = seed

    @classmethod
    def from_config(
        cls, section: RSDMConfig, seed: int = 0, device: str | torch.device | None = None
    ) -> RandomPatchSelector:
        """Build from ``AdaptConfig.rsdm`` (BME weights as for the RSDM) with ``seed``."""
        return cls(_load_bme(section, device), seed=seed, **_grid_settings(section))

    def __repr__(self) -> str:
        return (
            f"RandomPatchSelector(patch_size={self.patch_size}, ratio={self.ratio}, "
            f"border_frames={self.border_frames}, seed={self.seed})"
        )

    def select(
        self, video: Frames, magnitude: Frames | None = None, *, progress: bool = False
    ) -> Selection:
        """Draw random candidate patches of ``video`` (arguments as
        :meth:`RelativeSharpnessDetector.select`)."""
        grid, magnitude = self._grid_and_magnitude(video, magnitude, progress)
        target = grid.target_count(self.ratio)
        rng = np.random.default_rng(self.seed)
        chosen = rng.choice(len(grid), size=target, replace=False)  # in random order
        if self.max_patches is not None:
            chosen = chosen[: self.max_patches]  # a uniform subset, not the earliest frames
        chosen = np.sort(chosen)
        return Selection(
            patches=[grid.location(int(i)) for i in chosen],
            magnitude=magnitude.detach().float().cpu(),
            threshold=None,
            candidates=len(grid),
            info={"target": float(target)},
        )
