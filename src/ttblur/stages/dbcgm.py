"""Domain-adaptive blur condition generation (DBCGM) and its ablations.

A :class:`~ttblur.protocols.ConditionGenerator` turns each pseudo-sharp patch chosen by the
sharpness detector into a pixel-wise blur condition map ``(3, p, p)``: channels x, y are the
unit blur direction, z = ``M'``, the blur magnitude in pixels.

:class:`DomainBlurConditionGenerator` (the paper's DBCGM), for a patch at frame ``t`` with
``k = neighbours`` (2 in the paper):

1. **Direction.** The optical flows between co-located boxes of consecutive frames
   ``t-k .. t+k`` are summed at each pixel, ``F = sum_{n=-k}^{k-1} f(S_{t+n}, S_{t+n+1})``
   (paper Eq. 3). The flows are added at the *same pixel*, not chained along the trajectory,
   exactly as the formula says. The direction is ``F / |F|``. Where ``|F| < min_flow`` px the
   direction is unreliable and falls back to the patch's mean flow direction
   ``mean(F) / |mean(F)|``, or to ``(1, 0)`` if the mean flow is zero too.
2. **Magnitude** (paper Eq. 5, official code): with ``M_s`` the detector's per-pixel magnitude
   map of frame ``s`` (``selection.magnitude``, px),
   ``M' = M_t / max(M_t) * mean_{s in neighbours}(M_s) + offset``. As in the official code the
   neighbour average is taken *per pixel* over the four maps (not over scalars), the maximum
   is taken over the whole frame ``t`` (``normalize_over="frame"``; ``"patch"`` uses the
   patch's maximum instead) and ``offset`` is 10 px in the official code (the defaults here
   are ``DBCGMConfig``'s: 3 px, with ``motion_cap``, which bounds ``M'`` by the per-frame
   motion ``|F| / n``, and the exposure magnitude: see ``docs/results.md``). A
   frame whose map is zero everywhere has ``M_t / max(M_t) = 1`` (the limit for a constant
   map). Everything is then cropped at the patch box.
3. **Condition.** ``(x, y, M')`` with ``M'`` in pixels (no cap); the official code stored
   ``min(M' / 205, 1)``. A synthesizer trained on a normalised scale converts at its input
   (ID-Blau: :class:`~ttblur.stages.idblau.IDBlau`).

Frames near the ends of the video use the neighbours that exist: flows are accumulated over the
frame pairs inside ``[0, T-1]`` only and magnitudes are averaged over the existing neighbour
frames only (the official code instead falls back to ``M_t + offset`` for the first and last two
frames; here that happens only when a video has a single frame). RSDM skips the first and last
``k`` frames, so with the default pipeline every patch has all its neighbours.

Flow is not computed on the bare patch: each frame pair's flow is computed once, over the union
of the boxes of all patches that need that pair, each enlarged by ``context`` px (clamped to the
frame), cached and cropped back to every patch. Overlapping patches and patches of nearby frames
therefore never recompute a pair (``flow_computations`` counts the pairs computed). Patches are
processed in frame order and pairs are evicted once no later patch needs them, so at most
``2k`` flow fields are held at a time.

Differences from the official code (documented in ``docs/dbcgm.md``): it ran RAFT on full
frames and used ``(f(t, t+1) - f(t, t-1)) / 2`` (one neighbour on each side) as the direction;
here the paper's sum over ``t-k .. t+k`` is used on context windows, with a pluggable flow
estimator (OpenCV DIS by default).

Ablations with the same interface (paper Table 2): :class:`FlowOnlyCondition` ("Optical-Flow":
direction and magnitude from the accumulated flow alone) and :class:`RandomCondition`
("Random blur").

Example:
    >>> import torch
    >>> from ttblur.types import PatchLocation, Selection
    >>> from ttblur.stages.dbcgm import DomainBlurConditionGenerator
    >>> video = torch.rand(5, 3, 64, 64)
    >>> selection = Selection([PatchLocation(2, 8, 8, 32)], torch.full((5, 1, 64, 64), 20.0))
    >>> DomainBlurConditionGenerator()(video, selection).maps.shape
    torch.Size([1, 3, 32, 32])
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Literal

import torch
from torch import Tensor

from ttblur.config import DBCGMConfig
from ttblur.io.frame_store import Frames, per_frame
from ttblur.registry import CONDITION_GENERATORS as _GENERATORS
from ttblur.stages.conditions import (
    adapt_magnitude,
    blur_direction,
    condition_map,
    flow_length,
    match_video_blur,
    neighbour_frames,
    neighbour_pairs,
    video_blur_samples,
)
from ttblur.stages.exposure import estimate_exposure
from ttblur.stages.flow import build_flow
from ttblur.stages.seeded import SeededStage
from ttblur.types import (
    BlurConditions,
    ConditionGenerator,
    ExposureEstimate,
    FlowEstimator,
    PatchLocation,
    Selection,
    check_map_shape,
    finite_range,
    validate_video,
    warn_mag_norm_ignored,
)

__all__ = [
    "CONDITION_GENERATORS",
    "DomainBlurConditionGenerator",
    "FlowOnlyCondition",
    "RandomCondition",
    "adapt_magnitude",
    "blur_direction",
    "build_condition_generator",
    "condition_map",
    "match_video_blur",
    "neighbour_frames",
    "neighbour_pairs",
    "video_blur_samples",
]

#: Names accepted by :func:`build_condition_generator` (``DBCGMConfig.name``).
CONDITION_GENERATORS = ("dbcgm", "flow_only", "random")
#: The ``dbcgm`` section's defaults are the generators' constructor defaults (one source).
_DEFAULTS = DBCGMConfig()


# --------------------------------------------------------------------------------------------
# Input checks


def _validate_patches(patches: Sequence[PatchLocation], video: Frames) -> int:
    """Check that every patch lies inside the video; return the common patch size (0: none)."""
    num_frames, _, height, width = video.shape
    sizes = {p.size for p in patches}
    if len(sizes) > 1:
        raise ValueError(f"all patches must have the same size, got sizes {sorted(sizes)}")
    for p in patches:
        if p.frame >= num_frames or p.bottom > height or p.right > width:
            raise ValueError(
                f"patch {p} does not fit in a video of {num_frames} frames of {height}x{width}"
            )
    return sizes.pop() if sizes else 0


def _validate_magnitude(magnitude: Frames, video: Frames) -> None:
    if not isinstance(magnitude, Frames):
        raise ValueError(f"selection.magnitude must be a tensor, got {type(magnitude).__name__}")
    check_map_shape(magnitude, tuple(video.shape), "selection.magnitude")
    if not magnitude.is_floating_point():
        raise ValueError(f"selection.magnitude must be floating point, got {magnitude.dtype}")
    low = finite_range(magnitude, "selection.magnitude")[0] if magnitude.numel() else 0.0
    if low < 0:
        raise ValueError(f"selection.magnitude must be >= 0 px, got minimum {low:.4g}")


# --------------------------------------------------------------------------------------------
# Accumulated flow per patch, with a per-pair cache


_Box = tuple[int, int, int, int]  # top, left, bottom, right
_MagnitudeFn = Callable[[Tensor, Tensor], Tensor]


class _TemporalFlow:
    """Accumulates the flows of frame pairs around each patch (shared by DBCGM and FlowOnly)."""

    def __init__(
        self,
        flow: FlowEstimator | None,
        neighbours: int,
        context: int,
        min_flow: float,
    ) -> None:
        if neighbours < 1:
            raise ValueError(f"neighbours must be >= 1, got {neighbours}")
        if context < 0:
            raise ValueError(f"context must be >= 0 px, got {context}")
        if not (math.isfinite(min_flow) and min_flow >= 0):
            raise ValueError(f"min_flow must be a finite number >= 0, got {min_flow}")
        if flow is not None and not callable(flow):
            raise ValueError(f"flow must be a FlowEstimator (callable), got {type(flow).__name__}")
        self.flow: FlowEstimator = flow if flow is not None else build_flow(DBCGMConfig())
        self.neighbours = int(neighbours)
        self.context = int(context)
        self.min_flow = float(min_flow)
        #: Frame pairs whose flow was computed, summed over all calls.
        self.flow_computations = 0
        #: Statistics of the last call: ``patches``, ``flow_pairs``, ``flow_batches``,
        #: ``fallback_fraction`` (share of pixels whose direction fell back) and more.
        self.last_stats: dict[str, float] = {}

    def _union_boxes(
        self, patches: Sequence[PatchLocation], num_frames: int, height: int, width: int
    ) -> dict[int, _Box]:
        boxes: dict[int, _Box] = {}
        c = self.context
        for p in patches:
            box = (
                max(p.top - c, 0),
                max(p.left - c, 0),
                min(p.bottom + c, height),
                min(p.right + c, width),
            )
            for a in neighbour_pairs(p.frame, num_frames, self.neighbours):
                old = boxes.get(a)
                if old is not None:
                    box_a = (
                        min(old[0], box[0]),
                        min(old[1], box[1]),
                        max(old[2], box[2]),
                        max(old[3], box[3]),
                    )
                else:
                    box_a = box
                boxes[a] = box_a
        return boxes

    def _compute_pairs(
        self, video: Frames, pairs: list[int], boxes: dict[int, _Box], cache: dict[int, Tensor]
    ) -> int:
        """Compute the flows of ``pairs`` (grouped by box size into batches); return #batches."""
        groups: dict[tuple[int, int], list[int]] = {}
        for a in pairs:
            top, left, bottom, right = boxes[a]
            groups.setdefault((bottom - top, right - left), []).append(a)
        for (bh, bw), members in groups.items():
            src = torch.stack([self._crop(video[a], boxes[a]) for a in members])
            dst = torch.stack([self._crop(video[a + 1], boxes[a]) for a in members])
            out = self.flow(src, dst)
            if not isinstance(out, Tensor) or tuple(out.shape) != (len(members), 2, bh, bw):
                got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
                raise ValueError(
                    f"flow estimator {self.flow!r} returned {got}, expected "
                    f"{(len(members), 2, bh, bw)}"
                )
            out = out.to(device=video.device, dtype=torch.float32)
            for i, a in enumerate(members):
                cache[a] = out[i]
        self.flow_computations += len(pairs)
        return len(groups)

    @staticmethod
    def _crop(frame: Tensor, box: _Box) -> Tensor:
        top, left, bottom, right = box
        return frame[:, top:bottom, left:right]

    def accumulated_flow(
        self, video: Frames, patches: Sequence[PatchLocation]
    ) -> tuple[Tensor, Tensor]:
        """Sum of per-pair flows at each patch pixel.

        Returns:
            ``F`` ``(N, 2, p, p)`` px on the video's device, and the number of pairs summed
            for each patch ``(N,)`` (int64).
        """
        num_frames, _, height, width = video.shape
        size = patches[0].size
        boxes = self._union_boxes(patches, num_frames, height, width)
        order = sorted(range(len(patches)), key=lambda i: (patches[i].frame, i))
        total = torch.zeros(len(patches), 2, size, size, dtype=torch.float32, device=video.device)
        counts = torch.zeros(len(patches), dtype=torch.int64)
        cache: dict[int, Tensor] = {}
        computed = batches = 0
        for i in order:
            p = patches[i]
            pairs = neighbour_pairs(p.frame, num_frames, self.neighbours)
            # Pairs before t - k are not needed by this or any later patch (frame order).
            for a in [a for a in cache if a < p.frame - self.neighbours]:
                del cache[a]
            missing = [a for a in pairs if a not in cache]
            if missing:
                batches += self._compute_pairs(video, missing, boxes, cache)
                computed += len(missing)
            for a in pairs:
                top, left, _, _ = boxes[a]
                y, x = p.top - top, p.left - left
                total[i] += cache[a][:, y : y + size, x : x + size]
            counts[i] = len(pairs)
        self.last_stats = {
            "patches": float(len(patches)),
            "flow_pairs": float(computed),
            "flow_batches": float(batches),
        }
        return total, counts

    def _conditions(
        self,
        video: Frames,
        selection: Selection,
        magnitude_fn: _MagnitudeFn,
        *,
        min_frames: int = 1,
    ) -> Tensor:
        """Accumulate flow around every patch of an already validated ``video`` and stack the
        conditions.

        ``magnitude_fn(norm, counts)`` gets the length ``|F|`` ``(N, 1, p, p)`` px of the
        accumulated flow and the pairs summed per patch ``(N,)`` and returns the magnitude
        ``(N, 1, p, p)`` px. ``min_frames``: fewest frames a video with patches must have.
        """
        patches = list(selection.patches)
        _validate_patches(patches, video)
        if not patches:
            self.last_stats = {"patches": 0.0, "flow_pairs": 0.0, "flow_batches": 0.0}
            return _empty_output(video)
        if video.shape[0] < min_frames:
            raise ValueError(f"{type(self).__name__} needs a video of at least {min_frames} frames")
        total, counts = self.accumulated_flow(video, patches)
        direction = blur_direction(total, self.min_flow)
        norm = flow_length(total)
        magnitude = magnitude_fn(norm, counts)
        condition = condition_map(direction, magnitude)
        self.last_stats.update(
            fallback_fraction=float(((norm < self.min_flow) | (norm == 0)).float().mean()),
            mean_z=float(condition[:, 2].mean()),
            mean_magnitude_px=float(magnitude.mean()),
        )
        return condition


def _map_crops(
    maps: Frames, patches: Sequence[PatchLocation], neighbours: int
) -> tuple[list[Tensor], list[Tensor], list[bool]]:
    """Every patch's crop of its frame's map ``(1, p, p)``, the per-pixel mean of its
    :func:`neighbour_frames` maps' crops (zeros when it has none; ``neighbours = 0``: zeros)
    and whether it has none, in the order of ``patches``.

    Reads each frame's map once, visiting the patches by frame and holding at most
    ``2 * neighbours + 1`` maps (``maps`` may be a disk-backed store).
    """
    num_frames = maps.shape[0]
    own: list[Tensor] = [torch.empty(0)] * len(patches)
    mean: list[Tensor] = [torch.empty(0)] * len(patches)
    lonely = [True] * len(patches)
    held: dict[int, Tensor] = {}
    for i in sorted(range(len(patches)), key=lambda k: patches[k].frame):
        patch = patches[i]
        frames = neighbour_frames(patch.frame, num_frames, neighbours) if neighbours else []
        oldest = min([patch.frame, *frames])
        for t in [t for t in held if t < oldest]:
            del held[t]
        for t in [patch.frame, *frames]:
            if t not in held:
                held[t] = maps[t]
        own[i] = patch.crop(held[patch.frame])
        lonely[i] = not frames
        mean[i] = (
            torch.stack([patch.crop(held[t]) for t in frames]).mean(dim=0)
            if frames
            else torch.zeros_like(own[i])
        )
    return own, mean, lonely


def _per_frame_motion(norm: Tensor, counts: Tensor) -> Tensor:
    """Mean per-frame motion ``|F| / n`` ``(N, 1, p, p)`` px from ``|F|`` and ``n`` per patch."""
    return norm / counts.to(device=norm.device, dtype=torch.float32).view(-1, 1, 1, 1)


def _empty_output(video: Frames) -> Tensor:
    return torch.zeros(0, 3, 0, 0, dtype=torch.float32, device=video.device)


# --------------------------------------------------------------------------------------------
# Condition generators


@_GENERATORS.register("dbcgm")
class DomainBlurConditionGenerator(_TemporalFlow):
    """The paper's DBCGM: flow direction over ``t-k..t+k`` + BME magnitude adaptation.

    Implements :class:`~ttblur.protocols.ConditionGenerator`. See the module docstring for the
    formulas, the fallbacks and the per-pair flow cache.

    Every default that :class:`~ttblur.config.DBCGMConfig` has a field for is read from it
    (one source), so the class alone behaves as ``ttblur.adapt`` does; pass
    ``magnitude="bme", magnitude_offset=10.0, motion_cap=False`` for the official code.

    Args:
        mag_norm: deprecated and ignored (DeprecationWarning): z is the blur length in px.
        flow: the :class:`~ttblur.protocols.FlowEstimator`; ``None``: ``OpenCVFlow("medium")``.
        neighbours: ``k``, frames used on each side of ``t`` (paper: 2).
        context: margin in px around each patch over which flow is computed.
        magnitude_offset: px added to the adapted magnitude (official code: 10).
        min_flow: ``|F|`` in px below which the direction falls back.
        normalize_over: ``"frame"`` (official code: ``M_t / max`` over the whole frame) or
            ``"patch"`` (maximum over the patch only).
        motion_cap: cap ``M'`` per pixel by the mean per-frame motion ``|F| / n`` (``n`` frame
            pairs summed): an exposure no longer than the frame interval cannot blur further
            than the image moves in one interval (the official code has none; see
            ``docs/results.md``).
        magnitude: ``"bme"`` (the paper's magnitude adaptation above) or ``"exposure"``: every
            patch gets the video's blur length ``rho * m``, the exposure ratio fitted at the
            pseudo-sharp patches times the video's motion per frame
            (:func:`~ttblur.stages.exposure.estimate_exposure`; the BME maps are then used
            only if no neighbour moves enough to fit ``rho``). Offset and cap do not apply.
        seed: seed of the exposure fit's noise draws.

    Attributes:
        flow_computations: frame pairs whose flow was computed, summed over all calls.
        last_stats: statistics of the last call (``patches``, ``flow_pairs``,
            ``flow_batches``, ``fallback_fraction``, ``mean_z`` (px), ``mean_magnitude_px``).

    Example:
        >>> import torch
        >>> from ttblur import DomainBlurConditionGenerator
        >>> from ttblur.types import PatchLocation, Selection
        >>> gen = DomainBlurConditionGenerator(
        ...     magnitude="bme", magnitude_offset=10.0, motion_cap=False
        ... )
        >>> video = torch.rand(5, 3, 48, 48)
        >>> sel = Selection([PatchLocation(2, 0, 0, 32)], torch.full((5, 1, 48, 48), 30.0))
        >>> cond = gen(video, sel).maps
        >>> round(float(cond[0, 2, 0, 0]), 4)   # 30 / 30 * 30 + 10 px
        40.0
    """

    def __init__(
        self,
        mag_norm: float | None = None,
        *,
        flow: FlowEstimator | None = None,
        neighbours: int = _DEFAULTS.neighbours,
        context: int = _DEFAULTS.context,
        magnitude_offset: float = _DEFAULTS.magnitude_offset,
        min_flow: float = _DEFAULTS.min_flow,
        normalize_over: Literal["frame", "patch"] = "frame",
        motion_cap: bool = _DEFAULTS.motion_cap,
        magnitude: Literal["bme", "exposure"] = _DEFAULTS.magnitude,
        lengths: Literal["patch", "video"] = _DEFAULTS.lengths,
        identity_px: float = _DEFAULTS.identity_px,
        seed: int = 0,
    ) -> None:
        if magnitude not in ("bme", "exposure"):
            raise ValueError(f"magnitude must be 'bme' or 'exposure', got {magnitude!r}")
        if lengths not in ("patch", "video"):
            raise ValueError(f"lengths must be 'patch' or 'video', got {lengths!r}")
        if not (math.isfinite(identity_px) and identity_px >= 0):
            raise ValueError(f"identity_px must be a finite number >= 0, got {identity_px}")
        if not (math.isfinite(magnitude_offset) and magnitude_offset >= 0):
            raise ValueError(
                f"magnitude_offset must be a finite number >= 0, got {magnitude_offset}"
            )
        if normalize_over not in ("frame", "patch"):
            raise ValueError(f"normalize_over must be 'frame' or 'patch', got {normalize_over!r}")
        warn_mag_norm_ignored("DomainBlurConditionGenerator", mag_norm)
        super().__init__(flow, neighbours, context, min_flow)
        self.magnitude_offset = float(magnitude_offset)
        self.normalize_over = normalize_over
        self.motion_cap = bool(motion_cap)
        self.magnitude = magnitude
        self.lengths = lengths
        self.identity_px = float(identity_px)
        self.seed = int(seed)

    @classmethod
    def from_config(
        cls,
        section: DBCGMConfig,
        mag_norm: float | None = None,
        flow: FlowEstimator | None = None,
        *,
        seed: int = 0,
    ) -> DomainBlurConditionGenerator:
        """Build from the ``dbcgm`` section of :class:`~ttblur.config.AdaptConfig`.

        Uses ``neighbours``, ``context``, ``magnitude``, ``magnitude_offset``, ``min_flow``,
        ``motion_cap`` and, when ``flow`` is None, ``flow`` / ``flow_preset`` /
        ``flow_weights`` via :func:`~ttblur.stages.flow.build_flow`. ``seed``: the exposure
        fit's noise draws. ``mag_norm``: deprecated and ignored (DeprecationWarning).
        """
        warn_mag_norm_ignored("DomainBlurConditionGenerator.from_config", mag_norm)
        return cls(
            flow=flow if flow is not None else build_flow(section),
            neighbours=section.neighbours,
            context=section.context,
            magnitude_offset=section.magnitude_offset,
            min_flow=section.min_flow,
            motion_cap=section.motion_cap,
            magnitude=section.magnitude,
            lengths=section.lengths,
            identity_px=section.identity_px,
            seed=seed,
        )

    def __repr__(self) -> str:
        return (
            f"DomainBlurConditionGenerator(flow={self.flow!r}, "
            f"neighbours={self.neighbours}, context={self.context}, "
            f"magnitude_offset={self.magnitude_offset}, min_flow={self.min_flow}, "
            f"normalize_over={self.normalize_over!r}, motion_cap={self.motion_cap}, "
            f"magnitude={self.magnitude!r}, lengths={self.lengths!r}, "
            f"identity_px={self.identity_px})"
        )

    def adapted_magnitude(self, selection: Selection, device: torch.device) -> Tensor:
        """``M'`` in pixels for every patch of ``selection``: ``(N, 1, p, p)``.

        Expects ``selection.magnitude`` already validated against the video
        (``(T, 1, H, W)``, finite, ``>= 0``).
        """
        magnitude = selection.magnitude.detach().to(device=device, dtype=torch.float32)
        frame_max = (
            per_frame(magnitude, lambda maps: maps.amax(dim=(1, 2, 3)))
            if self.normalize_over == "frame"
            else None
        )
        current, neighbour_mean, lonely = _map_crops(magnitude, selection.patches, self.neighbours)
        peaks = [
            frame_max[p.frame] if frame_max is not None else cur.amax()
            for p, cur in zip(selection.patches, current)
        ]
        cur_t = torch.stack(current)
        adapted = adapt_magnitude(
            cur_t,
            torch.stack(neighbour_mean),
            current_max=torch.stack(peaks),
            offset=self.magnitude_offset,
        )
        # A single-frame video has no neighbour: the official border rule, M_t + offset.
        no_neighbour = torch.tensor(lonely, device=device)
        return torch.where(no_neighbour.view(-1, 1, 1, 1), cur_t + self.magnitude_offset, adapted)

    def video_lengths(self, adapted: Tensor, selection: Selection) -> Tensor:
        """``lengths="video"``: :func:`match_video_blur` of the adapted lengths ``(N, 1, p, p)``
        onto the blur of the whole video (blocks of half a patch side of every frame's BME
        map), each patch's own BME blur removed."""
        magnitude = selection.magnitude.detach().to(adapted.device, torch.float32)
        crops, _, _ = _map_crops(magnitude, selection.patches, 0)
        own = torch.stack([crop.mean() for crop in crops])
        size = selection.patches[0].size
        samples = video_blur_samples(magnitude, max(size // 2, 1))
        return match_video_blur(adapted, own, samples, identity_px=self.identity_px)

    def __call__(self, video: Frames, selection: Selection) -> BlurConditions:
        """Blur conditions for ``selection.patches``.

        Args:
            video: ``(T, 3, H, W)`` float RGB in ``[0, 1]``.
            selection: patches (all of one size ``p``) and per-frame magnitude maps
                ``(T, 1, H, W)`` in px.

        Returns:
            :class:`~ttblur.types.BlurConditions`: ``maps`` (x, y unit direction, z =
            ``M'`` in pixels, float32 on the video's device, ``(0, 3, 0, 0)`` when
            there are no patches) and ``exposure``, the
            :class:`~ttblur.types.ExposureEstimate` fitted with ``magnitude="exposure"``
            (else ``None``).

        Shape:
            - video: ``(T, 3, H, W)``; selection.magnitude: ``(T, 1, H, W)``.
            - maps: ``(N, 3, p, p)``.

        Raises:
            ValueError: invalid video, magnitude maps or patches, or a flow estimator returning
                the wrong shape.
        """
        validate_video(video)
        _validate_magnitude(selection.magnitude, video)
        fitted: list[ExposureEstimate] = []

        def magnitude(norm: Tensor, counts: Tensor) -> Tensor:
            # Called once the patches are validated (and only if there are any).
            if self.magnitude == "exposure" and video.shape[0] >= 2:
                exposure = estimate_exposure(
                    video,
                    list(selection.patches),
                    self.flow,
                    magnitude=selection.magnitude,
                    seed=self.seed,
                )
                fitted.append(exposure)
                if exposure.blur_px is not None:
                    return torch.full_like(norm, exposure.blur_px)
            adapted = self.adapted_magnitude(selection, video.device)
            if self.motion_cap:
                # An exposure no longer than the frame interval cannot blur more than the image
                # moves in one interval: cap M' by the mean per-frame motion |F| / n.
                # A lone frame has no pair, hence no motion to bound its blur by (0 / 0).
                cap = _per_frame_motion(norm, counts.clamp_min(1))
                moved = (counts > 0).to(adapted.device).view(-1, 1, 1, 1)
                adapted = torch.where(moved, torch.minimum(adapted, cap), adapted)
            if self.lengths == "video":
                adapted = self.video_lengths(adapted, selection)
            return adapted

        maps = self._conditions(video, selection, magnitude)
        return BlurConditions(maps, fitted[0] if fitted else None)


@_GENERATORS.register("flow_only")
class FlowOnlyCondition(_TemporalFlow):
    """Ablation "Optical-Flow" (paper Table 2): direction *and* magnitude from optical flow.

    The direction is computed exactly as in :class:`DomainBlurConditionGenerator`. The
    magnitude ignores the detector's maps: it is the per-frame motion ``|F| / n`` in pixels,
    where ``F`` is the flow summed over the ``n`` frame pairs around the patch (``n = 2k``
    away from the video's ends), i.e. the mean inter-frame displacement. This assumes the
    exposure spans the whole frame interval, which is what makes the ablation overestimate blur
    on short-exposure domains. No offset is added.

    Args:
        mag_norm: deprecated and ignored (DeprecationWarning): z is the blur length in px.
        flow: the flow estimator; ``None``: ``OpenCVFlow("medium")``.
        neighbours: ``k``, frames on each side of ``t``.
        context: margin in px around each patch over which flow is computed.
        min_flow: ``|F|`` in px below which the direction falls back.
    """

    def __init__(
        self,
        mag_norm: float | None = None,
        *,
        flow: FlowEstimator | None = None,
        neighbours: int = _DEFAULTS.neighbours,
        context: int = _DEFAULTS.context,
        min_flow: float = _DEFAULTS.min_flow,
    ) -> None:
        warn_mag_norm_ignored("FlowOnlyCondition", mag_norm)
        super().__init__(flow, neighbours, context, min_flow)

    @classmethod
    def from_config(
        cls,
        section: DBCGMConfig,
        mag_norm: float | None = None,
        flow: FlowEstimator | None = None,
    ) -> FlowOnlyCondition:
        """Build from the ``dbcgm`` section (``neighbours``, ``context``, ``min_flow``, flow).
        ``mag_norm``: deprecated and ignored (DeprecationWarning)."""
        warn_mag_norm_ignored("FlowOnlyCondition.from_config", mag_norm)
        return cls(
            flow=flow if flow is not None else build_flow(section),
            neighbours=section.neighbours,
            context=section.context,
            min_flow=section.min_flow,
        )

    def __repr__(self) -> str:
        return (
            f"FlowOnlyCondition(flow={self.flow!r}, "
            f"neighbours={self.neighbours}, context={self.context}, min_flow={self.min_flow})"
        )

    def __call__(self, video: Frames, selection: Selection) -> Tensor:
        """Blur conditions from flow alone (``selection.magnitude`` is not used).

        Args:
            video: ``(T, 3, H, W)`` float RGB in ``[0, 1]`` with ``T >= 2``.
            selection: patches, all of one size ``p``.

        Returns:
            ``(N, 3, p, p)`` float32: x, y unit direction, z = ``|F| / n`` in pixels;
            ``(0, 3, 0, 0)`` when there are no patches.
        """
        validate_video(video)
        return self._conditions(video, selection, _per_frame_motion, min_frames=2)


@_GENERATORS.register("random")
class RandomCondition(SeededStage):
    """Ablation "Random blur" (paper Table 2): a random condition per patch.

    Each patch gets one direction with angle uniform in ``[0, 2π)`` and one blur length ``z``
    (px) uniform in ``magnitude_range``, constant over the patch (like a uniform camera shake). The
    video and the magnitude maps are not used beyond input checks. Draws come from a CPU
    ``torch.Generator`` seeded at construction that advances from call to call, so a sequence of
    calls is reproducible for a given seed and independent of the device.

    Args:
        magnitude_range: ``(low, high)`` range of ``z`` in pixels, ``0 <= low <= high``
            (``DBCGMConfig.random_magnitude``; ``(0, 147)`` by default, the normalised
            ``(0, 1)`` of ID-Blau's 147 px scale).
        seed: seed of the generator.
    """

    def __init__(
        self, magnitude_range: tuple[float, float] = _DEFAULTS.random_magnitude, *, seed: int = 0
    ) -> None:
        low, high = (float(v) for v in magnitude_range)
        if not (math.isfinite(low) and math.isfinite(high) and 0.0 <= low <= high):
            raise ValueError(
                f"magnitude_range must satisfy 0 <= low <= high (px), finite, got {magnitude_range}"
            )
        self.magnitude_range = (low, high)
        self.seed = int(seed)
        self.reseed()
        self.last_stats: dict[str, float] = {}

    @classmethod
    def from_config(
        cls, section: DBCGMConfig, mag_norm: float | None = None, *, seed: int = 0
    ) -> RandomCondition:
        """Build from the ``dbcgm`` section (``random_magnitude``).

        ``mag_norm``: deprecated and ignored (DeprecationWarning).
        """
        warn_mag_norm_ignored("RandomCondition.from_config", mag_norm)
        return cls(section.random_magnitude, seed=seed)

    def __repr__(self) -> str:
        return f"RandomCondition(magnitude_range={self.magnitude_range}, seed={self.seed})"

    def __call__(self, video: Frames, selection: Selection) -> Tensor:
        """Random blur conditions for ``selection.patches``.

        Args:
            video: ``(T, 3, H, W)`` float RGB in ``[0, 1]``.
            selection: patches, all of one size ``p``.

        Returns:
            ``(N, 3, p, p)`` float32 on the video's device, constant over each patch;
            ``(0, 3, 0, 0)`` when there are no patches.
        """
        validate_video(video)
        patches = list(selection.patches)
        size = _validate_patches(patches, video)
        if not patches:
            return _empty_output(video)
        n = len(patches)
        angle = torch.rand(n, generator=self.generator) * (2 * math.pi)
        low, high = self.magnitude_range
        z = low + (high - low) * torch.rand(n, generator=self.generator)
        values = torch.stack([torch.cos(angle), torch.sin(angle), z], dim=1)  # (N, 3)
        condition = values.view(n, 3, 1, 1).expand(n, 3, size, size).contiguous()
        self.last_stats = {"patches": float(n), "mean_z": float(z.mean())}
        return condition.to(video.device)


def build_condition_generator(
    section: DBCGMConfig,
    mag_norm: float | None = None,
    flow: FlowEstimator | None = None,
    seed: int = 0,
) -> ConditionGenerator:
    """The condition generator named by ``section.name``.

    Args:
        section: the ``dbcgm`` section of :class:`~ttblur.config.AdaptConfig`.
        mag_norm: deprecated and ignored (DeprecationWarning): z is the blur length in px.
        flow: flow estimator for ``"dbcgm"`` / ``"flow_only"``; ``None`` builds the one
            named by the section (:func:`~ttblur.stages.flow.build_flow`). The random
            ablation builds none.
        seed: seed of :class:`RandomCondition` and of DBCGM's exposure fit (noise draws);
            the flow-only generator is deterministic given its flow estimator.

    Returns:
        ``"dbcgm"``: :class:`DomainBlurConditionGenerator`; ``"flow_only"``:
        :class:`FlowOnlyCondition`; ``"random"``: :class:`RandomCondition`.

    Raises:
        ValueError: unknown name.
    """
    warn_mag_norm_ignored("build_condition_generator", mag_norm)
    if flow is None and section.name in ("dbcgm", "flow_only"):
        flow = build_flow(section)
    generator: ConditionGenerator = _GENERATORS.build(
        section.name, section, section.params, flow=flow, seed=seed
    )
    return generator
