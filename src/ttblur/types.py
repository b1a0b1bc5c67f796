"""Stage protocols, the data types passed between stages and the one video check.

``ttblur.protocols`` is the old name of this module and still re-exports everything here.

Every stage of the pipeline is a :class:`typing.Protocol`, so a user can swap any stage for
their own object without subclassing anything. The shapes and units below are the data
contract that all implementations, built-in or not, must follow:

========================  ==========================  ==========================================
thing                     shape                       units / range
========================  ==========================  ==========================================
video                     ``(T, 3, H, W)`` float32    RGB in ``[0, 1]``
blur magnitude map        ``(T, 1, H, W)``            blur trajectory length in **pixels**
flow                      ``(N, 2, H, W)`` float32    pixels, channel 0 = x (u), 1 = y (v)
blur condition map        ``(N, 3, h, w)`` float32    x, y: unit direction in ``[-1, 1]``;
                                                      z = blur length ``M`` in **pixels**, ``>= 0``
patch location            :class:`PatchLocation`      pixels
========================  ==========================  ==========================================

The condition's z channel carries the blur length in pixels from stage to stage; a network
trained on a normalised scale (ID-Blau's ``z = min(M / mag_norm, 1)``) converts at its own
input with :func:`normalised_condition` (and :func:`pixel_condition` back).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from ttblur.io.frame_store import Frames, FrameStore

__all__ = [
    "VIDEO_RANGE_TOLERANCE",
    "BlurConditions",
    "BlurSynthesizer",
    "ConditionGenerator",
    "ExposureEstimate",
    "FlowEstimator",
    "Guard",
    "PatchLocation",
    "Selection",
    "SharpnessDetector",
    "check_map_shape",
    "condition_maps",
    "finite_range",
    "guard_score_value",
    "normalised_condition",
    "pixel_condition",
    "validate_selection",
    "validate_video",
    "warn_mag_norm_ignored",
]

#: How far outside ``[0, 1]`` a float frame may stray (rounding of a decoder or a resize)
#: before it is refused. The one tolerance of every frame check (:func:`validate_video`).
VIDEO_RANGE_TOLERANCE = 1e-3


def finite_range(x: Frames, name: str) -> tuple[float, float]:
    """Minimum and maximum of a non-empty tensor (or frame store, read chunk by chunk);
    ValueError if it holds NaN or inf.

    ``aminmax`` propagates NaN and shows inf, and is much cheaper than ``isfinite(x).all()``.
    """
    if isinstance(x, FrameStore):
        low, high = x.value_range()
    else:
        pair = torch.stack(torch.aminmax(x.detach())).tolist()  # one wait on a GPU, not two
        low, high = float(pair[0]), float(pair[1])
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"{name} contains NaN or inf")
    return low, high


def normalised_condition(condition: Tensor, mag_norm: float) -> Tensor:
    """A condition with z in pixels -> the same with ``z = min(M / mag_norm, 1)`` in ``[0, 1]``.

    Args:
        condition: ``(N, 3, h, w)``, z the blur length in pixels.
        mag_norm: pixels that map to ``z = 1`` (> 0).

    Returns:
        ``(N, 3, h, w)``, a new tensor; channels x, y unchanged.
    """
    _check_scale(mag_norm)
    z = (condition[:, 2:3] / float(mag_norm)).clamp(0.0, 1.0)
    return torch.cat((condition[:, :2], z), dim=1)


def pixel_condition(condition: Tensor, mag_norm: float) -> Tensor:
    """A condition with normalised ``z = M / mag_norm`` -> the same with z in pixels.

    Args:
        condition: ``(N, 3, h, w)``, z in ``[0, 1]`` relative to ``mag_norm``.
        mag_norm: pixels that map to ``z = 1`` (> 0).

    Returns:
        ``(N, 3, h, w)``, a new tensor with ``z * mag_norm``; channels x, y unchanged.
    """
    _check_scale(mag_norm)
    return torch.cat((condition[:, :2], condition[:, 2:3] * float(mag_norm)), dim=1)


def _check_scale(mag_norm: float) -> None:
    if isinstance(mag_norm, bool) or not isinstance(mag_norm, (int, float)):
        raise ValueError(f"mag_norm must be a number, got {type(mag_norm).__name__}")
    if not (math.isfinite(mag_norm) and mag_norm > 0):
        raise ValueError(f"mag_norm must be a finite number > 0, got {mag_norm}")


def warn_mag_norm_ignored(where: str, mag_norm: float | None) -> None:
    """DeprecationWarning for a ``mag_norm`` given to ``where``, which ignores it (conditions
    carry the blur length in pixels; ID-Blau keeps its own scale)."""
    if mag_norm is None:
        return
    warnings.warn(
        f"{where}: mag_norm is deprecated and ignored; the condition's z channel is the blur "
        "length in pixels (ID-Blau converts to its own scale, IDBlau(mag_norm=...))",
        DeprecationWarning,
        stacklevel=3,
    )


def validate_video(video: Frames, name: str = "video", *, channels: int | None = 3) -> None:
    """Check frames handed to a stage: ``(T, C, H, W)`` float, non-empty, finite, in ``[0, 1]``.

    Args:
        video: the frames (a video ``(T, 3, H, W)`` or a batch ``(N, 3, H, W)``).
        name: how error messages call it.
        channels: the channel count required (``None``: any).

    Shape:
        - video: ``(T, C, H, W)`` with ``C = channels``.

    Raises:
        ValueError: naming the first violated requirement; values may lie up to
            :data:`VIDEO_RANGE_TOLERANCE` outside ``[0, 1]``.
    """
    if not isinstance(video, Frames):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(video).__name__}")
    if video.ndim != 4 or (channels is not None and video.shape[1] != channels):
        layout = f"(T, {channels}, H, W)" if channels is not None else "(T, C, H, W)"
        raise ValueError(f"{name} must be {layout}, got shape {tuple(video.shape)}")
    if not video.is_floating_point():
        raise ValueError(f"{name} must be a floating point tensor, got {video.dtype}")
    if video.shape[0] == 0 or video.shape[2] == 0 or video.shape[3] == 0:
        raise ValueError(f"{name} must be non-empty, got shape {tuple(video.shape)}")
    low, high = finite_range(video, name)
    if low < -VIDEO_RANGE_TOLERANCE or high > 1 + VIDEO_RANGE_TOLERANCE:
        raise ValueError(f"{name} must be RGB in [0, 1], got values in [{low:.4g}, {high:.4g}]")


@dataclass(frozen=True)
class PatchLocation:
    """A square patch of one frame of a video.

    Attributes:
        frame: index of the frame in the video, ``0 <= frame < T``.
        top: row of the patch's top-left pixel.
        left: column of the patch's top-left pixel.
        size: side length of the square patch in pixels.
    """

    frame: int
    top: int
    left: int
    size: int

    def __post_init__(self) -> None:
        if self.frame < 0 or self.top < 0 or self.left < 0:
            raise ValueError(f"PatchLocation indices must be >= 0, got {self}")
        if self.size <= 0:
            raise ValueError(f"PatchLocation size must be > 0, got {self.size}")

    @property
    def bottom(self) -> int:
        """Row one past the patch's last row."""
        return self.top + self.size

    @property
    def right(self) -> int:
        """Column one past the patch's last column."""
        return self.left + self.size

    def crop(self, frames: Tensor) -> Tensor:
        """Crop this patch's box out of ``(..., H, W)`` frames (any leading dimensions).

        Raises:
            ValueError: if the box does not lie inside the frames.
        """
        height, width = frames.shape[-2:]
        if self.bottom > height or self.right > width:
            raise ValueError(f"patch {self} does not fit in frames of size {height}x{width}")
        return frames[..., self.top : self.bottom, self.left : self.right]


@dataclass(frozen=True)
class ExposureEstimate:
    """Exposure ratio and motion per frame of one video.

    Attributes:
        ratio: exposure / frame interval in ``(0, 1]``, or ``None`` when it could not be
            fitted (``note`` says why).
        motion_px: the video's motion per frame in px.
        ratio_std: the fit's uncertainty (bootstrap standard deviation), if one was fitted.
        note: why no ratio was fitted, or ``None``.
    """

    ratio: float | None
    motion_px: float
    ratio_std: float | None = None
    note: str | None = None

    @property
    def blur_px(self) -> float | None:
        """``ratio * motion_px``: the blur a frame of this video carries, px."""
        return None if self.ratio is None else self.ratio * self.motion_px


@dataclass(frozen=True)
class BlurConditions:
    """What a :class:`ConditionGenerator` may return instead of a bare tensor.

    Attributes:
        maps: the condition maps, one per patch of the selection.
        exposure: the exposure fitted on the video, if the generator fitted one; the pipeline
            then reuses its ``motion_px`` instead of measuring the video's motion again.

    Shape:
        - maps: ``(N, 3, p, p)`` float32, x, y unit direction, z = the blur length ``M`` in pixels.
    """

    maps: Tensor
    exposure: ExposureEstimate | None = None


def condition_maps(produced: Tensor | BlurConditions) -> Tensor:
    """The condition maps of what a :class:`ConditionGenerator` returned (either form).

    Shape:
        - output: ``(N, 3, p, p)``.
    """
    return produced.maps if isinstance(produced, BlurConditions) else produced


@dataclass
class Selection:
    """The pseudo-sharp patches chosen by a :class:`SharpnessDetector`.

    Attributes:
        patches: the chosen patch locations, in a deterministic order.
        magnitude: per-frame blur magnitude maps ``(T, 1, H, W)`` in pixels, as predicted by the
            detector. Condition generators reuse them instead of recomputing. When
            :func:`ttblur.adapt` streams a video file, a disk-backed
            :class:`~ttblur.io.frame_store.FrameStore` (index it like a tensor).
        threshold: the magnitude threshold (pixels) the detector used, if it used one.
        candidates: number of candidate patches the detector considered.
    """

    patches: list[PatchLocation]
    magnitude: Frames
    threshold: float | None = None
    candidates: int = 0
    info: dict[str, float] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.patches)


@runtime_checkable
class SharpnessDetector(Protocol):
    """Chooses relatively sharp patches of a blurry video to serve as pseudo-sharp images."""

    def select(self, video: Tensor) -> Selection:
        """Choose pseudo-sharp patches.

        Args:
            video: ``(T, 3, H, W)`` float RGB in ``[0, 1]``.

        Returns:
            A :class:`Selection` whose ``magnitude`` is ``(T, 1, H, W)`` in pixels.
        """
        ...


@runtime_checkable
class FlowEstimator(Protocol):
    """Dense optical flow between batches of frames."""

    def __call__(self, src: Tensor, dst: Tensor) -> Tensor:
        """Flow from ``src`` to ``dst``.

        Args:
            src: ``(N, 3, H, W)`` float RGB in ``[0, 1]``.
            dst: ``(N, 3, H, W)`` float RGB in ``[0, 1]``.

        Returns:
            ``(N, 2, H, W)`` float32 flow in pixels: a point at ``(x, y)`` in ``src`` is at
            ``(x + u, y + v)`` in ``dst``, channel 0 = ``u``, channel 1 = ``v``.
        """
        ...


@runtime_checkable
class ConditionGenerator(Protocol):
    """Builds a blur condition map for each selected pseudo-sharp patch."""

    def __call__(self, video: Tensor, selection: Selection) -> Tensor | BlurConditions:
        """Blur conditions for ``selection.patches``.

        Args:
            video: ``(T, 3, H, W)`` float RGB in ``[0, 1]``.
            selection: the detector's output (patches and magnitude maps in pixels).

        Returns:
            ``(N, 3, p, p)`` condition maps, ``N = len(selection.patches)``, ``p`` the patch
            size: channels x, y are the unit blur direction, z = the blur length ``M`` in pixels;
            or :class:`BlurConditions` holding them and the exposure fitted on the way.
        """
        ...


@runtime_checkable
class BlurSynthesizer(Protocol):
    """Blurs sharp images according to pixel-wise blur condition maps."""

    def __call__(self, sharp: Tensor, condition: Tensor) -> Tensor:
        """Synthesize blurry images.

        Args:
            sharp: ``(N, 3, h, w)`` float RGB in ``[0, 1]``.
            condition: ``(N, 3, h, w)`` condition maps (see the module docstring).

        Returns:
            ``(N, 3, h, w)`` float RGB in ``[0, 1]``.
        """
        ...


def guard_score_value(value: object, kind: str) -> float:
    """A guard's score as a float: a finite real number (Python or NumPy number, or a
    one-element real tensor) is accepted, and ``-inf`` ("worse than any model": the built-in
    probes' score of a restoration holding NaN / inf); a string, a bool, ``None``, NaN or
    ``+inf`` is refused, since the epoch choice and the rollback compare these numbers.

    Raises:
        TypeError: not a number.
        ValueError: NaN or ``+inf``.
    """
    if isinstance(value, Tensor):
        if value.numel() != 1 or value.dtype == torch.bool or value.is_complex():
            raise TypeError(
                f"the {kind} guard's score must be one real number, got a {value.dtype} tensor "
                f"of shape {tuple(value.shape)}"
            )
        value = value.item()
    number = getattr(value, "item", None)  # NumPy scalars
    if callable(number) and not isinstance(value, (int, float)):
        value = number()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"the {kind} guard's score must be a real number (higher is better), got "
            f"{type(value).__name__} {value!r}"
        )
    if math.isnan(value) or value == math.inf:
        raise ValueError(
            f"the {kind} guard's score is {value}: a score must be finite (or -inf for a "
            "model worse than any) to choose an epoch"
        )
    return float(value)


@runtime_checkable
class Guard(Protocol):
    """Scores a model on the target video itself (no ground truth), to choose the epoch and
    to roll back (:mod:`ttblur.stages.guard`)."""

    def prepare(
        self, video: Tensor, selection: Selection, spec: Any
    ) -> Callable[[Any, Any], float]:
        """Fix what will be scored on ``video`` ``(T, 3, H, W)``.

        Args:
            video: the blurry video, float RGB in ``[0, 1]``.
            selection: the detector's output (patches, magnitude maps ``(T, 1, H, W)`` px).
            spec: the model's :class:`~ttblur.specs.ModelSpec`.

        Returns:
            ``score(model, device) -> float``, higher is better; a finite real number
            (:func:`guard_score_value`).
        """
        ...


def check_map_shape(maps: Frames, video_shape: tuple[int, ...], name: str = "magnitude") -> None:
    """Refuse per-frame maps that are not one ``(1, H, W)`` map per frame of the video.

    Shape:
        - maps: ``(T, 1, H, W)``; video_shape: ``(T, C, H, W)``.

    Raises:
        ValueError: naming ``name``, the shape expected and the one given.
    """
    expected = (video_shape[0], 1, video_shape[2], video_shape[3])
    if tuple(maps.shape) != expected:
        raise ValueError(
            f"{name} must be (T, 1, H, W) = {expected} to match the video, got {tuple(maps.shape)}"
        )


def validate_selection(video: Frames, selection: Selection) -> None:
    """Check a video (:func:`validate_video`) and that the detector's magnitude maps of
    ``selection`` cover it: one ``(1, H, W)`` map per frame.

    Shape:
        - video: ``(T, 3, H, W)``; selection.magnitude: ``(T, 1, H, W)``.

    Raises:
        ValueError: naming the first violated requirement.
    """
    validate_video(video)
    check_map_shape(selection.magnitude, tuple(video.shape), "selection.magnitude")
